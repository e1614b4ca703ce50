"""nacrith.format: varints, the file header, frame headers and the trailer, without any model.

A reader must turn every malformed input into a FormatError subclass with a
message naming the problem; anything else (IndexError, struct.error, a
silently wrong header) would be a bug.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nacrith.errors import FormatError, TruncatedError, UnsupportedVersionError
from nacrith.format import (
    ESCAPE_SYMBOLS,
    FOOTER_MAGIC,
    MAGIC,
    MAX_PARAMS_SIZE,
    V2_ENVIRONMENT,
    FrameHeader,
    FrameType,
    Header,
    HeaderFlag,
    IndexEntry,
    SingleFrame,
    Tag,
    Trailer,
    ensemble_of_layout,
    pack_ensemble,
    pack_single,
    pack_varint,
    unpack_ensemble,
    varint_from,
    zstd_stream_bound,
)
from nacrith.options import CONTEXT_HEADS_MIN_INPUT, CompressOptions
from nacrith.settings import LEGACY_CODING, MAX_CONTEXT, MAX_FRAME_SIZE, MIN_CONTEXT, Coding, EnsembleSettings

# --- helpers ------------------------------------------------------------------

SHA = bytes(range(32))


def make_header(**changes) -> Header:
    fields = dict(
        model_id=SHA,
        vocab_size=49152,
        context=2048,
        slide=512,
        temperature=0.75,  # exact in float32, as CompressOptions guarantees
        frame_size=1 << 20,
        start_token=0,
        escapes=256,
        content_size=12345,
        model_name="SmolLM2-135M ✓",
        environment="llama.cpp b1234 / cpu",
    )
    fields.update(changes)
    return Header(**fields)


def param(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + pack_varint(len(value)) + value


def required_params(**changes: bytes) -> dict[int, bytes]:
    """The raw values of the required parameters of a valid header, keyed by tag."""
    values = {
        Tag.MODEL_SHA256: SHA,
        Tag.VOCAB_SIZE: pack_varint(49152),
        Tag.CONTEXT: pack_varint(2048),
        Tag.SLIDE: pack_varint(512),
        Tag.TEMPERATURE: struct.pack("<f", 1.0),
        Tag.ESCAPES: pack_varint(256),
        Tag.FRAME_SIZE: pack_varint(1 << 20),
        Tag.START_TOKEN: pack_varint(7),
    }
    values.update({Tag[name]: v for name, v in changes.items()})
    return values


def raw_header(params: bytes, version: int = 1, required: int = 0, optional: int = 0) -> bytes:
    """A header with any parameter bytes and a correct CRC, to reach the checks after the CRC."""
    body = MAGIC + bytes([version, required, optional]) + pack_varint(len(params)) + params
    return body + struct.pack("<I", zlib.crc32(body))


def params_of(values: dict[int, bytes]) -> bytes:
    return b"".join(param(tag, value) for tag, value in values.items())


def read_header(data: bytes) -> Header:
    return Header.read(io.BytesIO(data))


def read_frame_header(data: bytes, frame_size: int = 1000) -> FrameHeader:
    stream = io.BytesIO(data)
    return FrameHeader.read_after_type(stream, FrameHeader.read_type(stream), frame_size)


def read_trailer(data: bytes) -> Trailer:
    stream = io.BytesIO(data)
    assert FrameHeader.read_type(stream) == FrameType.END
    return Trailer.read_after_type(stream)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- varints --------------------------------------------------------------------


@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(value):
    packed = pack_varint(value)
    assert varint_from(packed, "test") == value
    assert len(packed) == max(1, -(-value.bit_length() // 7))  # 7 bits a byte, no padding


@pytest.mark.parametrize(
    ("value", "packed"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (49152, b"\x80\x80\x03"),  # the worked example of docs/format.md
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varint_known_encodings(value, packed):
    """Unsigned LEB128, least significant group first."""
    assert pack_varint(value) == packed


@pytest.mark.parametrize("value", [-1, 2**64, 2**70])
def test_varint_out_of_range_refused(value):
    with pytest.raises(ValueError, match="out of range"):
        pack_varint(value)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"\x80\x00", FormatError, "over-long"),  # 0 written in two bytes: one value, one encoding
        (b"\xff\x80\x00", FormatError, "over-long"),
        (b"\xff" * 9 + b"\x02", FormatError, "too long"),  # 2^64: beyond 64 bits
        (b"\xff" * 9 + b"\x81\x00", FormatError, "too long"),
        (b"\x80" * 11, FormatError, "too long"),
        # A parameter value passed the header checksum: a cut varint in it is corruption, not truncation.
        (b"\x80", FormatError, "cut varint"),
        (b"", FormatError, "cut varint"),
        (b"\x05\x00", FormatError, "trailing bytes"),
    ],
)
def test_varint_malformed(data, error, message):
    with pytest.raises(error, match=message):
        varint_from(data, "test")


# --- file header ----------------------------------------------------------------


def test_header_round_trip_all_fields():
    header = make_header()
    packed = header.pack()
    stream = io.BytesIO(packed + b"frames follow")
    read = Header.read(stream)
    assert read == header
    assert (read.content_size, read.model_name, read.environment) == (
        12345,
        "SmolLM2-135M ✓",
        header.environment,
    )
    assert read.unknown_ignorable == {}
    assert stream.tell() == len(packed)  # the reader stops exactly at the header's end


def test_header_round_trip_optional_fields_absent():
    """content_size None and empty names are not written at all, and read back as such."""
    header = make_header(content_size=None, model_name="", environment="")
    packed = header.pack()
    assert len(packed) < len(make_header().pack())
    assert read_header(packed) == header
    assert read_header(make_header(content_size=0).pack()).content_size == 0


@given(
    sha=st.binary(min_size=32, max_size=32),
    vocab=st.integers(1, 2**64 - 1),
    start_frac=st.floats(0, 1, exclude_max=True),
    context=st.integers(MIN_CONTEXT, MAX_CONTEXT),
    slide_frac=st.floats(0, 1),
    temperature=st.floats(min_value=0, exclude_min=True, width=32, allow_infinity=False),
    frame_size=st.integers(1, MAX_FRAME_SIZE),
    content_size=st.none() | st.integers(0, 2**64 - 1),
    name=st.text(max_size=40),
    env=st.text(max_size=40),
)
def test_header_round_trip_any_values(
    sha, vocab, start_frac, context, slide_frac, temperature, frame_size, content_size, name, env
):
    header = Header(
        model_id=sha,
        vocab_size=vocab,
        context=context,
        slide=1 + int(slide_frac * (context - 3)),
        temperature=temperature,
        frame_size=frame_size,
        start_token=min(int(start_frac * vocab), vocab - 1),
        escapes=ESCAPE_SYMBOLS,
        content_size=content_size,
        model_name=name,
        environment=env,
    )
    assert read_header(header.pack()) == header


def test_header_rejects_invalid_values_on_construction():
    with pytest.raises(ValueError, match="32 bytes"):
        make_header(model_id=b"x" * 31)
    with pytest.raises(ValueError, match="frame_size"):
        make_header(frame_size=0)
    with pytest.raises(ValueError, match="frame_size"):
        make_header(frame_size=MAX_FRAME_SIZE + 1)
    with pytest.raises(ValueError, match="slide"):
        make_header(context=100, slide=99)
    with pytest.raises(ValueError, match="slide"):
        make_header(slide=0)
    with pytest.raises(ValueError, match="context"):
        make_header(context=MIN_CONTEXT - 1, slide=1)
    with pytest.raises(ValueError, match="context"):
        make_header(context=MAX_CONTEXT + 1)
    with pytest.raises(ValueError, match="start token"):
        make_header(start_token=49152)
    with pytest.raises(ValueError, match="start token"):
        make_header(start_token=-1)


def test_header_unknown_ignorable_tag_is_skipped_and_kept():
    """Bit 7 set: a newer writer's optional parameter; this reader skips it but keeps its bytes."""
    values = required_params()
    params = params_of(values) + param(0x90, b"hello") + param(0xFF, b"")
    header = read_header(raw_header(params))
    assert header == Header(
        model_id=SHA,
        vocab_size=49152,
        context=2048,
        slide=512,
        temperature=1.0,
        frame_size=1 << 20,
        start_token=7,
    )
    assert header.unknown_ignorable == {0x90: b"hello", 0xFF: b""}


