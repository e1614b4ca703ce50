"""Lanes, worker processes and determinism, through llama.cpp (the tiny test model).

What these tests pin down: a neural frame split into streams (lanes) that
advance together in one llama.cpp context decodes byte for byte; the file
does not depend on the thread count, the worker count or the run; and a file
made with any lane count decodes. The format side of the split (the rule,
the header parameter, the payload) is tested without a model first.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import random
import signal
import struct
import time
import warnings
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_model import tiny_text

import nacrith
from nacrith.engine import decode_streams, encode_streams
from nacrith.errors import (
    ChecksumError,
    FormatError,
    JobCancelled,
    ModelMismatchError,
    NacrithWarning,
    UnsupportedVersionError,
    WorkerError,
)
from nacrith.format import (
    ESCAPE_SYMBOLS,
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    SingleFrame,
    Tag,
    Trailer,
    environment_backend,
    pack_streams,
    pack_varint,
    stream_bounds,
    unpack_streams,
)
from nacrith.framecodec import encode_text
from nacrith.frameparams import FrameParams
from nacrith.models.llm import LanguageModel
from nacrith.options import CompressOptions
from nacrith.parallel import WorkerPlan, Workers, plan_workers
from nacrith.reader import decompress_stream
from nacrith.settings import LEGACY_CODING, Coding, EnsembleSettings
from nacrith.writer import compress_stream

#: A small window, so that tests slide it often and stay fast.
SMALL = {"context": 64, "slide": 16, "segment": False}


def small_params(model) -> FrameParams:
    """The frame settings of CompressOptions(**SMALL), for frames handed to workers directly."""
    return CompressOptions(**SMALL).frame_params(model.start_token)


def prose(n_bytes: int, seed: int = 5) -> bytes:
    """Text the model codes better than zstd (tests/tiny_model.py), and no repeat of itself."""
    return tiny_text(n_bytes, seed)


def neural_payload(blob: bytes) -> tuple[Header, FrameHeader, bytes]:
    """The header and the first frame of a file whose first frame is neural
    (its only one, in a version-2 file of one frame)."""
    src = io.BytesIO(blob)
    header, header_bytes = Header.read_bytes(src)
    if header.single != FrameType.END:
        one = SingleFrame.read(src, header, header_bytes)
        assert one.header.type == FrameType.NEURAL
        return header, one.header, one.payload
    fh = FrameHeader.read_after_type(src, FrameHeader.read_type(src), header.frame_size)
    assert fh.type == FrameType.NEURAL
    return header, fh, src.read(fh.payload_size)


# --- the split, without a model ---------------------------------------------------


@given(st.integers(0, 100_000), st.integers(1, 256), st.integers(1, 5000))
def test_stream_bounds_rule(n_symbols, lanes, min_stream):
    bounds = stream_bounds(n_symbols, lanes, min_stream)
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    assert bounds[0] == 0 and bounds[-1] == n_symbols
    expected = min(lanes, n_symbols // min_stream) if lanes > 1 and n_symbols >= 2 * min_stream else 1
    assert len(sizes) == expected
    if expected > 1:
        assert min(sizes) >= min_stream
        assert max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)  # the longer streams come first


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=20))
def test_stream_payloads_round_trip(parts):
    assert unpack_streams(pack_streams(parts), len(parts)) == parts


@pytest.mark.parametrize(
    "payload, count",
    [
        (pack_varint(10) + b"abc", 2),  # the first stream runs past the payload
        (pack_varint(3) + b"abc", 2),  # nothing left for the last stream
        (pack_varint(0) + b"abc", 2),  # an empty stream
        (b"\x80", 2),  # a cut varint
        (pack_varint(1) + pack_varint(1) + b"ab", 3),  # the last stream is empty
    ],
)
def test_stream_payloads_that_do_not_fit_are_refused(payload, count):
    with pytest.raises(FormatError, match="corrupt neural frame"):
        unpack_streams(payload, count)


def lanes_header(**changes) -> Header:
    fields = dict(
        model_id=bytes(32),
        vocab_size=49152,
        context=2048,
        slide=512,
        temperature=1.0,
        frame_size=1 << 20,
        start_token=0,
        lanes=16,
        min_stream=2048,
    )
    return Header(**{**fields, **changes})


def test_lanes_in_the_header():
    header = lanes_header()
    assert Header.read(io.BytesIO(header.pack())) == header
    assert bytes([Tag.LANES, 3, 16]) + pack_varint(2048) in header.pack()
    one = lanes_header(lanes=1, min_stream=0)
    assert bytes([Tag.LANES]) + b"\x03" not in one.pack()  # one lane: no parameter, as before lanes existed
    assert Header.read(io.BytesIO(one.pack())).lanes == 1


def rewrite_lanes(value: bytes) -> bytes:
    """A header with a correct checksum whose LANES parameter holds ``value``."""
    packed = lanes_header(lanes=1, min_stream=0).pack()
    size, start = 0, 7  # after the magic, the version and the two flag bytes
    for shift in range(0, 21, 7):
        size |= (packed[start] & 0x7F) << shift
        start += 1
        if not packed[start - 1] & 0x80:
            break
    params = packed[start : start + size] + bytes([Tag.LANES]) + pack_varint(len(value)) + value
    body = packed[:7] + pack_varint(len(params)) + params
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "value, message",
    [
        (pack_varint(1) + pack_varint(10), "1 lanes"),
        (pack_varint(300) + pack_varint(10), "300 lanes"),
        (pack_varint(4) + pack_varint(0), "at least 0 symbols"),
        (pack_varint(4), "LANES cut short"),
        (pack_varint(4) + pack_varint(8) + b"x", "trailing bytes in LANES"),
    ],
)
def test_bad_lanes_parameter_is_refused(value, message):
    with pytest.raises(FormatError, match=message):
        Header.read(io.BytesIO(rewrite_lanes(value)))


def test_lanes_parameter_must_be_understood():
    """A reader that predates lanes refuses such a file rather than misreading it:
    the tag's "must understand" bit is set."""
    assert not Tag.LANES & 0x80
    assert Header.read(io.BytesIO(rewrite_lanes(pack_varint(4) + pack_varint(8)))).lanes == 4
    # What a reader that does not know a tag of this kind does, shown with the next free tag.
    packed = rewrite_lanes(pack_varint(4) + pack_varint(8))
    unknown = max(t for t in Tag if not t & 0x80) + 1
    body = packed[:-4].replace(bytes([Tag.LANES, 2, 4, 8]), bytes([unknown, 2, 4, 8]))
    with pytest.raises(UnsupportedVersionError, match=f"{unknown:#04x}"):
        Header.read(io.BytesIO(body + struct.pack("<I", zlib.crc32(body))))


