"""Reader robustness: damaged files fail with a NacrithError, quickly.

Whatever bytes a reader is given, decompress must either return exactly the
original content or raise a NacrithError subclass: never another exception,
never wrong bytes, never a hang. The model is the stub (tests/stub_model.py):
every damage that gets past the frame's header checks costs one decode of
the frame, which takes a millisecond with it, so thousands can be tried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import signal
import struct
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nacrith.errors import (
    ChecksumError,
    FormatError,
    ModelMismatchError,
    NacrithError,
    NacrithWarning,
    TruncatedError,
    UnsupportedVersionError,
)
from nacrith.format import (
    MAGIC,
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    SingleFrame,
    Tag,
    Trailer,
    pack_varint,
    varint_from,
)
from nacrith.reader import read_info
from nacrith.settings import MAX_CONTEXT

_NOISE = np.random.default_rng(1).integers(0, 256, 300).astype(np.uint8).tobytes()
#: Inputs and writer options chosen so each file holds frames of given types (or none).
#: The first four are made without segmentation: one frame, whatever its content.
#: These are version-1 files (V1, added below), with a frame header and an index
#: whatever their frames; version 2's are V2_SAMPLES.
SAMPLES = {
    # ~20 tokens of plain text: the model wins.
    "neural": (b"The quick brown fox jumps over the lazy dog. " * 2, {"segment": False}, [FrameType.NEURAL]),
    # Bytes >= 0x80 are mostly invalid UTF-8, hence escapes: the model is not even run, zstd cannot shrink it.
    "stored": (
        bytes(np.random.default_rng(1).integers(128, 256, 40).astype(np.uint8)),
        {"segment": False},
        [FrameType.STORED],
    ),
    # Repetitive, but all escapes again, so compressing it does not run the model over 2 KB.
    "zstd": (bytes(range(0x80, 0x100)) * 8, {"segment": False}, [FrameType.ZSTD]),
    "empty": (b"", {"segment": False}, []),
    # Segmented: binary, ~25 tokens of text, binary; the binary parts are one zstd stream.
    # (zstd alone would be smaller here: without the fallback, the segmented file is kept.)
    "stream": (
        _NOISE[:150] + b"The quick brown fox jumps over the lazy dog, " * 3 + bytes(50) + _NOISE[150:] * 2,
        {"zstd_fallback": False},
        [FrameType.ZSTD_STREAM, FrameType.NEURAL, FrameType.ZSTD_STREAM],
    ),
    # Segmented, no text worth a frame: zstd alone, in a file without a model.
    "zstd_only": (_NOISE[:40] * 20, {}, [FrameType.ZSTD_STREAM]),
    "stored_only": (_NOISE[:40], {}, [FrameType.STORED]),
    # ~100 tokens in 3 streams coded side by side: the payload starts with two stream sizes.
    # (Not a repeated sentence: each stream starts cold, and zstd would win.)
    "lanes": (
        b"The quick brown fox jumps over the lazy dog, then naps in the sun. The dog wakes and barks "
        b"at the fox, and the fox runs into the wood. Then the sun sets on the hill.",
        {"segment": False, "lanes": 3, "min_stream": 8},
        [FrameType.NEURAL],
    ),
}

SAMPLES = {
    name: (data, {**options, "format_version": 1}, types) for name, (data, options, types) in SAMPLES.items()
}

#: Seconds any single decompress may take; a real decode of these files takes well under one.
TIME_LIMIT = 20


@dataclasses.dataclass(frozen=True)
class Sample:
    original: bytes
    blob: bytes
    #: (name, start, end) of the header, each frame header and payload, and the trailer.
    regions: list[tuple[str, int, int]]

    def region(self, name: str) -> tuple[int, int]:
        return next((start, end) for n, start, end in self.regions if n == name)


def layout(blob: bytes) -> list[tuple[str, int, int]]:
    """Where each structure of a valid file lies, read with the format module itself."""
    stream = io.BytesIO(blob)
    header = Header.read(stream)
    regions = [("header", 0, stream.tell())]
    while True:
        start = stream.tell()
        ftype = FrameHeader.read_type(stream)
        if ftype == FrameType.END:
            regions.append(("trailer", start, len(blob)))
            return regions
        fh = FrameHeader.read_after_type(stream, ftype, header.frame_size)
        regions.append(("frame", start, stream.tell()))
        regions.append(("payload", stream.tell(), stream.tell() + fh.payload_size))
        stream.seek(fh.payload_size, io.SEEK_CUR)


@pytest.fixture(scope="module")
def codec(stub_codec):
    """The stub model (tests/stub_model.py): every damage that gets past the
    headers costs one decode, in microseconds instead of a model's seconds."""
    return stub_codec