def test_header_known_ignorable_tags_are_not_unknown():
    header = read_header(make_header().pack())
    assert Tag.MODEL_NAME & 0x80 and Tag.ENVIRONMENT & 0x80
    assert header.unknown_ignorable == {}


@pytest.mark.parametrize("tag", [0x00, max(t for t in Tag if t < 0x80) + 1, 0x7F])  # first unassigned, last
def test_header_unknown_required_tag(tag):
    params = params_of(required_params()) + param(tag, b"\x01")
    with pytest.raises(UnsupportedVersionError, match=f"header parameter {tag:#04x}"):
        read_header(raw_header(params))


@pytest.mark.parametrize("version", [0, 4, 255])
def test_header_other_version(version):
    data = raw_header(params_of(required_params()), version=version)
    with pytest.raises(UnsupportedVersionError, match=f"format version {version}"):
        read_header(data)


@pytest.mark.parametrize("flags", [0x04, 0x80, 0xFF])
def test_header_required_flags(flags):
    with pytest.raises(UnsupportedVersionError, match="required flags"):
        read_header(raw_header(params_of(required_params()), required=flags))


def test_header_without_model_round_trip():
    for content_size in (None, 0, 12345):
        for zstd_stream in (False, True):
            header = Header.without_model(1 << 20, content_size, zstd_stream)
            packed = header.pack()
            assert packed[5] == HeaderFlag.NO_MODEL | (HeaderFlag.ZSTD_STREAM if zstd_stream else 0)
            assert read_header(packed) == header
            assert len(packed) <= 22, "a file without a model keeps its header small"


def test_header_stream_flag_round_trip():
    header = make_header(zstd_stream=True)
    assert read_header(header.pack()) == header
    assert header.pack()[5] == HeaderFlag.ZSTD_STREAM


def test_header_without_model_refuses_model_parameters():
    with pytest.raises(FormatError, match=r"MODEL_SHA256, VOCAB_SIZE.* in a file without a model"):
        read_header(raw_header(params_of(required_params()), required=HeaderFlag.NO_MODEL))
    with pytest.raises(FormatError, match="missing FRAME_SIZE"):
        read_header(raw_header(b"", required=HeaderFlag.NO_MODEL))
    with pytest.raises(ValueError, match="no model parameters"):
        Header(None, 49152, 0, 0, 0.0, 1 << 20, 0)


@pytest.mark.parametrize("escapes", [0, 255, 257])
def test_header_other_escape_count(escapes):
    """Version 1 has exactly 256 escapes; another count is a feature this reader does not know."""
    params = params_of(required_params(ESCAPES=pack_varint(escapes)))
    with pytest.raises(UnsupportedVersionError, match=f"{escapes} escape symbols"):
        read_header(raw_header(params))


def test_header_optional_flags_are_ignored():
    """Optional flags mark features a reader may skip: any value reads."""
    assert read_header(raw_header(params_of(required_params()), optional=0xFF)).vocab_size == 49152


@pytest.mark.parametrize("data", [b"PK\x03\x04" + bytes(40), b"\x88NCR" + bytes(40), b"NCR\x89", b"\x89NCX"])
def test_header_bad_magic(data):
    with pytest.raises(FormatError, match="bad magic") as info:
        read_header(data)
    assert not isinstance(info.value, TruncatedError)


def test_header_empty_input():
    with pytest.raises(TruncatedError, match="empty"):
        read_header(b"")


def test_header_every_truncation_is_truncated_error():
    """Cut anywhere inside the header: the reader says the file is truncated, nothing else."""
    packed = make_header().pack()
    for n in range(len(packed)):
        with pytest.raises(TruncatedError, match=r"truncated|empty"):
            read_header(packed[:n])