def test_header_without_model_has_no_lanes():
    with pytest.raises(ValueError):
        dataclasses.replace(Header.without_model(100), lanes=4, min_stream=8)


def test_environment_names_the_backend():
    assert environment_backend("0.3.36 cpu 1a2b3c4d avx2") == "cpu"
    assert environment_backend("0.3.36 gpu 1a2b3c4d native") == "gpu"
    assert environment_backend("0.3.36 cpu 1a2b3c4d") == "cpu"  # before the kernel policy was recorded
    assert environment_backend("llama.cpp b1234 / cpu") == ""  # an older or foreign string
    assert environment_backend("llama-cpp-python 0.0.1 metal") == ""


def test_worker_plans():
    assert plan_workers(2, (), 3) == [WorkerPlan(3), WorkerPlan(3)]
    assert plan_workers(None, ("0", "1"))[1].gpu == "1"
    assert [p.gpu for p in plan_workers(4, ("0", "1"), 1)] == ["0", "1", "0", "1"]
    with pytest.raises(ValueError):
        plan_workers(0)


# --- with the model ----------------------------------------------------------------


@pytest.mark.llm
@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_files_of_any_lane_count_decode(codec, lanes):
    data = prose(1500)
    blob = codec.compress(data, lanes=lanes, min_stream=16, **SMALL)
    header, fh, _payload = neural_payload(blob)
    assert header.lanes == lanes
    assert len(header.streams(fh.symbols)) - 1 == lanes
    assert codec.decompress(blob) == data


@pytest.mark.llm
@pytest.mark.parametrize("coding", [LEGACY_CODING, Coding(2, False), Coding(2, True)], ids=str)
def test_every_coding_decodes_in_lanes(codec, coding):
    data = prose(1200, seed=3)
    blob = codec.compress(data, lanes=4, min_stream=16, coding=coding, **SMALL)
    assert Header.read(io.BytesIO(blob)).coding == coding
    assert codec.decompress(blob) == data