@pytest.fixture(scope="module")
def samples(codec) -> dict[str, Sample]:
    out = {}
    for name, (original, options, frame_types) in SAMPLES.items():
        blob = codec.compress(original, **options)
        trailer = Trailer.read_from_end(io.BytesIO(blob))
        assert [e.type for e in trailer.entries] == frame_types, f"{name} input no longer makes that frame"
        out[name] = Sample(original, blob, layout(blob))
    return out


@contextlib.contextmanager
def time_limit(seconds: float):
    """Turn a hang into a test failure (a TimeoutError, which is no NacrithError)."""

    def expired(signum, frame):
        raise TimeoutError(f"decompress took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode_or_error(codec, blob: bytes, original: bytes) -> NacrithError | None:
    """None when blob decodes to exactly original; the NacrithError when it is refused.

    Any other exception, a hang or different bytes fail the test.
    """
    with time_limit(TIME_LIMIT):
        try:
            result = codec.decompress(blob)
        except NacrithError as exc:
            return exc
    assert result == original, "damaged file decoded to different bytes without an error"
    return None


def flip(blob: bytes, bit: int) -> bytes:
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_samples_round_trip(codec, samples):
    for sample in samples.values():
        assert codec.decompress(sample.blob) == sample.original


# --- single bit flips ---------------------------------------------------------------


# Every bit of the files without a neural frame, and of the neural file's headers,
# is flipped exhaustively below. The neural payload and trailer cost one model
# decode per flip, so hypothesis samples them, weighted to where that matters.


@pytest.mark.parametrize("name", ["neural", "stream", "lanes"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_bit_flip_in_neural_file(codec, samples, name, data):
    """A flipped bit anywhere is refused with a NacrithError, or (padding bits) changes nothing.

    The region is drawn first, so the payload and the trailer, the parts that
    need the model, are hit far more often than their share of the file.
    """
    sample = samples[name]
    region, start, end = data.draw(st.sampled_from(sample.regions))
    event(region)  # shown by --hypothesis-show-statistics
    bit = data.draw(st.integers(8 * start, 8 * end - 1))
    decode_or_error(codec, flip(sample.blob, bit), sample.original)


@pytest.mark.parametrize("name", ["stored", "zstd", "empty", "zstd_only", "stored_only"])
def test_every_bit_flip_without_model(codec, samples, name):
    """Files without a neural frame decode without the model: every bit of them can be tried."""
    sample = samples[name]
    accepted = [
        bit
        for bit in range(8 * len(sample.blob))
        if decode_or_error(codec, flip(sample.blob, bit), sample.original) is None
    ]
    # Only bits inside the zstd payload may be ones zstd itself ignores; everything else is checked.
    if accepted:
        assert name in ("zstd", "zstd_only"), f"bits {accepted} of the {name} file are not checked"
        start, end = sample.region("payload")
        assert all(8 * start <= bit < 8 * end for bit in accepted)


def test_every_bit_flip_in_neural_headers(codec, samples):
    """The file and frame headers of a neural file are CRC-checked before any decoding."""
    sample = samples["neural"]
    _, end = sample.region("frame")
    for bit in range(8 * end):
        error = decode_or_error(codec, flip(sample.blob, bit), sample.original)
        assert isinstance(error, FormatError), f"bit {bit}: {error!r}"


# --- truncation, garbage, trailing data ---------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_truncation(codec, samples, name):
    """A file cut anywhere says it is truncated, even when the cut falls in the trailer."""
    sample = samples[name]
    for n in range(len(sample.blob)):
        error = decode_or_error(codec, sample.blob[:n], sample.original)
        assert isinstance(error, TruncatedError), f"cut at {n} of {len(sample.blob)}: {error!r}"


@given(st.binary(max_size=300))
def test_random_garbage(codec, garbage):
    with pytest.raises(FormatError):
        codec.decompress(garbage)


@given(st.binary(max_size=300))
def test_garbage_after_magic(codec, garbage):
    with pytest.raises(FormatError):
        codec.decompress(MAGIC + garbage)
    with pytest.raises(FormatError):
        codec.decompress(MAGIC + b"\x01\x00\x00" + garbage)  # version 1, no flags


@given(st.binary(max_size=300))
def test_garbage_after_valid_header(codec, samples, garbage):
    """A genuine header followed by noise: the frame list is refused before any model runs."""
    sample = samples["neural"]
    _, end = sample.region("header")
    with pytest.raises(FormatError):
        codec.decompress(sample.blob[:end] + garbage)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_trailing_bytes(codec, samples, name):
    """Data after the footer is an error, not ignored; two files concatenated are not one."""
    blob = samples[name].blob
    for extra in (b"\x00", b"trailing garbage", blob):
        with pytest.raises(FormatError, match="after the end"):
            codec.decompress(blob + extra)


# --- damage that keeps every CRC valid ----------------------------------------------
# A buggy writer, or deliberate tampering, can produce structures whose CRCs
# match but whose contents lie. The reader must still fail cleanly.


def replace_header(blob: bytes, **changes) -> bytes:
    stream = io.BytesIO(blob)
    header = Header.read(stream)
    return dataclasses.replace(header, **changes).pack() + blob[stream.tell() :]


def replace_frame(sample: Sample, **changes) -> bytes:
    start, end = sample.region("frame")
    stream = io.BytesIO(sample.blob[start:end])
    fh = FrameHeader.read_after_type(stream, FrameHeader.read_type(stream), 1 << 30)
    return sample.blob[:start] + dataclasses.replace(fh, **changes).pack() + sample.blob[end:]


def replace_trailer(sample: Sample, **changes) -> bytes:
    start, _ = sample.region("trailer")
    trailer = Trailer.read_from_end(io.BytesIO(sample.blob))
    return sample.blob[:start] + dataclasses.replace(trailer, **changes).pack()


@pytest.mark.parametrize(
    ("where", "changes", "error", "message"),
    [
        ("header", {"model_id": bytes(32)}, ModelMismatchError, "file needs model 0000"),
        ("header", {"vocab_size": 1000}, ModelMismatchError, "vocabulary"),
        ("header", {"context": MAX_CONTEXT}, FormatError, "needs a context"),  # more than the model holds
        ("header", {"frame_size": 50}, FormatError, "in a frame of at most 50"),
        ("header", {"content_size": 89}, FormatError, "header says 89 bytes"),
        ("header", {"temperature": 2.0}, ChecksumError, "frame 1"),
        ("header", {"start_token": 1}, ChecksumError, "frame 1"),  # another first token, other predictions
        ("frame", {"symbols": 1}, ChecksumError, "frame 1"),
        ("frame", {"symbols": 90}, ChecksumError, "frame 1"),
        # A frame header that disagrees with the index is found before any frame is decoded.
        ("frame", {"raw_size": 89}, FormatError, "does not describe the frames"),
        ("frame", {"raw_crc32": 0}, ChecksumError, "do not match the checksum"),
        ("frame", {"type": FrameType.ZSTD}, FormatError, "does not describe the frames"),
        ("frame", {"type": FrameType.STORED}, FormatError, "payload of"),
        ("trailer", {"content_sha256_8": bytes(8)}, ChecksumError, "content checksum"),
        ("trailer", {"content_size": 91}, FormatError, "index"),
        ("trailer", {"entries": ()}, FormatError, "index"),
    ],
)
def test_consistent_lies_in_a_neural_file(codec, samples, where, changes, error, message):
    """Every CRC is valid but a field lies: refused with the error that names the real problem."""
    sample = samples["neural"]
    if where == "header":
        blob = replace_header(sample.blob, **changes)
    elif where == "frame":
        blob = replace_frame(sample, **changes)
    else:
        blob = replace_trailer(sample, **changes)
    with time_limit(TIME_LIMIT), pytest.raises(error, match=message):
        codec.decompress(blob)


def test_other_escape_count_is_refused(codec, samples):
    """ESCAPES is a must-understand value: a writer cannot make 255, so patch the bytes."""
    blob = samples["neural"].blob
    stream = io.BytesIO(blob)
    Header.read(stream)
    header, rest = blob[: stream.tell() - 4], blob[stream.tell() :]
    escapes_256 = bytes([Tag.ESCAPES, 2]) + pack_varint(256)
    assert header.count(escapes_256) == 1
    patched = header.replace(escapes_256, bytes([Tag.ESCAPES, 2]) + pack_varint(255))
    with pytest.raises(UnsupportedVersionError, match="255 escape symbols"):
        codec.decompress(patched + struct.pack("<I", zlib.crc32(patched)) + rest)


def test_other_environment_warns_but_decodes(codec, samples):
    """The environment field is informational: another build only warns, and decoding proceeds."""
    sample = samples["neural"]
    blob = replace_header(sample.blob, environment="llama-cpp-python 0.0.1 metal")
    with pytest.warns(NacrithWarning, match="metal"):
        assert codec.decompress(blob) == sample.original


def with_extra_header_parameter(blob: bytes, extra: bytes) -> bytes:
    """blob with ``extra`` (tag, length, value) appended to its header's parameters, CRC recomputed."""
    stream = io.BytesIO(blob)
    Header.read(stream)
    header, rest = blob[: stream.tell()], blob[stream.tell() :]
    prefix = len(MAGIC) + 3  # magic, version, required and optional flags
    size_len = next(k for k in (1, 2, 3) if header[prefix + k - 1] < 0x80)
    assert varint_from(header[prefix : prefix + size_len], "size") == len(header) - prefix - size_len - 4
    params = header[prefix + size_len : -4] + extra
    body = header[:prefix] + pack_varint(len(params)) + params
    return body + struct.pack("<I", zlib.crc32(body)) + rest


def test_unknown_ignorable_header_parameter_is_accepted(codec, samples):
    """A newer writer's optional header parameter (tag bit 7 set) does not stop this reader."""
    sample = samples["stored"]
    blob = with_extra_header_parameter(sample.blob, b"\xc0\x02hi")
    assert codec.decompress(blob) == sample.original


def test_unknown_required_header_parameter_is_refused(codec, samples):
    sample = samples["stored"]
    blob = with_extra_header_parameter(sample.blob, b"\x40\x02hi")
    with pytest.raises(UnsupportedVersionError, match="0x40"):
        codec.decompress(blob)


# --- the zstd stream and files without a model --------------------------------------


def test_stream_frames_need_the_stream_flag(codec, samples):
    blob = replace_header(samples["zstd_only"].blob, zstd_stream=False)
    with pytest.raises(FormatError, match="without the stream flag"):
        codec.decompress(blob)


def test_neural_frame_in_a_file_without_a_model_is_refused(codec, samples):
    sample = samples["stream"]
    stream = io.BytesIO(sample.blob)
    header = Header.read(stream)
    modelless = Header.without_model(header.frame_size, header.content_size, zstd_stream=True)
    with pytest.raises(FormatError, match="neural frame in a file without a model"):
        codec.decompress(modelless.pack() + sample.blob[stream.tell() :])


def test_stream_piece_out_of_order_is_refused(codec, samples):
    """The second piece of the stream cannot be read without the first."""
    sample = samples["stream"]
    frames = [(start, end) for name, start, end in sample.regions if name in ("frame", "payload")]
    (f1, p1), (f3, p3) = (frames[0], frames[1]), (frames[4], frames[5])
    first = sample.blob[f1[0] : p1[1]]
    last = sample.blob[f3[0] : p3[1]]
    swapped = sample.blob[: f1[0]] + last + sample.blob[p1[1] : f3[0]] + first + sample.blob[p3[1] :]
    error = decode_or_error(codec, swapped, sample.original)
    assert isinstance(error, FormatError | ChecksumError), repr(error)


def test_stream_piece_that_ends_the_zstd_stream_is_refused(codec):
    """A writer never ends the stream; a piece holding the end of a zstd frame is not ours."""
    data = b"\x00\x01\x02\x03" * 100
    ended = zstandard.ZstdCompressor(level=19, write_checksum=False, write_content_size=False).compress(data)
    header = Header.without_model(1 << 20, len(data), zstd_stream=True).pack()
    frame = FrameHeader(FrameType.ZSTD_STREAM, len(data), len(ended), 0, zlib.crc32(data)).pack()
    trailer = Trailer(
        len(data),
        hashlib.sha256(data).digest()[:8],
        (IndexEntry(FrameType.ZSTD_STREAM, len(data), len(ended)),),
    )
    with pytest.raises(FormatError, match="a piece ends the stream"):
        codec.decompress(header + frame + ended + trailer.pack())


# --- version 2: files of one frame, without frame header or index -------------------

#: The samples above written in version 2: a file of one frame has no frame
#: header, index or footer, and its one checksum covers header, payload and content.
V2_SAMPLES = {name: (data, {**options, "format_version": 2}) for name, (data, options, _) in SAMPLES.items()}


@pytest.fixture(scope="module")
def v2_samples(codec) -> dict[str, tuple[bytes, bytes]]:
    return {name: (data, codec.compress(data, **options)) for name, (data, options) in V2_SAMPLES.items()}


def test_version_2_samples_round_trip_in_few_bytes(codec, v2_samples):
    """At most 24 bytes besides the payload, not counting the settings block,
    which here holds the stub model's environment (the real model's, the
    pinned build's, is the default and is not written)."""
    for name, (original, blob) in v2_samples.items():
        assert codec.decompress(blob) == original
        stream = io.BytesIO(blob)
        header, header_bytes = Header.read_bytes(stream)
        assert header.version == 2
        if name != "stream":  # every other sample is one frame
            assert header.single != FrameType.END, name
            settings = len(header_bytes) - (14 if header.model_id else 6)
            payload = SingleFrame.read(stream, header, header_bytes).header.payload_size
            assert len(blob) - payload - settings <= 24, name


@pytest.mark.parametrize("name", ["stored", "zstd", "empty", "zstd_only", "stored_only"])
def test_version_2_every_bit_flip_without_model(codec, v2_samples, name):
    """No frame header, no header checksum: the one checksum still finds every flip
    outside the zstd payload (where zstd may ignore a bit)."""
    original, blob = v2_samples[name]
    accepted = [
        bit for bit in range(8 * len(blob)) if decode_or_error(codec, flip(blob, bit), original) is None
    ]
    if accepted:
        assert name in ("zstd", "zstd_only"), f"bits {accepted} of the {name} file are not checked"


@pytest.mark.parametrize("name", ["neural", "lanes", "stream"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_version_2_random_bit_flip_in_neural_file(codec, v2_samples, name, data):
    original, blob = v2_samples[name]
    decode_or_error(codec, flip(blob, data.draw(st.integers(0, 8 * len(blob) - 1))), original)


def test_version_2_every_bit_flip_in_the_neural_header(codec, v2_samples):
    """The header of a file of one frame has no checksum of its own: a flip is
    found before decoding (magic, version, descriptor, model) or by the file's
    checksum after it, never passed on."""
    original, blob = v2_samples["neural"]
    header, header_bytes = Header.read_bytes(io.BytesIO(blob))
    assert header.single == FrameType.NEURAL
    for bit in range(8 * len(header_bytes) + 16):  # and the two sizes after it
        error = decode_or_error(codec, flip(blob, bit), original)
        assert error is not None, f"bit {bit} went unnoticed"
        if 8 * 6 <= bit < 8 * 14:
            assert isinstance(error, ModelMismatchError), f"bit {bit}: {error!r}"


@pytest.mark.parametrize("name", sorted(V2_SAMPLES))
def test_version_2_every_truncation(codec, v2_samples, name):
    """A file of one frame cannot tell a cut from damage (it has no room to say
    where its payload ends): refused either way, never wrong bytes."""
    original, blob = v2_samples[name]
    for n in range(len(blob)):
        error = decode_or_error(codec, blob[:n], original)
        assert error is not None, f"cut at {n} of {len(blob)} went unnoticed"


@pytest.mark.parametrize("name", sorted(V2_SAMPLES))
def test_version_2_trailing_bytes(codec, v2_samples, name):
    original, blob = v2_samples[name]
    for extra in (b"\x00", b"trailing garbage", blob):
        assert decode_or_error(codec, blob + extra, original) is not None


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"model_id": bytes(8)}, ModelMismatchError, "file needs model 0000"),
        ({"context": 1024}, ChecksumError, "frame 1"),
        ({"temperature": 2.0}, ChecksumError, "frame 1"),
        ({"start_token": 1}, ChecksumError, "frame 1"),
        ({"frame_size": 50}, FormatError, "in a frame of at most 50"),
    ],
)
def test_version_2_consistent_lies(codec, v2_samples, changes, error, message):
    """A header rewritten whole (so every structure is well formed) but lying."""
    _, blob = v2_samples["neural"]
    header, header_bytes = Header.read_bytes(io.BytesIO(blob))
    lie = dataclasses.replace(header, **changes).pack() + blob[len(header_bytes) :]
    with time_limit(TIME_LIMIT), pytest.raises(error, match=message):
        codec.decompress(lie)


# --- version 3: a file of one neural frame says where its payload ends ----------------

V3_SAMPLES = {name: (data, {**options, "format_version": 3}) for name, (data, options, _) in SAMPLES.items()}


@pytest.fixture(scope="module")
def v3_samples(codec) -> dict[str, tuple[bytes, bytes]]:
    return {name: (data, codec.compress(data, **options)) for name, (data, options) in V3_SAMPLES.items()}


def test_version_3_samples_round_trip_in_few_bytes(codec, v3_samples):
    """Version 2's bound plus Payload_Size (at most 3 bytes, neural frames only)."""
    for name, (original, blob) in v3_samples.items():
        assert codec.decompress(blob) == original
        stream = io.BytesIO(blob)
        header, header_bytes = Header.read_bytes(stream)
        assert header.version == 3
        if name != "stream":
            settings = len(header_bytes) - (14 if header.model_id else 6)
            one = SingleFrame.read(stream, header, header_bytes).header
            payload_size = len(pack_varint(one.payload_size)) if one.type == FrameType.NEURAL else 0
            assert len(blob) - one.payload_size - settings <= 24 + payload_size, name


@pytest.mark.parametrize("name", ["neural", "lanes"])
def test_version_3_every_truncation_is_told_without_decoding(codec, v3_samples, name):
    """The issue version 2 left open: a cut file of one neural frame is a
    TruncatedError, found by reading its sizes (info, before any model runs),
    and the decoder says the same."""
    original, blob = v3_samples[name]
    assert Header.read(io.BytesIO(blob)).single == FrameType.NEURAL
    for n in range(len(blob)):
        with pytest.raises(TruncatedError):
            read_info(io.BytesIO(blob[:n]))
        assert isinstance(decode_or_error(codec, blob[:n], original), TruncatedError), n


@pytest.mark.parametrize("name", sorted(V3_SAMPLES))
def test_version_3_trailing_bytes(codec, v3_samples, name):
    original, blob = v3_samples[name]
    for extra in (b"\x00", b"trailing garbage", blob):
        assert decode_or_error(codec, blob + extra, original) is not None


@pytest.mark.parametrize("name", ["neural", "lanes"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_version_3_random_bit_flip_in_neural_file(codec, v3_samples, name, data):
    original, blob = v3_samples[name]
    decode_or_error(codec, flip(blob, data.draw(st.integers(0, 8 * len(blob) - 1))), original)