def test_header_crc_mismatch():
    packed = make_header().pack()
    with pytest.raises(FormatError, match="checksum"):
        read_header(packed[:-4] + struct.pack("<I", zlib.crc32(packed[:-4]) ^ 1))
    # A change to the parameters is caught by the same CRC.
    name_at = packed.index(b"SmolLM2")
    with pytest.raises(FormatError, match="checksum"):
        read_header(flip(packed, 8 * name_at))


def test_header_every_bit_flip_is_a_format_error():
    """No single-bit error in a header reads as a header, or escapes as a non-FormatError."""
    packed = make_header().pack()
    for bit in range(8 * len(packed)):
        with pytest.raises(FormatError):
            read_header(flip(packed, bit))


def test_header_parameter_block_too_large():
    data = MAGIC + bytes([1, 0, 0]) + pack_varint(MAX_PARAMS_SIZE + 1)
    with pytest.raises(FormatError, match="parameter block"):
        read_header(data + bytes(16))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (params_of(required_params()) + param(Tag.VOCAB_SIZE, b"\x01"), "appears twice"),
        (params_of({t: v for t, v in required_params().items() if t != Tag.SLIDE}), "missing SLIDE"),
        (params_of(required_params()) + b"\x90\x7f", "runs past the parameter block"),
        (params_of(required_params()) + b"\x90", "runs past the parameter block"),  # a tag, no length
        (params_of(required_params()) + b"\x90\x80", "runs past the parameter block"),  # half a length
        (params_of(required_params(MODEL_SHA256=SHA[:31])), "bad parameter length"),
        (params_of(required_params(TEMPERATURE=b"\x00\x00\x80\x3f\x00")), "bad parameter length"),
        (params_of(required_params(TEMPERATURE=struct.pack("<f", 0.0))), "temperature"),
        (params_of(required_params(TEMPERATURE=struct.pack("<f", -1.0))), "temperature"),
        (params_of(required_params(TEMPERATURE=struct.pack("<f", float("inf")))), "temperature"),
        (params_of(required_params(TEMPERATURE=struct.pack("<f", float("nan")))), "temperature"),
        (params_of(required_params(VOCAB_SIZE=b"\x05\x00")), "trailing bytes"),
        (params_of(required_params(CONTEXT=b"")), "CONTEXT"),
        (params_of({t: v for t, v in required_params().items() if t != Tag.START_TOKEN}), "START_TOKEN"),
        (params_of(required_params(START_TOKEN=pack_varint(49152))), "start token"),
        (params_of(required_params(SLIDE=pack_varint(2047))), "slide"),
        (params_of(required_params(SLIDE=pack_varint(0))), "slide"),
        (params_of(required_params(CONTEXT=pack_varint(MIN_CONTEXT - 1), SLIDE=pack_varint(1))), "context"),
        (params_of(required_params(CONTEXT=pack_varint(MAX_CONTEXT + 1))), "context"),
        (params_of(required_params(FRAME_SIZE=pack_varint(0))), "frame_size"),
        (params_of(required_params(FRAME_SIZE=pack_varint(MAX_FRAME_SIZE + 1))), "frame_size"),
        (params_of(required_params()) + param(Tag.MODEL_NAME, b"\xff\xfe"), "corrupt file header"),
    ],
)
def test_header_bad_parameters(params, message):
    """Parameters that pass the CRC but make no sense: FormatError naming the problem."""
    with pytest.raises(FormatError, match=message):
        read_header(raw_header(params))


# --- frame headers --------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        FrameHeader(FrameType.STORED, 1000, 1000, 0, 0xDEADBEEF),
        FrameHeader(FrameType.ZSTD, 1000, 999, 0, 0),
        FrameHeader(FrameType.NEURAL, 1000, 1, 1000, 0xFFFFFFFF),
        FrameHeader(FrameType.NEURAL, 2, 1, 2, 0x12345678),
        FrameHeader(FrameType.STORED, 1, 1, 0, 0),
    ],
)
def test_frame_header_round_trip(frame):
    packed = frame.pack()
    stream = io.BytesIO(packed + b"payload")
    assert FrameHeader.read_after_type(stream, FrameHeader.read_type(stream), 1000) == frame
    assert stream.tell() == len(packed)


@given(
    st.sampled_from([FrameType.STORED, FrameType.ZSTD, FrameType.NEURAL]),
    st.integers(2, MAX_FRAME_SIZE),
    st.data(),
)
def test_frame_header_round_trip_any_sizes(ftype, raw_size, data):
    payload = raw_size if ftype == FrameType.STORED else data.draw(st.integers(1, raw_size - 1))
    symbols = data.draw(st.integers(1, raw_size)) if ftype == FrameType.NEURAL else 0
    frame = FrameHeader(ftype, raw_size, payload, symbols, data.draw(st.integers(0, 2**32 - 1)))
    assert read_frame_header(frame.pack(), MAX_FRAME_SIZE) == frame


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (FrameHeader(FrameType.STORED, 0, 0, 0, 0), "0 bytes in a frame"),
        (FrameHeader(FrameType.ZSTD, 1001, 10, 0, 0), "1001 bytes in a frame of at most 1000"),
        (FrameHeader(FrameType.STORED, 100, 99, 0, 0), "payload of 99 bytes for 100"),
        (FrameHeader(FrameType.STORED, 100, 101, 0, 0), "payload of 101 bytes"),
        (FrameHeader(FrameType.ZSTD, 100, 100, 0, 0), "payload of 100 bytes"),
        (FrameHeader(FrameType.ZSTD, 100, 0, 0, 0), "payload of 0 bytes"),
        (FrameHeader(FrameType.NEURAL, 100, 100, 10, 0), "payload of 100 bytes"),
        (FrameHeader(FrameType.NEURAL, 100, 0, 10, 0), "payload of 0 bytes"),
        (FrameHeader(FrameType.NEURAL, 100, 10, 101, 0), "101 symbols for 100 bytes"),
        (FrameHeader(FrameType.NEURAL, 100, 10, 0, 0), "0 symbols"),
    ],
)
def test_frame_header_validation(frame, message):
    """Sizes a writer never produces are refused after the CRC, before any payload is read."""
    with pytest.raises(FormatError, match=message):
        read_frame_header(frame.pack())