def test_streams_that_share_the_ensemble_learn_from_each_other(stub_codec):
    """Each stream repeats what the others say: one ensemble for the frame
    learns a phrase once for all of them (and its match model follows
    another stream's history); an ensemble per stream learns it four times."""
    rng = random.Random(4)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"theta", b"kappa"]
    phrase = b" ".join(rng.choice(words) for _ in range(60)) + b".\n"
    model = stub_codec.model
    symbols = model.symbols.encode(phrase * 4)
    bounds = stream_bounds(len(symbols), 4, 16)
    streams = [symbols[a:b] for a, b in itertools.pairwise(bounds)]
    ensemble = EnsembleSettings()
    sizes = {}
    for shared in (False, True):
        coding = Coding(2, shared)
        params = FrameParams(256, 64, 1.0, ensemble, coding, 4, 16, model.start_token)
        predictor = model.predictor(params, 4)
        payloads, _ = encode_streams(predictor, params, streams, ESCAPE_SYMBOLS)
        counts = [len(s) for s in streams]
        back = decode_streams(predictor, params, payloads, counts, ESCAPE_SYMBOLS)
        assert back == streams
        sizes[shared] = sum(map(len, payloads))
    assert sizes[True] < 0.7 * sizes[False], sizes


@pytest.mark.llm
def test_lanes_with_escapes_and_uneven_streams(codec):
    """Escapes inside streams (a lane that codes one feeds nothing that step)
    and streams of unequal length (one finishes a step before the others)."""
    odd = b"\x00\x04\xff\xfe" + "\U00040000 ".encode()
    data = prose(700) + odd + prose(600, seed=9) + odd + prose(500, seed=10)
    blob = codec.compress(data, lanes=5, min_stream=16, **SMALL)
    header, fh, _ = neural_payload(blob)
    assert len(header.streams(fh.symbols)) == 6 and fh.symbols % 5 != 0
    assert codec.decompress(blob) == data


@pytest.mark.llm
def test_lanes_with_the_language_model_alone(codec):
    data = prose(1200, seed=11)
    blob = codec.compress(data, lanes=3, min_stream=16, ensemble=None, **SMALL)
    assert Header.read(io.BytesIO(blob)).ensemble is None
    assert codec.decompress(blob) == data


@pytest.mark.llm
def test_a_lane_file_is_the_same_twice(codec):
    data = prose(1500, seed=12)
    first = codec.compress(data, lanes=4, min_stream=16, **SMALL)
    assert codec.compress(data, lanes=4, min_stream=16, **SMALL) == first


@pytest.mark.llm
def test_thread_count_does_not_change_a_lane_file(codec, model):
    """Made with 1 thread, decoded with 2, and vice versa; 2 threads make the same bytes."""
    data = prose(1500, seed=13)
    one = codec.compress(data, lanes=4, min_stream=16, **SMALL)
    with LanguageModel(model.path, threads=2) as model2:
        codec2 = nacrith.Codec.from_model(model2)
        two = codec2.compress(data, lanes=4, min_stream=16, **SMALL)
        assert two == one
        assert codec2.decompress(one) == data
    assert codec.decompress(two) == data


@pytest.mark.llm
def test_ten_thousand_tokens_slide_the_window_many_times(codec, model):
    """Over 10,000 tokens in 4 lanes of a 64-token window sliding by 16: each
    lane slides about 150 times. A passage that comes back in every block lets
    the confidence skip fire, so skipped tokens catch up across slides too."""
    passage = prose(300, seed=99)
    data = b"".join(prose(900, seed=100 + i) + passage for i in range(40))
    assert len(model.symbols.encode(data)) > 10_000
    out = io.BytesIO()
    summary = codec.compress_stream(io.BytesIO(data), out, lanes=4, min_stream=256, **SMALL)
    assert summary.frames == {"neural": 1} and summary.stats.skipped > 100
    assert codec.decompress(out.getvalue()) == data