@pytest.mark.parametrize("byte", [5, 0x7F, 0xFF])
def test_frame_unknown_type(byte):
    with pytest.raises(FormatError, match=f"unknown frame type {byte}"):
        FrameHeader.read_type(io.BytesIO(bytes([byte])))


def test_frame_header_truncated_and_corrupt():
    packed = FrameHeader(FrameType.NEURAL, 900, 300, 200, 0xCAFEBABE).pack()
    for n in range(len(packed)):
        with pytest.raises(TruncatedError, match="truncated"):
            read_frame_header(packed[:n])
    for bit in range(8, 8 * len(packed)):  # every bit after the type byte
        with pytest.raises(FormatError):
            read_frame_header(flip(packed, bit))
    with pytest.raises(FormatError, match="corrupt frame header: checksum"):
        read_frame_header(packed[:-1] + bytes([packed[-1] ^ 0x10]))


# --- trailer ----------------------------------------------------------------------

TRAILER = Trailer(
    content_size=2500,
    content_sha256_8=b"\x01\x23\x45\x67\x89\xab\xcd\xef",
    entries=(
        IndexEntry(FrameType.NEURAL, 1000, 200),
        IndexEntry(FrameType.ZSTD, 1000, 50),
        IndexEntry(FrameType.STORED, 500, 500),
    ),
)


def test_trailer_round_trip():
    packed = TRAILER.pack()
    assert packed.endswith(FOOTER_MAGIC)
    assert struct.unpack("<I", packed[-8:-4])[0] == len(packed) - 8
    assert read_trailer(packed) == TRAILER


def test_trailer_read_from_end():
    """info reads the index from the end of a file without touching the frames before it."""
    stream = io.BytesIO(b"header and frames, anything at all" + TRAILER.pack())
    assert Trailer.read_from_end(stream) == TRAILER
    empty = Trailer(0, bytes(8), ())
    assert Trailer.read_from_end(io.BytesIO(empty.pack())) == empty


@given(
    st.lists(
        st.tuples(
            st.sampled_from([FrameType.STORED, FrameType.ZSTD, FrameType.NEURAL]),
            st.integers(0, 2**40),
            st.integers(0, 2**40),
        ),
        max_size=20,
    ),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=8, max_size=8),
)
def test_trailer_round_trip_any_entries(entries, extra, digest):
    trailer = Trailer(len(entries) + extra // 2, digest, tuple(IndexEntry(*e) for e in entries))
    assert read_trailer(trailer.pack()) == trailer
    assert Trailer.read_from_end(io.BytesIO(b"x" + trailer.pack())) == trailer


def test_trailer_every_truncation_and_bit_flip():
    packed = TRAILER.pack()
    for n in range(1, len(packed)):
        with pytest.raises(TruncatedError, match="truncated"):
            read_trailer(packed[:n])
    for bit in range(8, 8 * len(packed)):
        with pytest.raises(FormatError):
            read_trailer(flip(packed, bit))
        with pytest.raises(FormatError):
            Trailer.read_from_end(io.BytesIO(flip(packed, bit)))


def footer(body: bytes) -> bytes:
    """body (starting at the END byte, without CRC) closed with a correct CRC, size and magic."""
    body += struct.pack("<I", zlib.crc32(body))
    return body + struct.pack("<I", len(body)) + FOOTER_MAGIC


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            footer(b"\x00" + pack_varint(1) + bytes(8) + pack_varint(2) + b"\x01\x01\x01" * 2),
            "2 frames for 1",
        ),
        (footer(b"\x00" + pack_varint(9) + bytes(8) + pack_varint(1) + b"\x00\x01\x01"), "frame type 0"),
        (footer(b"\x00" + pack_varint(9) + bytes(8) + pack_varint(1) + b"\x05\x01\x01"), "frame type 5"),
        (TRAILER.pack()[:-8] + struct.pack("<I", 3) + FOOTER_MAGIC, "corrupt footer"),
        (TRAILER.pack()[:-4] + b"NCIY", "corrupt footer"),
        (TRAILER.pack()[:-9] + b"\x00" + TRAILER.pack()[-8:], "index: checksum"),
    ],
)
def test_trailer_malformed(data, message):
    with pytest.raises(FormatError, match=message):
        read_trailer(data)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", TruncatedError, "no footer"),
        (b"NCIX", TruncatedError, "no footer"),
        (TRAILER.pack()[:-1], TruncatedError, "no footer at the end"),
        (TRAILER.pack() + b"\x00", TruncatedError, "no footer at the end"),
        (struct.pack("<I", 100) + FOOTER_MAGIC, FormatError, "index size out of range"),
        (struct.pack("<I", 0) + FOOTER_MAGIC, FormatError, "index size out of range"),
        (b"\x01" + struct.pack("<I", 1) + FOOTER_MAGIC, FormatError, "end marker"),
    ],
)
def test_trailer_read_from_end_malformed(data, error, message):
    with pytest.raises(error, match=message):
        Trailer.read_from_end(io.BytesIO(data))


# --- ensemble settings ----------------------------------------------------------


#: Layout 1's defaults, as files made since the ensemble existed imply them. Never edit.
LAYOUT_1 = dict(
    ngram_min_order=1,
    ngram_max_order=4,
    ngram_table_bits=18,
    ngram_candidates=8,
    ngram_count_limit=255,
    match_min_len=6,
    match_hash_bits=20,
    match_history_bits=22,
    match_rate_limit=1023,
    bias_lr=0.5,
    bias_limit=8.0,
    mixer_lr=0.02,
    mixer_limit=8.0,
    apm_rate=0.005,
    skip_min_len=24,
    skip_confidence=0.98,
    skip_warmup=256,
    skip_batch=32,
    skip_agree=0.0,
    skip_solo_min_len=0,
    skip_solo_confidence=0.98,
    bias_scale_lr=0.0,
    # Settings added later, at the value that keeps older files' meaning.
    bias_contexts=0,
    bias_context_lr=0.25,
)


#: Layout 2's defaults. Never edit: written out here, not taken from the code,
#: so that a change to the frozen table there fails this test.
LAYOUT_2 = {
    **LAYOUT_1,
    "ngram_min_order": 2,
    "skip_min_len": 16,
    "skip_confidence": 0.9,
    "skip_agree": 0.9,
    "skip_solo_min_len": 24,
    "bias_scale_lr": 0.05,
}


@pytest.mark.parametrize(("layout", "values"), [(1, LAYOUT_1), (2, LAYOUT_2)])
def test_layout_defaults_never_move(layout, values):
    """A header with switches only means these values, whatever compress's defaults are today."""
    implied = unpack_ensemble(bytes([layout, 0b11111]))
    assert implied == EnsembleSettings(**values) == ensemble_of_layout(layout)
    assert pack_ensemble(implied) == bytes([layout, 0b11111])  # packed in the layout it was read in


def test_default_ensemble_is_the_newest_layout_with_context_heads():
    """Layout 2 has no context heads; compress asks for 64, which costs 3 more
    bytes of ENSEMBLE value, and only on inputs large enough to gain more than that."""
    today = EnsembleSettings()
    assert pack_ensemble(today) == bytes([2, 0b11111, 22]) + struct.pack("<H", 64)
    small = CompressOptions().for_input(CONTEXT_HEADS_MIN_INPUT - 1).ensemble
    assert small is not None and pack_ensemble(small) == bytes([2, 0b11111])
    for size in (CONTEXT_HEADS_MIN_INPUT, None):
        assert CompressOptions().for_input(size).ensemble == today
    assert CompressOptions(ensemble=None).for_input(10).ensemble is None
    assert unpack_ensemble(pack_ensemble(today.without("skip", "bias"))).enabled == ("ngram", "match", "apm")


def test_settings_read_from_an_old_layout_keep_their_meaning_and_layout():
    old = ensemble_of_layout(1, mixer_lr=0.05)
    packed = pack_ensemble(old)
    assert packed == bytes([1, 0b11111, 11]) + struct.pack("<f", 0.05)
    assert unpack_ensemble(packed) == old and unpack_ensemble(packed).layout == 1
    # The same meaning in layout 2 stores what differs from layout 2's defaults instead.
    assert unpack_ensemble(pack_ensemble(replace(old, layout=2))) == old


@given(
    switches=st.tuples(*[st.booleans()] * 5),
    min_order=st.integers(1, 8),
    extra_order=st.integers(0, 7),
    table_bits=st.integers(8, 26),
    candidates=st.integers(1, 16),
    bias_lr=st.floats(0, 1, exclude_min=True, width=32),
    bias_scale_lr=st.floats(0, 4, width=32),
    bias_contexts=st.integers(0, 65535),
    bias_context_lr=st.floats(0, 4, exclude_min=True, width=32),
    mixer_limit=st.floats(0, 32, exclude_min=True, width=32),
    skip_warmup=st.integers(0, 2**32 - 1),
    skip_batch=st.integers(1, 65535),
    skip_agree=st.floats(0, 1, exclude_max=True, width=32),
    solo_min_len=st.sampled_from([0, 6, 24, 65535]),
    solo_confidence=st.floats(0, 1, exclude_min=True, exclude_max=True, width=32),
)
def test_ensemble_settings_round_trip(
    switches,
    min_order,
    extra_order,
    table_bits,
    candidates,
    bias_lr,
    bias_scale_lr,
    bias_contexts,
    bias_context_lr,
    mixer_limit,
    skip_warmup,
    skip_batch,
    skip_agree,
    solo_min_len,
    solo_confidence,
):
    ngram, match, bias, skip, apm = switches
    settings = EnsembleSettings(
        ngram=ngram,
        match=match,
        bias=bias,
        skip=skip and match,
        apm=apm,
        ngram_min_order=min_order,
        ngram_max_order=min(8, min_order + extra_order),
        ngram_table_bits=table_bits,
        ngram_candidates=candidates,
        bias_lr=bias_lr,
        bias_scale_lr=bias_scale_lr,
        bias_contexts=bias_contexts,
        bias_context_lr=bias_context_lr,
        mixer_limit=mixer_limit,
        skip_warmup=skip_warmup,
        skip_batch=skip_batch,
        skip_agree=skip_agree,
        skip_solo_min_len=solo_min_len,
        skip_solo_confidence=solo_confidence,
    )
    assert unpack_ensemble(pack_ensemble(settings)) == settings


def test_ensemble_floats_are_float32_exact():
    """The encoder codes with the value the decoder will read from the header."""
    settings = EnsembleSettings(bias_lr=0.1)
    assert settings.bias_lr == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert unpack_ensemble(pack_ensemble(settings)).bias_lr == settings.bias_lr


def test_header_with_ensemble_round_trip():
    header = make_header(ensemble=EnsembleSettings(ngram_max_order=6))
    assert read_header(header.pack()) == header
    assert read_header(make_header().pack()).ensemble is None


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (b"", FormatError, "too short"),
        (b"\x01", FormatError, "too short"),
        (b"\x03\x1f", UnsupportedVersionError, "layout 3; this nacrith knows layouts 1, 2"),
        (b"\x01\x3f", UnsupportedVersionError, "parts unknown"),
        (b"\x01\x1f\x18\x00\x00", UnsupportedVersionError, "setting 24"),
        (b"\x01\x1f\x17\x00\x00\x00\x00", FormatError, "context heads' learning rate"),  # 0.0
        (b"\x01\x1f\x15\x00\x00\x80\xbf", FormatError, "bias scale"),  # -1.0
        (b"\x01\x1f\x13\x03\x00", FormatError, "solo skip length"),  # 3 < match length 6
        (b"\x01\x1f\x14\x00\x00\x00\x00", FormatError, "solo skip confidence"),  # 0.0
        (b"\x01\x1f\x12\x00\x00\x80\x3f", FormatError, "skip agreement"),  # 1.0
        (b"\x01\x1f\x12\x00\x00\x80\xbf", FormatError, "skip agreement"),  # -1.0
        (b"\x01\x1f\x01\x05\x01\x06", FormatError, "out of order"),
        (b"\x01\x1f\x04\x01", FormatError, "cut short"),
        (b"\x01\x1f\x01\x09", FormatError, "n-gram orders"),
        (b"\x01\x1f\x09\x00\x00\x00\x00", FormatError, "bias learning rate"),
        (b"\x01\x1f\x09\x00\x00\xc0\x7f", FormatError, "bias learning rate"),  # NaN
        (b"\x01\x09", FormatError, "skip needs the match"),
        (b"\x01\x1f\x11\x00\x00", FormatError, "skip batch"),
    ],
)
def test_ensemble_bad_parameters(value, error, message):
    params = params_of(required_params()) + param(Tag.ENSEMBLE, value)
    with pytest.raises(error, match=message):
        read_header(raw_header(params))