@pytest.mark.llm
def test_backend_mismatch_is_named(codec):
    """A file that says it was made on a GPU warns when decoded on the CPU, and
    when it then fails its checksum the error says why."""
    data = prose(400, seed=15)
    # A file of frames: its header can be rewritten without touching the frames'
    # checksums (a file of one frame has one checksum, over the header too).
    blob = codec.compress(data, lanes=2, min_stream=16, frame_size=200, **SMALL)
    header = Header.read(io.BytesIO(blob))
    assert header.single == FrameType.END
    version, _, system, kernels = header.environment.split()
    gpu_header = dataclasses.replace(header, environment=f"{version} gpu {system} {kernels}").pack()
    rest = blob[len(header.pack()) :]
    with pytest.warns(NacrithWarning, match="made on the GPU backend, decoding on the CPU"):
        assert codec.decompress(gpu_header + rest) == data  # same arithmetic here: it decodes
    # A payload the CPU decodes differently, as GPU-made data would be.
    _, _, payload = neural_payload(blob)
    corrupt = bytearray(gpu_header + rest)
    corrupt[len(gpu_header) + rest.index(payload) + len(payload) // 2] ^= 0x10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NacrithWarning)
        with pytest.raises(ChecksumError, match="made on the GPU backend and is decoded on the CPU"):
            codec.decompress(bytes(corrupt))


# --- worker processes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def workers(model):
    with Workers(model.path, [WorkerPlan(1), WorkerPlan(1)]) as pool:
        yield pool


@pytest.mark.llm
def test_workers_write_the_same_file(codec, model, workers):
    """Frames coded in two worker processes: the same bytes as in one process,
    decodable either way; text and binary frames stay in order."""
    rng = random.Random(16)
    data = prose(900, seed=16) + bytes(rng.randrange(256) for _ in range(500)) + prose(900, seed=17)
    options = CompressOptions(lanes=2, min_stream=16, frame_size=400, context=64, slide=16)
    here = codec.compress(data, **options.__dict__)
    out = io.BytesIO()
    compress_stream(io.BytesIO(data), out, model, options, len(data), workers=workers)
    assert out.getvalue() == here
    back = io.BytesIO()
    decompress_stream(io.BytesIO(here), back, lambda h: model, workers=workers)
    assert back.getvalue() == data


@pytest.mark.llm
def test_workers_refuse_another_models_file(workers):
    blob = Header(
        bytes(32), 49152, context=64, slide=16, temperature=1.0, frame_size=10, start_token=0
    ).pack()
    frame = FrameHeader(FrameType.NEURAL, 5, 3, 2, zlib.crc32(b"hello")).pack() + b"abc"
    # A whole file (its index says so), so that its structure passes and its model is what is wrong.
    trailer = Trailer(5, bytes(8), (IndexEntry(FrameType.NEURAL, 5, 3),)).pack()
    with pytest.raises(ModelMismatchError):
        decompress_stream(io.BytesIO(blob + frame + trailer), io.BytesIO(), lambda h: None, workers=workers)


@pytest.mark.llm
def test_a_killed_worker_fails_the_call_cleanly(model):
    """A worker that dies mid-frame gives a WorkerError, never a wrong frame."""
    data = prose(30_000, seed=18)
    with Workers(model.path, [WorkerPlan(1)]) as pool:
        future = pool.encode(data, small_params(model))
        os.kill(pool.pids[0], signal.SIGKILL)
        with pytest.raises(WorkerError, match="died"):
            future.result(timeout=60)


@pytest.mark.llm
def test_a_killed_worker_is_started_afresh_for_the_next_frame(model):
    data = prose(300, seed=20)
    with Workers(model.path, [WorkerPlan(1)]) as pool:
        os.kill(pool.pids[0], signal.SIGKILL)
        with pytest.raises(WorkerError):
            pool.encode(data, small_params(model)).result(timeout=60)
        coded = pool.encode(data, small_params(model)).result(timeout=120)
    assert coded == encode_text(data, model, small_params(model))


@pytest.mark.llm
def test_a_cancelled_job_stops_its_frames_and_no_others(model):
    """cancel() drops the job's queued frames and stops its running one within
    seconds; another job sharing the workers is coded as if alone."""
    long_text = prose(30_000, seed=21)  # minutes of work
    short_text = prose(300, seed=22)
    with Workers(model.path, [WorkerPlan(1)]) as pool:
        doomed, other = pool.job(), pool.job()
        running = doomed.encode(long_text, small_params(model))
        queued = doomed.encode(long_text, small_params(model))
        kept = other.encode(short_text, small_params(model))
        time.sleep(2)  # the first frame is being coded
        assert pool.frames_waiting() == 3
        start = time.monotonic()
        doomed.cancel()
        for future in (running, queued):
            with pytest.raises(JobCancelled):
                future.result(timeout=30)
        assert kept.result(timeout=120) == encode_text(short_text, model, small_params(model))
        assert time.monotonic() - start < 30  # not the minutes the long frames take
        with pytest.raises(JobCancelled):
            doomed.encode(short_text, small_params(model))
        assert pool.frames_waiting() == 0
        assert pool.frames_stopped == 2


@pytest.mark.llm
def test_codec_with_workers(model):
    data = prose(1000, seed=19)
    with nacrith.Codec(model.path, 1, workers=2) as codec2:
        blob = codec2.compress(data, lanes=2, min_stream=16, frame_size=300, **SMALL)
        assert codec2.decompress(blob) == data
    assert nacrith.Codec.from_model(model).decompress(blob) == data