def test_header_refuses_a_skip_batch_larger_than_the_slide():
    params = params_of(required_params(SLIDE=pack_varint(16))) + param(Tag.ENSEMBLE, b"\x01\x1f")
    with pytest.raises(FormatError, match="skip batch"):
        read_header(raw_header(params))


# --- zstd stream frames ---------------------------------------------------------


@given(st.integers(1, MAX_FRAME_SIZE), st.data())
def test_stream_frame_round_trip_up_to_its_bound(raw_size, data):
    """A piece of the zstd stream may be a little larger than its bytes (zstd's block
    headers on data it cannot shrink), up to zstd_stream_bound."""
    payload = data.draw(st.integers(1, zstd_stream_bound(raw_size)))
    fh = FrameHeader(FrameType.ZSTD_STREAM, raw_size, payload, 0, 7)
    stream = io.BytesIO(fh.pack())
    assert FrameHeader.read_after_type(stream, FrameHeader.read_type(stream), MAX_FRAME_SIZE) == fh


@pytest.mark.parametrize("payload", [0, "bound+1"])
def test_stream_frame_payload_out_of_bounds(payload):
    size = zstd_stream_bound(1000) + 1 if payload == "bound+1" else 0
    stream = io.BytesIO(FrameHeader(FrameType.ZSTD_STREAM, 1000, size, 0, 0).pack())
    with pytest.raises(FormatError, match=f"payload of {size} bytes for 1000"):
        FrameHeader.read_after_type(stream, FrameHeader.read_type(stream), 1000)


def test_trailer_lists_stream_frames():
    trailer = Trailer(
        3000, bytes(8), (IndexEntry(FrameType.ZSTD_STREAM, 1000, 1005), IndexEntry(FrameType.NEURAL, 2000, 9))
    )
    stream = io.BytesIO(trailer.pack())
    assert FrameHeader.read_type(stream) == FrameType.END
    assert Trailer.read_after_type(stream) == trailer


# --- CODING ---------------------------------------------------------------------


@pytest.mark.parametrize("coding", [Coding(), Coding(2, False), Coding(1, True)])
def test_coding_round_trip(coding):
    header = make_header(coding=coding)
    packed = header.pack()
    assert param(Tag.CODING, pack_varint(coding.arith) + bytes([coding.shared])) in packed
    assert read_header(packed).coding == coding


def test_files_without_coding_are_arithmetic_1_with_an_ensemble_per_stream():
    header = read_header(raw_header(params_of(required_params())))
    assert header.coding == LEGACY_CODING == Coding(arith=1, shared=False)
    # Written by leaving the tag (4 bytes) out.
    assert len(make_header(coding=LEGACY_CODING).pack()) == len(make_header(coding=Coding()).pack()) - 4


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (b"", FormatError, "CODING cut short"),
        (b"\x02", FormatError, "CODING cut short"),
        (b"\x02\x01\x00", FormatError, "trailing bytes in CODING"),
        (b"\x02\x02", FormatError, "sharing flag 2"),
        (b"\x01\x00", FormatError, "CODING written at its default"),  # one spelling: the tag left out
        (b"\x03\x01", UnsupportedVersionError, "arithmetic 3"),
        (b"\x00\x01", UnsupportedVersionError, "arithmetic 0"),
    ],
)
def test_coding_values_that_are_refused(value, error, message):
    params = params_of(required_params(CODING=value))
    with pytest.raises(error, match=message):
        read_header(raw_header(params))


def test_coding_is_refused_without_a_model():
    params = param(Tag.FRAME_SIZE, pack_varint(100)) + param(Tag.CODING, b"\x02\x01")
    with pytest.raises(FormatError, match="CODING in a file without a model"):
        read_header(raw_header(params, required=HeaderFlag.NO_MODEL))
    with pytest.raises(ValueError, match="no model parameters"):
        dataclasses.replace(Header.without_model(100), coding=Coding())


def test_coding_must_be_understood():
    """Bit 7 clear: a reader that predates arithmetic 2 refuses such a file rather than misreading it."""
    assert not Tag.CODING & 0x80


# --- version 2: the compact layout ----------------------------------------------------

V2_ID = bytes(range(8))


def v2_header(**changes) -> Header:
    """Version 2 at every default: what ``nacrith compress`` writes for an
    input below CONTEXT_HEADS_MIN_INPUT (from there, the ensemble's context heads too)."""
    fields = dict(
        model_id=V2_ID,
        vocab_size=None,
        context=2048,
        slide=512,
        temperature=1.0,
        frame_size=1 << 20,
        start_token=None,
        environment=V2_ENVIRONMENT,
        ensemble=EnsembleSettings(bias_contexts=0),
        lanes=16,
        min_stream=10240,
        coding=Coding(2, True),
        version=2,
        single=FrameType.NEURAL,
    )
    fields.update(changes)
    return Header(**fields)


def test_v2_default_header_is_its_magic_version_descriptor_and_model():
    packed = v2_header().pack()
    assert packed == MAGIC + b"\x02\x0b" + V2_ID
    assert Header.read(io.BytesIO(packed)) == v2_header()


def test_v2_default_file_of_one_frame_costs_at_most_24_bytes():
    """The bound holds below CONTEXT_HEADS_MIN_INPUT: 14 bytes of header, two
    varints of at most 3 bytes, the checksum. From there up to a full frame of
    1 MiB, the context heads add 8 bytes (the ENSEMBLE tag and the settings' size)."""
    for raw_size in (2, 127, 128, 385, 16383, 16384, CONTEXT_HEADS_MIN_INPUT, 1 << 20):
        raw = b"a" * raw_size
        payload = b"p" * max(1, raw_size // 4)
        ensemble = CompressOptions().for_input(raw_size).ensemble
        blob = pack_single(v2_header(ensemble=ensemble), raw, payload, raw_size)
        heads = 8 if raw_size >= CONTEXT_HEADS_MIN_INPUT else 0
        assert len(blob) - len(payload) <= 24 + heads, raw_size
        assert len(blob) - len(payload) == 18 + 2 * len(pack_varint(raw_size)) + heads


def test_v2_a_few_hundred_bytes_stored_cost_12():
    header = replace(Header.without_model(1 << 25, zstd_stream=False, version=2), single=FrameType.STORED)
    raw = bytes(range(256)) + bytes(44)
    blob = pack_single(header, raw, raw, 0)
    assert len(blob) == len(raw) + 12
    stream = io.BytesIO(blob)
    read, header_bytes = Header.read_bytes(stream)
    one = SingleFrame.read(stream, read, header_bytes)
    assert one.payload == raw and one.matches(raw) and not one.matches(raw[:-1] + b"x")


@given(
    context=st.integers(64, MAX_CONTEXT),
    slide_frac=st.floats(0, 1),
    temperature=st.floats(min_value=0, exclude_min=True, width=32, allow_infinity=False),
    frame_size=st.integers(1, MAX_FRAME_SIZE),
    start=st.none() | st.integers(0, 100_000),
    ensemble=st.sampled_from([None, EnsembleSettings(), ensemble_of_layout(2, ngram_max_order=6)]),
    lanes=st.sampled_from([(1, 0), (16, 10240), (4, 8), (256, 1)]),
    coding=st.sampled_from([Coding(1, False), Coding(2, True), Coding(2, False), Coding(1, True)]),
    single=st.sampled_from(list(FrameType)),
    content_size=st.none() | st.integers(0, 2**64 - 1),
    env=st.sampled_from([V2_ENVIRONMENT, "0.3.40 gpu 12345678 native", ""]),
    version=st.sampled_from([2, 3]),
)
def test_v2_header_round_trip_any_values(
    context,
    slide_frac,
    temperature,
    frame_size,
    start,
    ensemble,
    lanes,
    coding,
    single,
    content_size,
    env,
    version,
):
    header = v2_header(
        version=version,
        context=context,
        slide=32 + int(slide_frac * (context - 34)),  # room for the skip's batch
        temperature=temperature,
        frame_size=frame_size,
        start_token=start,
        ensemble=ensemble,
        lanes=lanes[0],
        min_stream=lanes[1],
        coding=coding,
        single=single,
        content_size=content_size if single == FrameType.END else None,
        environment=env,
        zstd_stream=single == FrameType.ZSTD_STREAM,
    )
    packed = header.pack()
    read, read_bytes = Header.read_bytes(io.BytesIO(packed))
    assert read == header and read_bytes == packed


def v2_raw(descriptor: int, settings: bytes = b"", model: bytes = V2_ID) -> bytes:
    """A version-2 header of a body of frames (descriptor's frame type 0), its checksum made."""
    body = MAGIC + bytes([2, descriptor]) + model
    if settings:
        body += pack_varint(len(settings)) + settings
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (Tag.CONTEXT, pack_varint(2048)),
        (Tag.SLIDE, pack_varint(512)),
        (Tag.TEMPERATURE, struct.pack("<f", 1.0)),
        (Tag.FRAME_SIZE, pack_varint(1 << 20)),
        (Tag.ENSEMBLE, b"\x02\x1f"),
        (Tag.LANES, pack_varint(16) + pack_varint(10240)),
        (Tag.CODING, b"\x02\x01"),
        (Tag.ENVIRONMENT, V2_ENVIRONMENT.encode()),
    ],
)
def test_v2_a_setting_at_its_default_is_corrupt(tag, value):
    """A header has one spelling: the default is written by leaving the setting out."""
    with pytest.raises(FormatError, match="default"):
        read_header(v2_raw(0x18, param(tag, value)))


@pytest.mark.parametrize("tag", [Tag.MODEL_SHA256, Tag.VOCAB_SIZE, Tag.ESCAPES])
def test_v2_refuses_version_1_only_parameters(tag):
    with pytest.raises(FormatError, match="does not belong"):
        read_header(v2_raw(0x18, param(tag, b"\x01")))


def test_v2_settings_of_a_file_without_a_model():
    assert read_header(v2_raw(0x10, param(Tag.FRAME_SIZE, pack_varint(4096)), model=b"")).frame_size == 4096
    with pytest.raises(FormatError, match="CONTEXT does not belong"):
        read_header(v2_raw(0x10, param(Tag.CONTEXT, pack_varint(64)), model=b""))


def test_v2_content_size_belongs_to_the_frame_in_a_file_of_one_frame():
    body = MAGIC + bytes([2, 0x1B]) + V2_ID + pack_varint(3) + param(Tag.CONTENT_SIZE, b"\x05")
    with pytest.raises(FormatError, match="CONTENT_SIZE does not belong"):
        read_header(body)


def test_v2_the_language_model_alone_and_one_lane_are_spelled():
    header = v2_header(ensemble=None, lanes=1, min_stream=0, coding=LEGACY_CODING)
    packed = header.pack()
    assert param(Tag.ENSEMBLE, b"\x00") in packed and param(Tag.LANES, b"\x01\x00") in packed
    assert param(Tag.CODING, b"\x01\x00") in packed
    assert read_header(packed) == header


@pytest.mark.parametrize("descriptor", [0x80, 0x88, 0xC8])
def test_v2_reserved_descriptor_bits_need_a_newer_reader(descriptor):
    with pytest.raises(UnsupportedVersionError, match="descriptor"):
        read_header(v2_raw(descriptor))


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        (0x0D, "frame type 5"),
        (0x0F, "frame type 7"),
        (0x03, "neural frame in a file without a model"),
        (0x29, "zstd stream flag in a file of one frame"),
    ],
)
def test_v2_bad_descriptors(descriptor, message):
    with pytest.raises(FormatError, match=message):
        read_header(MAGIC + bytes([2, descriptor]) + V2_ID + bytes(8))


def test_v2_empty_settings_block_is_corrupt():
    body = MAGIC + bytes([2, 0x18]) + V2_ID + b"\x00"
    with pytest.raises(FormatError, match="empty settings"):
        read_header(body + struct.pack("<I", zlib.crc32(body)))


def test_v2_header_of_frames_is_checksummed():
    """Every bit but the descriptor's frame type, whose flip makes a file of one
    frame, which has no header checksum: its file checksum finds the flip
    (tests/test_fuzz.py)."""
    packed = v2_raw(0x08)
    for bit in range(8 * len(packed)):
        if 8 * 5 <= bit < 8 * 5 + 3:
            continue
        with pytest.raises(FormatError):
            read_header(flip(packed, bit))


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"\x00\x01", FormatError, "0 bytes"),  # a neural frame holds at least a byte
        (pack_varint((1 << 20) + 1) + b"\x01", FormatError, "in a frame of at most"),
        (b"\x05\x06", FormatError, "6 symbols for 5 bytes"),
        (b"\x05\x05\x01\x02\x03", TruncatedError, "truncated"),  # under 5 bytes after the sizes
        (b"\x05\x05" + bytes(5) + bytes(4), FormatError, "payload of 5 bytes for 5"),
        (b"\x05\x05" + bytes(5 + 69), FormatError, "data after the end"),
    ],
)
def test_v2_one_frame_malformed(body, error, message):
    header = v2_header()
    with pytest.raises(error, match=message):
        SingleFrame.read(io.BytesIO(body), header, header.pack())


def test_v2_a_dictionary_names_the_model_and_means_one_stream():
    header = v2_header(model_id=b"", dict_id=b"\x01\x02\x03\x04", lanes=1, min_stream=0)
    packed = header.pack()
    assert packed == MAGIC + b"\x02\x4b\x01\x02\x03\x04"  # NEURAL | MODEL | DICT, no Model_Id
    assert read_header(packed) == header
    with pytest.raises(ValueError, match="one stream"):
        v2_header(model_id=b"", dict_id=b"\x01\x02\x03\x04")  # 16 lanes
    with pytest.raises(ValueError, match="by 0 bytes"):
        v2_header(dict_id=b"\x01\x02\x03\x04", lanes=1, min_stream=0)  # a Model_Id besides
    with pytest.raises(FormatError, match="dictionary in a file without a model"):
        read_header(MAGIC + bytes([2, 0x41]) + bytes(4) + bytes(8))


# --- version 3: version 2 with Payload_Size in a file of one neural frame --------------


def test_v3_default_header_differs_from_version_2_by_its_version_byte():
    assert v2_header(version=3).pack() == MAGIC + b"\x03\x0b" + V2_ID
    assert Header.read(io.BytesIO(v2_header(version=3).pack())) == v2_header(version=3)


def test_v3_default_file_of_one_frame_costs_at_most_27_bytes():
    """Version 2's 24, and Payload_Size: a varint of at most 3 bytes for a
    frame of 1 MiB (1 byte for a payload under 128 bytes, 2 under 16 KiB)."""
    for raw_size in (2, 127, 128, 385, 16383, 16384, CONTEXT_HEADS_MIN_INPUT, 1 << 20):
        raw = b"a" * raw_size
        payload = b"p" * max(1, raw_size // 4)
        ensemble = CompressOptions().for_input(raw_size).ensemble
        blob = pack_single(v2_header(ensemble=ensemble, version=3), raw, payload, raw_size)
        heads = 8 if raw_size >= CONTEXT_HEADS_MIN_INPUT else 0
        assert len(blob) - len(payload) <= 27 + heads, raw_size
        expected = 18 + 2 * len(pack_varint(raw_size)) + len(pack_varint(len(payload))) + heads
        assert len(blob) - len(payload) == expected


def test_v3_only_a_neural_frame_says_its_payload_size():
    """A stored payload's size is the content's, and a zstd frame ends itself:
    their files are byte for byte version 2's but for the version."""
    header = replace(Header.without_model(1 << 25, zstd_stream=False, version=3), single=FrameType.STORED)
    raw = bytes(range(256))
    v3 = pack_single(header, raw, raw, 0)
    v2 = pack_single(replace(header, version=2), raw, raw, 0)
    assert v3[:4] + v3[5:-4] == v2[:4] + v2[5:-4] and v3[4] == 3


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"\x05\x05\x04" + bytes(4), TruncatedError, "truncated"),  # the checksum cut off
        (b"\x05\x05\x04" + bytes(2), TruncatedError, "truncated"),
        (b"\x05\x05", TruncatedError, "truncated"),  # inside the sizes
        (b"\x05\x05\x04" + bytes(4 + 4 + 1), FormatError, "data after the end"),
        (b"\x05\x05\x05" + bytes(5 + 4), FormatError, "payload of 5 bytes for 5"),  # not smaller
        (b"\x05\x05\x00" + bytes(4), FormatError, "payload of 0 bytes"),
    ],
)
def test_v3_one_frame_malformed(body, error, message):
    header = v2_header(version=3)
    with pytest.raises(error, match=message):
        SingleFrame.read(io.BytesIO(body), header, header.pack())


def test_v3_every_cut_of_a_file_of_one_neural_frame_is_truncated_error():
    raw = b"a" * 300
    blob = pack_single(v2_header(version=3), raw, b"p" * 70, 200)
    for n in range(len(blob)):
        stream = io.BytesIO(blob[:n])
        with pytest.raises(TruncatedError):
            header, header_bytes = Header.read_bytes(stream)
            SingleFrame.read(stream, header, header_bytes)
