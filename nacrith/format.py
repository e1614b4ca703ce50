"""The file format: constants and the header, frame and trailer structures.

Version 3, the compact layout of version 2 whose file of one neural frame
also says where its payload ends, is what writers write; versions 1 and 2
are read forever (and written only on request, by the tests of their golden
files).

docs/format.md specifies every byte; this module packs, unpacks and
validates them. It imports nothing but ``errors`` and ``settings`` (whose
rules the header's values follow) so the format can be read and tested
without a model.
"""

from __future__ import annotations

import enum
import io
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from nacrith.errors import FormatError, TruncatedError, UnsupportedVersionError
from nacrith.settings import (
    ARITHMETICS,
    ENSEMBLE_LAYOUT,
    HYPERPARAMETERS,
    LEGACY_CODING,
    SWITCHES,
    Arithmetic,
    Coding,
    EnsembleSettings,
    check_batch,
    check_frame_size,
    check_lanes,
    check_window,
    float32,
    llm_batch,
)

MAGIC = b"\x89NCR"
FOOTER_MAGIC = b"NCIX"
#: The version writers write; readers read every one of VERSIONS.
FORMAT_VERSION = 3
VERSIONS = (1, 2, 3)
#: Versions of the compact layout (a descriptor byte, short fingerprints, a
#: file of one frame without an index). Version 3 differs from 2 in one field:
#: a file of one neural frame says its payload's size (Payload_Size), so that a
#: cut file is told from a damaged one, and found without decoding.
COMPACT_VERSIONS = (2, 3)
#: Version 2 names the model by the first bytes of its SHA-256.
MODEL_ID_SIZE = 8

#: A header larger than this is not ours; bounds what a reader allocates.
MAX_PARAMS_SIZE = 1 << 16
#: Escape symbols: one per byte value, for bytes the tokenizer cannot carry.
ESCAPE_SYMBOLS = 256

_TAG_IGNORABLE = 0x80
_FLOAT32_MAX = 3.4028234663852886e38


class Tag(enum.IntEnum):
    """Header parameter tags. Bit 7 set: a reader that does not know the tag skips it."""

    MODEL_SHA256 = 0x01
    VOCAB_SIZE = 0x02
    CONTEXT = 0x03
    SLIDE = 0x04
    TEMPERATURE = 0x05
    ESCAPES = 0x06
    FRAME_SIZE = 0x07
    CONTENT_SIZE = 0x08
    START_TOKEN = 0x09
    ENSEMBLE = 0x0A
    LANES = 0x0B
    CODING = 0x0C
    MODEL_NAME = 0x81
    ENVIRONMENT = 0x82


_REQUIRED = (
    Tag.MODEL_SHA256,
    Tag.VOCAB_SIZE,
    Tag.CONTEXT,
    Tag.SLIDE,
    Tag.TEMPERATURE,
    Tag.ESCAPES,
    Tag.FRAME_SIZE,
    Tag.START_TOKEN,
)


class FrameType(enum.IntEnum):
    END = 0
    STORED = 1
    #: A zstd frame of its own.
    ZSTD = 2
    NEURAL = 3
    #: The next piece of the file's one zstd stream, which all such frames
    #: continue in order, so binary parts share their context (header flag
    #: ZSTD_STREAM).
    ZSTD_STREAM = 4


class HeaderFlag(enum.IntFlag):
    """Required header flags: a reader that does not know one refuses the file."""

    #: No neural frames and no model: the model parameters are absent.
    NO_MODEL = 0x01
    #: ZSTD_STREAM frames may appear.
    ZSTD_STREAM = 0x02


class Descriptor(enum.IntFlag):
    """Version 2's descriptor byte. Bits 0-2 (``SINGLE_MASK``) are the type of
    the file's one frame, or 0 for a body of frames and an index as in version 1."""

    SINGLE_MASK = 0x07
    #: Model_Id follows: neural frames may appear.
    MODEL = 0x08
    #: A block of settings that differ from version 2's defaults follows.
    SETTINGS = 0x10
    #: ZSTD_STREAM frames may appear (a body of frames only).
    ZSTD_STREAM = 0x20
    #: Dict_Id follows Model_Id: neural frames start from that dictionary.
    DICT = 0x40


#: Bits of the descriptor a version-2 reader does not know: a file setting one
#: needs a newer reader.
_DESCRIPTOR_UNKNOWN = 0x80
#: Version 2 names a dictionary by the first bytes of the SHA-256 of its file.
DICT_ID_SIZE = 4

#: Version 2's defaults, written by leaving the setting out. Frozen like an
#: ensemble layout: they never change once files exist, whatever ``nacrith
#: compress`` comes to use (it then writes the setting).
V2_CONTEXT = 2048
V2_SLIDE = 512
V2_TEMPERATURE = 1.0
V2_FRAME_SIZE = 1 << 20
#: A file without a model is zstd's: large frames (writer.ZSTD_ONLY_FRAME_SIZE).
V2_FRAME_SIZE_NO_MODEL = 1 << 25
#: The ENSEMBLE value of layout 2, every part on, no override.
V2_ENSEMBLE = b"\x02\x1f"
#: The ENSEMBLE value of the language model alone (no layout 0 exists).
V2_NO_ENSEMBLE = b"\x00"
V2_LANES = (16, 10240)
#: A dictionary's frames are one stream: its learned state is one ensemble's.
V2_LANES_DICT = (1, 0)
V2_CODING = Coding(arith=Arithmetic.FLOAT32, shared=True)
#: The pinned build profile's environment (README, Quick start).
V2_ENVIRONMENT = "0.3.36 cpu 2ce1275d avx2"

#: The backends an ENVIRONMENT string names (models/runtime.py environment_record).
BACKENDS = ("cpu", "gpu")


@dataclass(frozen=True)
class Environment:
    """An ENVIRONMENT string, "<version> <backend> <hash> <kernels>": the
    llama-cpp-python version, "cpu" or "gpu", 8 hex digits of SHA-256 of
    llama.cpp's system info, and the kernel policy: the build profile
    ("avx2", "native"), run with plain kernels unless it ends in "+extra".
    Files made before the policy was recorded have three fields (kernels
    ""); they were made with llama.cpp's extra buffer types allowed, which
    changed nothing on x86-64 CPUs without AMX for Q4_1 and Q8_0 weights."""

    version: str
    backend: str
    system: str
    kernels: str = ""

    @classmethod
    def parse(cls, text: str) -> Environment | None:
        """None for a string of another form (a foreign writer's)."""
        parts = text.split()
        if len(parts) not in (3, 4) or parts[1] not in BACKENDS:
            return None
        return cls(*parts)


def environment_backend(environment: str) -> str:
    """The backend of an ENVIRONMENT string ("cpu" or "gpu"), or "" if it names none."""
    parsed = Environment.parse(environment)
    return parsed.backend if parsed else ""


def zstd_stream_bound(raw_size: int) -> int:
    """Largest ZSTD_STREAM payload for raw_size bytes: zstd's frame header and
    its 3-byte block headers on data it cannot compress, with room to spare."""
    return raw_size + raw_size // 128 + 64


# --- primitives -------------------------------------------------------------


def pack_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    """Read exactly n bytes or raise TruncatedError naming what was being read."""
    data = stream.read(n)
    if data is None or len(data) != n:
        raise TruncatedError(f"file is truncated: it ends inside the {what}")
    return data


def read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes, fewer only at the end of the input (a pipe may give less per read)."""
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class _Cursor:
    """Reads primitives from a stream and keeps the bytes for checksumming."""

    def __init__(self, stream: BinaryIO, what: str) -> None:
        self.stream = stream
        self.what = what
        self.seen = bytearray()

    def take(self, n: int) -> bytes:
        data = read_exact(self.stream, n, self.what)
        self.seen += data
        return data

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.u8()
            if shift == 63 and byte > 1:
                break
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift:
                    raise FormatError(f"corrupt {self.what}: over-long varint")
                return value
        raise FormatError(f"corrupt {self.what}: varint too long")

    def check_crc(self) -> None:
        expected = zlib.crc32(self.seen)
        stored = self.u32()
        if stored != expected:
            raise FormatError(f"corrupt {self.what}: checksum {stored:08x} != {expected:08x}")


def _varint_from(data: bytes, what: str) -> int:
    cur = _Cursor(io.BytesIO(data), what)
    try:
        value = cur.varint()
    except TruncatedError:
        raise FormatError(f"corrupt {what}: empty or cut varint") from None
    if len(cur.seen) != len(data):
        raise FormatError(f"corrupt {what}: trailing bytes after a varint")
    return value


# --- ensemble settings --------------------------------------------------------

#: Ensemble parameter block (docs/format.md, ENSEMBLE): the layout, the switches,
#: then only the settings that differ from the layout's defaults, each as its
#: tag (one byte) and its value in the setting's format: both from the
#: setting's row of settings.HYPERPARAMETERS, as are the layouts' defaults.
#: A layout is a frozen column of that table: it never changes once files
#: exist, whatever ``nacrith compress`` comes to use. A setting added later
#: gets, in the existing layouts, the default that gives the behaviour of
#: files made before it existed. When compress's defaults have moved far from
#: the newest layout, a new layout with them as defaults keeps the default
#: header at 2 bytes (layout 2: 23 bytes of overrides of layout 1 became 0).
#: Writers use the newest layout; readers know every one.
_BY_TAG = {row.tag: row for row in sorted(HYPERPARAMETERS, key=lambda row: row.tag)}
_LAYOUTS = range(1, ENSEMBLE_LAYOUT + 1)


def _layout_values(layout: int) -> dict[str, int | float]:
    """Every setting at the layout's default, floats at header precision."""
    return {
        row.name: float32(row.layouts[layout - 1]) if row.kind is float else int(row.layouts[layout - 1])
        for row in HYPERPARAMETERS
    }


def pack_ensemble(settings: EnsembleSettings) -> bytes:
    """The ENSEMBLE parameter: the layout, the switches, the settings that differ from the layout's."""
    if settings.layout not in _LAYOUTS:
        raise ValueError(f"layout {settings.layout} is unknown")
    flags = sum(1 << i for i, name in enumerate(SWITCHES) if getattr(settings, name))
    out = bytearray([settings.layout, flags])
    defaults = _layout_values(settings.layout)
    for tag, row in _BY_TAG.items():
        value = getattr(settings, row.name)
        if value != defaults[row.name]:
            out += bytes([tag]) + struct.pack("<" + row.wire, value)
    return bytes(out)


def unpack_ensemble(data: bytes) -> EnsembleSettings:
    """Inverse of pack_ensemble; the settings keep the layout they were read in."""
    if len(data) < 2:
        raise FormatError("corrupt file header: ensemble parameters too short")
    layout = data[0]
    if layout not in _LAYOUTS:
        known = ", ".join(map(str, _LAYOUTS))
        raise UnsupportedVersionError(
            f"file uses ensemble layout {layout}; this nacrith knows layouts {known}"
        )
    flags = data[1]
    if flags >> len(SWITCHES):
        raise UnsupportedVersionError(f"file needs ensemble parts unknown to this nacrith ({flags:#04x})")
    values: dict[str, Any] = {name: bool(flags >> i & 1) for i, name in enumerate(SWITCHES)}
    values.update(_layout_values(layout))
    pos = 2
    last = -1
    while pos < len(data):
        tag = data[pos]
        if tag not in _BY_TAG:
            raise UnsupportedVersionError(f"file needs ensemble setting {tag}, unknown to this nacrith")
        if tag <= last:
            raise FormatError("corrupt file header: ensemble settings out of order")
        last = tag
        row = _BY_TAG[tag]
        fmt = struct.Struct("<" + row.wire)
        if pos + 1 + fmt.size > len(data):
            raise FormatError("corrupt file header: ensemble setting cut short")
        values[row.name] = fmt.unpack_from(data, pos + 1)[0]
        pos += 1 + fmt.size
    try:
        return EnsembleSettings(layout=layout, **values)
    except ValueError as exc:
        raise FormatError(f"corrupt file header: ensemble {exc}") from None


def ensemble_of_layout(layout: int, **changes: Any) -> EnsembleSettings:
    """Every part on with the layout's defaults (what a header of switches
    alone means), with ``changes`` applied: settings as files describe them.
    They are packed in that layout."""
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown ensemble layout {layout}")
    return EnsembleSettings(layout=layout, **{**_layout_values(layout), **changes})


# --- header -----------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs, plus informational fields.

    A file without a model (``model_id`` None, made by ``without_model``)
    holds only stored and zstd frames; its model parameters are all zero.

    In version 1, ``model_id`` is the model's SHA-256; in version 2, its first
    MODEL_ID_SIZE bytes, or b"" in a file made with a dictionary, whose file
    names the model; ``vocab_size`` and ``start_token`` are None when
    they are the model's own (its vocabulary, the start token that
    docs/format.md's rule picks), which a reader takes from the model.
    """

    model_id: bytes | None
    vocab_size: int | None
    context: int
    slide: int
    temperature: float
    frame_size: int
    start_token: int | None
    escapes: int = ESCAPE_SYMBOLS
    content_size: int | None = None
    model_name: str = ""
    environment: str = ""
    #: None: the language model alone (the tag is absent).
    ensemble: EnsembleSettings | None = None
    #: ZSTD_STREAM frames may follow.
    zstd_stream: bool = False
    #: Streams per neural frame at most, and the fewest symbols a stream gets
    #: (see ``stream_bounds``). One lane: the tag is absent.
    lanes: int = 1
    min_stream: int = 0
    #: How a neural frame's streams are coded (settings.Coding). Absent from
    #: files written before it existed, which mean arithmetic 1, one ensemble
    #: per stream: the default here, so that such files read back as written.
    coding: Coding = LEGACY_CODING
    version: int = 1
    #: Version 2: the dictionary the neural frames start from (DICT_ID_SIZE
    #: bytes of its fingerprint), or None.
    dict_id: bytes | None = None
    #: Version 2: the type of the file's one frame, which follows the header
    #: without a frame header or index (``SingleFrame``); END: frames and an index.
    single: FrameType = FrameType.END
    unknown_ignorable: dict[int, bytes] = field(default_factory=dict, compare=False)

    @classmethod
    def without_model(
        cls, frame_size: int, content_size: int | None = None, zstd_stream: bool = True, version: int = 1
    ) -> Header:
        return cls(
            None,
            0,
            0,
            0,
            0.0,
            frame_size,
            0,
            content_size=content_size,
            zstd_stream=zstd_stream,
            version=version,
        )

    @property
    def flags(self) -> HeaderFlag:
        flags = HeaderFlag(0)
        if self.model_id is None:
            flags |= HeaderFlag.NO_MODEL
        if self.zstd_stream:
            flags |= HeaderFlag.ZSTD_STREAM
        return flags

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"format version {self.version} is unknown")
        check_frame_size(self.frame_size)
        if self.single != FrameType.END:
            if self.version == 1:
                raise ValueError("a file of one frame without an index is the compact layout's")
            if self.single == FrameType.NEURAL and self.model_id is None:
                raise ValueError("a neural frame needs a model")
            if self.content_size is not None:
                raise ValueError("a file of one frame says its size in the frame, not in the header")
        if self.dict_id is not None:
            if self.version == 1 or self.model_id is None or len(self.dict_id) != DICT_ID_SIZE:
                raise ValueError(
                    f"a dictionary is named by {DICT_ID_SIZE} bytes, in a version-2 file with a model"
                )
            if self.lanes != 1:
                raise ValueError("a dictionary's frames are one stream")
        if self.model_id is None:
            model = (self.vocab_size, self.context, self.slide, self.temperature, self.start_token)
            if (
                any(model)
                or self.ensemble is not None
                or self.model_name
                or self.environment
                or self.lanes != 1
                or self.coding != LEGACY_CODING
            ):
                raise ValueError("a header without a model has no model parameters")
            return
        size = 32 if self.version == 1 else 0 if self.dict_id is not None else MODEL_ID_SIZE
        if len(self.model_id) != size:
            raise ValueError(f"this version-{self.version} header names its model by {size} bytes")
        if self.version == 1 and (self.vocab_size is None or self.start_token is None):
            raise ValueError("a version-1 header spells the vocabulary size and the start token")
        check_window(self.context, self.slide)
        if self.start_token is not None and not (
            0 <= self.start_token < (self.vocab_size if self.vocab_size is not None else 1 << 23)
        ):
            raise ValueError("start token outside the vocabulary")
        if not 0 < self.temperature <= _FLOAT32_MAX:
            raise ValueError(f"temperature must be a positive float32, not {self.temperature}")
        if self.escapes != ESCAPE_SYMBOLS:
            raise ValueError(f"the format has {ESCAPE_SYMBOLS} escape symbols")
        if self.ensemble is not None and self.ensemble.layout not in _LAYOUTS:
            raise ValueError(f"ensemble layout {self.ensemble.layout} is unknown")
        check_batch(llm_batch(self.ensemble), self.slide)
        if self.lanes != 1:
            check_lanes(self.lanes, self.min_stream)
        elif self.min_stream != 0:
            raise ValueError("the fewest symbols per stream must be 0 without lanes")

    def streams(self, n_symbols: int) -> list[int]:
        """Where a neural frame of n_symbols symbols is split into streams."""
        return stream_bounds(n_symbols, self.lanes, self.min_stream)

    def uses_model(self, sha256: bytes) -> bool:
        """Whether the model of this SHA-256 is the file's (with a dictionary,
        which names the model, the dictionary checks it: dictionary.check_model)."""
        return self.model_id is not None and sha256.startswith(self.model_id)

    def pack(self) -> bytes:
        return self._pack_v1() if self.version == 1 else self._pack_v2()

    def _pack_v1(self) -> bytes:
        params = bytearray()

        def put(tag: Tag, value: bytes) -> None:
            params.extend(bytes([tag]) + pack_varint(len(value)) + value)

        if self.model_id is not None:
            assert self.vocab_size is not None  # __post_init__
            put(Tag.MODEL_SHA256, self.model_id)
            put(Tag.VOCAB_SIZE, pack_varint(self.vocab_size))
            put(Tag.CONTEXT, pack_varint(self.context))
            put(Tag.SLIDE, pack_varint(self.slide))
            put(Tag.TEMPERATURE, struct.pack("<f", self.temperature))
            put(Tag.ESCAPES, pack_varint(self.escapes))
        put(Tag.FRAME_SIZE, pack_varint(self.frame_size))
        if self.start_token is not None and self.model_id is not None:
            put(Tag.START_TOKEN, pack_varint(self.start_token))
        if self.ensemble is not None:
            put(Tag.ENSEMBLE, pack_ensemble(self.ensemble))
        if self.lanes > 1:
            put(Tag.LANES, pack_varint(self.lanes) + pack_varint(self.min_stream))
        if self.coding != LEGACY_CODING:
            put(Tag.CODING, pack_varint(self.coding.arith) + bytes([int(self.coding.shared)]))
        if self.content_size is not None:
            put(Tag.CONTENT_SIZE, pack_varint(self.content_size))
        if self.model_name:
            put(Tag.MODEL_NAME, self.model_name.encode())
        if self.environment:
            put(Tag.ENVIRONMENT, self.environment.encode())
        for tag, value in sorted(self.unknown_ignorable.items()):
            params.extend(bytes([tag]) + pack_varint(len(value)) + value)
        if len(params) > MAX_PARAMS_SIZE:
            raise ValueError(f"header parameters take {len(params)} bytes, more than {MAX_PARAMS_SIZE}")
        body = MAGIC + bytes([1, self.flags, 0]) + pack_varint(len(params)) + bytes(params)
        return body + struct.pack("<I", zlib.crc32(body))

    def _v2_settings(self) -> bytes:
        """The settings that differ from version 2's defaults, in tag order."""
        params = bytearray()

        def put(tag: Tag, value: bytes) -> None:
            params.extend(bytes([tag]) + pack_varint(len(value)) + value)

        model = self.model_id is not None
        if model and self.context != V2_CONTEXT:
            put(Tag.CONTEXT, pack_varint(self.context))
        if model and self.slide != V2_SLIDE:
            put(Tag.SLIDE, pack_varint(self.slide))
        if model and self.temperature != V2_TEMPERATURE:
            put(Tag.TEMPERATURE, struct.pack("<f", self.temperature))
        if self.frame_size != (V2_FRAME_SIZE if model else V2_FRAME_SIZE_NO_MODEL):
            put(Tag.FRAME_SIZE, pack_varint(self.frame_size))
        if self.single == FrameType.END and self.content_size is not None:
            put(Tag.CONTENT_SIZE, pack_varint(self.content_size))
        if model and self.start_token is not None:
            put(Tag.START_TOKEN, pack_varint(self.start_token))
        if model:
            ensemble = V2_NO_ENSEMBLE if self.ensemble is None else pack_ensemble(self.ensemble)
            if ensemble != V2_ENSEMBLE:
                put(Tag.ENSEMBLE, ensemble)
            if (self.lanes, self.min_stream) != (V2_LANES if self.dict_id is None else V2_LANES_DICT):
                put(Tag.LANES, pack_varint(self.lanes) + pack_varint(self.min_stream))
            if self.coding != V2_CODING:
                put(Tag.CODING, pack_varint(self.coding.arith) + bytes([int(self.coding.shared)]))
        if self.model_name:
            put(Tag.MODEL_NAME, self.model_name.encode())
        if model and self.environment != V2_ENVIRONMENT:
            put(Tag.ENVIRONMENT, self.environment.encode())
        for tag, value in sorted(self.unknown_ignorable.items()):
            params.extend(bytes([tag]) + pack_varint(len(value)) + value)
        if len(params) > MAX_PARAMS_SIZE:
            raise ValueError(f"header settings take {len(params)} bytes, more than {MAX_PARAMS_SIZE}")
        return bytes(params)

    def _pack_v2(self) -> bytes:
        settings = self._v2_settings()
        descriptor = int(self.single)
        if self.model_id is not None:
            descriptor |= Descriptor.MODEL
        if settings:
            descriptor |= Descriptor.SETTINGS
        if self.zstd_stream and self.single == FrameType.END:
            descriptor |= Descriptor.ZSTD_STREAM
        if self.dict_id is not None:
            descriptor |= Descriptor.DICT
        out = MAGIC + bytes([self.version, descriptor]) + (self.model_id or b"") + (self.dict_id or b"")
        if settings:
            out += pack_varint(len(settings)) + settings
        if self.single == FrameType.END:  # a single frame's checksum covers the header instead
            out += struct.pack("<I", zlib.crc32(out))
        return out

    @classmethod
    def read(cls, stream: BinaryIO) -> Header:
        return cls.read_bytes(stream)[0]

    @classmethod
    def read_bytes(cls, stream: BinaryIO) -> tuple[Header, bytes]:
        """The header and its bytes as read, which a single frame's checksum covers."""
        magic = stream.read(len(MAGIC))
        if not magic:
            raise TruncatedError("input is empty: not a Nacrith file")
        if magic != MAGIC[: len(magic)] or len(magic) < len(MAGIC):
            if magic == MAGIC[: len(magic)]:
                raise TruncatedError("file is truncated: it ends inside the magic number")
            raise FormatError("not a Nacrith file (bad magic number)")
        cur = _Cursor(stream, "file header")
        cur.seen += magic
        version = cur.u8()
        if version in COMPACT_VERSIONS:
            return cls._read_v2(cur, version), bytes(cur.seen)
        if version != 1:
            raise UnsupportedVersionError(
                f"file uses format version {version}; this nacrith reads versions "
                + ", ".join(map(str, VERSIONS))
            )
        required_flags = cur.u8()
        cur.u8()  # optional flags: none defined, ignored by definition
        if required_flags & ~(HeaderFlag.NO_MODEL.value | HeaderFlag.ZSTD_STREAM.value):
            raise UnsupportedVersionError(
                f"file needs features this nacrith does not know (required flags {required_flags:#04x})"
            )
        size = cur.varint()
        if size > MAX_PARAMS_SIZE:
            raise FormatError(f"corrupt file header: parameter block of {size} bytes")
        params = cur.take(size)
        cur.check_crc()
        return cls._from_params(params, HeaderFlag(required_flags)), bytes(cur.seen)

    @classmethod
    def _read_v2(cls, cur: _Cursor, version: int) -> Header:
        descriptor = cur.u8()
        if descriptor & _DESCRIPTOR_UNKNOWN:
            raise UnsupportedVersionError(
                f"file needs features this nacrith does not know (descriptor {descriptor:#04x})"
            )
        kind = descriptor & Descriptor.SINGLE_MASK
        if kind not in (FrameType.END, *_DATA_FRAMES):
            raise FormatError(f"corrupt file header: frame type {kind}")
        single = FrameType(kind)
        model = bool(descriptor & Descriptor.MODEL)
        if descriptor & Descriptor.ZSTD_STREAM and single != FrameType.END:
            raise FormatError("corrupt file header: the zstd stream flag in a file of one frame")
        if single == FrameType.NEURAL and not model:
            raise FormatError("corrupt file header: a neural frame in a file without a model")
        if descriptor & Descriptor.DICT and not model:
            raise FormatError("corrupt file header: a dictionary in a file without a model")
        dict_id, model_id = None, None
        if descriptor & Descriptor.DICT:  # the dictionary's file names the model
            model_id, dict_id = b"", cur.take(DICT_ID_SIZE)
        elif model:
            model_id = cur.take(MODEL_ID_SIZE)
        settings = b""
        if descriptor & Descriptor.SETTINGS:
            size = cur.varint()
            if size > MAX_PARAMS_SIZE:
                raise FormatError(f"corrupt file header: settings of {size} bytes")
            if size == 0:
                raise FormatError("corrupt file header: an empty settings block")  # one spelling
            settings = cur.take(size)
        if single == FrameType.END:
            cur.check_crc()
        fields = _parse_params(settings)
        # A file whose one frame is a piece of the zstd stream needs no flag to say that it may appear.
        zstd_stream = bool(descriptor & Descriptor.ZSTD_STREAM) or single == FrameType.ZSTD_STREAM
        return _header_v2(fields, model_id, dict_id, single, zstd_stream, version)

    @classmethod
    def _from_params(cls, params: bytes, flags: HeaderFlag) -> Header:
        fields = _parse_params(params)

        def num(tag: Tag) -> int:
            return _varint_from(fields[tag], f"header parameter {tag.name}")

        zstd_stream = bool(flags & HeaderFlag.ZSTD_STREAM)
        if flags & HeaderFlag.NO_MODEL:
            extra = [Tag(t).name for t in fields if t in _REQUIRED and t != Tag.FRAME_SIZE]
            extra += [
                Tag(t).name
                for t in (Tag.ENSEMBLE, Tag.LANES, Tag.CODING, Tag.MODEL_NAME, Tag.ENVIRONMENT)
                if t in fields
            ]
            if extra:
                raise FormatError(f"corrupt file header: {', '.join(extra)} in a file without a model")
            if Tag.FRAME_SIZE not in fields:
                raise FormatError("corrupt file header: missing FRAME_SIZE")
            unknown = {t: v for t, v in fields.items() if t not in Tag._value2member_map_}
            try:
                header = cls.without_model(
                    num(Tag.FRAME_SIZE),
                    num(Tag.CONTENT_SIZE) if Tag.CONTENT_SIZE in fields else None,
                    zstd_stream,
                )
                return replace(header, unknown_ignorable=unknown)
            except ValueError as exc:
                if isinstance(exc, FormatError):
                    raise
                raise FormatError(f"corrupt file header: {exc}") from None
        missing = [t.name for t in _REQUIRED if t not in fields]
        if missing:
            raise FormatError(f"corrupt file header: missing {', '.join(missing)}")

        if len(fields[Tag.MODEL_SHA256]) != 32 or len(fields[Tag.TEMPERATURE]) != 4:
            raise FormatError("corrupt file header: bad parameter length")
        escapes = num(Tag.ESCAPES)
        if escapes != ESCAPE_SYMBOLS:
            raise UnsupportedVersionError(
                f"file uses {escapes} escape symbols; this nacrith knows only {ESCAPE_SYMBOLS}"
            )
        temperature = struct.unpack("<f", fields[Tag.TEMPERATURE])[0]
        if not 0 < temperature < float("inf"):
            raise FormatError(f"corrupt file header: temperature {temperature}")
        lanes, min_stream = _lanes_from(fields[Tag.LANES]) if Tag.LANES in fields else (1, 0)
        coding = _coding_from(fields[Tag.CODING]) if Tag.CODING in fields else LEGACY_CODING
        try:
            name = fields.get(Tag.MODEL_NAME, b"").decode()
            env = fields.get(Tag.ENVIRONMENT, b"").decode()
            return cls(
                model_id=fields[Tag.MODEL_SHA256],
                vocab_size=num(Tag.VOCAB_SIZE),
                context=num(Tag.CONTEXT),
                slide=num(Tag.SLIDE),
                temperature=temperature,
                escapes=escapes,
                frame_size=num(Tag.FRAME_SIZE),
                start_token=num(Tag.START_TOKEN),
                content_size=num(Tag.CONTENT_SIZE) if Tag.CONTENT_SIZE in fields else None,
                model_name=name,
                environment=env,
                ensemble=unpack_ensemble(fields[Tag.ENSEMBLE]) if Tag.ENSEMBLE in fields else None,
                zstd_stream=zstd_stream,
                lanes=lanes,
                min_stream=min_stream,
                coding=coding,
                unknown_ignorable={t: v for t, v in fields.items() if t not in Tag._value2member_map_},
            )
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"corrupt file header: {exc}") from None


def _parse_params(params: bytes) -> dict[int, bytes]:
    """Tag-length-value triples: each tag once; an unknown one only if ignorable."""
    cur = _Cursor(io.BytesIO(params), "file header")
    fields: dict[int, bytes] = {}
    while len(cur.seen) < len(params):
        try:
            tag = cur.u8()
            length = cur.varint()
            value = cur.take(length)
        except TruncatedError:
            # The block's size was read, so this is a malformed parameter list, not a short file.
            raise FormatError("corrupt file header: a parameter runs past the parameter block") from None
        if tag in fields:
            raise FormatError(f"corrupt file header: parameter {tag:#04x} appears twice")
        if tag not in Tag._value2member_map_ and not tag & _TAG_IGNORABLE:
            raise UnsupportedVersionError(
                f"file needs header parameter {tag:#04x}, which this nacrith does not know"
            )
        fields[tag] = value
    return fields


#: Version 2 settings of a file with a model; those of a file without one.
_V2_MODEL_TAGS = frozenset(
    {
        Tag.CONTEXT,
        Tag.SLIDE,
        Tag.TEMPERATURE,
        Tag.FRAME_SIZE,
        Tag.CONTENT_SIZE,
        Tag.START_TOKEN,
        Tag.ENSEMBLE,
        Tag.LANES,
        Tag.CODING,
        Tag.MODEL_NAME,
        Tag.ENVIRONMENT,
    }
)
_V2_NO_MODEL_TAGS = frozenset({Tag.FRAME_SIZE, Tag.CONTENT_SIZE})


def _header_v2(
    fields: dict[int, bytes],
    model_id: bytes | None,
    dict_id: bytes | None,
    single: FrameType,
    zstd_stream: bool,
    version: int,
) -> Header:
    """A compact header (version 2 or 3) from its settings: every setting absent
    takes its default, and one at its default is corrupt (a header has one spelling)."""
    allowed = _V2_MODEL_TAGS if model_id is not None else _V2_NO_MODEL_TAGS
    if single != FrameType.END:
        allowed = allowed - {Tag.CONTENT_SIZE}  # the frame says it
    misplaced = [Tag(t).name for t in fields if t in Tag._value2member_map_ and t not in allowed]
    if misplaced:
        raise FormatError(f"corrupt file header: {', '.join(misplaced)} does not belong in this file")

    def num(tag: Tag, default: int | None) -> int | None:
        if tag not in fields:
            return default
        value = _varint_from(fields[tag], f"header parameter {tag.name}")
        if value == default:
            raise FormatError(f"corrupt file header: {tag.name} written at its default")
        return value

    def text(tag: Tag) -> str:
        try:
            return fields.get(tag, b"").decode()
        except UnicodeDecodeError:
            raise FormatError(f"corrupt file header: {tag.name} is not UTF-8") from None

    unknown = {t: v for t, v in fields.items() if t not in Tag._value2member_map_}
    name = text(Tag.MODEL_NAME)
    frame_default = V2_FRAME_SIZE if model_id is not None else V2_FRAME_SIZE_NO_MODEL
    frame_size = num(Tag.FRAME_SIZE, frame_default)
    content_size = num(Tag.CONTENT_SIZE, None)
    assert frame_size is not None
    try:
        if model_id is None:
            header = Header.without_model(frame_size, content_size, zstd_stream, version=version)
            return replace(header, single=single, model_name=name, unknown_ignorable=unknown)
        temperature = V2_TEMPERATURE
        if Tag.TEMPERATURE in fields:
            if len(fields[Tag.TEMPERATURE]) != 4:
                raise FormatError("corrupt file header: bad parameter length")
            temperature = struct.unpack("<f", fields[Tag.TEMPERATURE])[0]
            if not 0 < temperature < float("inf"):
                raise FormatError(f"corrupt file header: temperature {temperature}")
            if temperature == V2_TEMPERATURE:
                raise FormatError("corrupt file header: TEMPERATURE written at its default")
        ensemble: EnsembleSettings | None = ensemble_of_layout(2)
        if Tag.ENSEMBLE in fields:
            value = fields[Tag.ENSEMBLE]
            if value == V2_ENSEMBLE:
                raise FormatError("corrupt file header: ENSEMBLE written at its default")
            ensemble = None if value == V2_NO_ENSEMBLE else unpack_ensemble(value)
        lanes_default = V2_LANES if dict_id is None else V2_LANES_DICT
        lanes, min_stream = (
            _lanes_from(fields[Tag.LANES], default=lanes_default) if Tag.LANES in fields else lanes_default
        )
        coding = _coding_from(fields[Tag.CODING], default=V2_CODING) if Tag.CODING in fields else V2_CODING
        environment = text(Tag.ENVIRONMENT) if Tag.ENVIRONMENT in fields else V2_ENVIRONMENT
        if environment == V2_ENVIRONMENT and Tag.ENVIRONMENT in fields:
            raise FormatError("corrupt file header: ENVIRONMENT written at its default")
        context = num(Tag.CONTEXT, V2_CONTEXT)
        slide = num(Tag.SLIDE, V2_SLIDE)
        assert context is not None and slide is not None
        return Header(
            model_id=model_id,
            vocab_size=None,
            context=context,
            slide=slide,
            temperature=temperature,
            frame_size=frame_size,
            start_token=num(Tag.START_TOKEN, None),
            content_size=content_size,
            model_name=name,
            environment=environment,
            ensemble=ensemble,
            zstd_stream=zstd_stream,
            lanes=lanes,
            min_stream=min_stream,
            coding=coding,
            version=version,
            dict_id=dict_id,
            single=single,
            unknown_ignorable=unknown,
        )
    except ValueError as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"corrupt file header: {exc}") from None


def _coding_from(value: bytes, default: Coding = LEGACY_CODING) -> Coding:
    cur = _Cursor(io.BytesIO(value), "header parameter CODING")
    try:
        arith, shared = cur.varint(), cur.u8()
    except TruncatedError:
        raise FormatError("corrupt file header: CODING cut short") from None
    if len(cur.seen) != len(value):
        raise FormatError("corrupt file header: trailing bytes in CODING")
    if arith not in ARITHMETICS:
        known = ", ".join(map(str, ARITHMETICS))
        raise UnsupportedVersionError(f"file uses arithmetic {arith}; this nacrith knows arithmetics {known}")
    if shared > 1:
        raise FormatError(f"corrupt file header: CODING sharing flag {shared}")
    coding = Coding(arith, bool(shared))
    if coding == default:  # written by leaving the tag out: a header has one spelling
        raise FormatError("corrupt file header: CODING written at its default")
    return coding


def _lanes_from(value: bytes, default: tuple[int, int] = (1, 0)) -> tuple[int, int]:
    cur = _Cursor(io.BytesIO(value), "header parameter LANES")
    try:
        lanes, min_stream = cur.varint(), cur.varint()
    except TruncatedError:
        raise FormatError("corrupt file header: LANES cut short") from None
    if len(cur.seen) != len(value):
        raise FormatError("corrupt file header: trailing bytes in LANES")
    if (lanes, min_stream) == default:  # written by leaving the tag out: a header has one spelling
        raise FormatError("corrupt file header: LANES written at its default")
    try:
        if lanes < 1 or (lanes == 1 and min_stream != 0):  # one lane has no fewest symbols per stream
            raise ValueError
        if lanes > 1:
            check_lanes(lanes, min_stream)
    except ValueError:
        raise FormatError(f"corrupt file header: {lanes} lanes of at least {min_stream} symbols") from None
    return lanes, min_stream


# --- streams ----------------------------------------------------------------


def stream_bounds(n_symbols: int, lanes: int, min_stream: int) -> list[int]:
    """The split of a neural frame's symbols into streams: ``S + 1`` bounds,
    stream k holding symbols ``bounds[k] … bounds[k+1] - 1``.

    ``S = min(lanes, max(1, n_symbols // min_stream))`` streams of equal size,
    the first ``n_symbols mod S`` one symbol longer. It depends only on the
    frame and the header, never on the machine that codes it.
    """
    if lanes <= 1 or n_symbols < 2 * min_stream:
        return [0, n_symbols]
    count = min(lanes, n_symbols // min_stream)
    size, longer = divmod(n_symbols, count)
    bounds = [0]
    for k in range(count):
        bounds.append(bounds[-1] + size + (1 if k < longer else 0))
    return bounds


def pack_streams(payloads: list[bytes]) -> bytes:
    """A neural frame's payload of several streams: the sizes of all but the
    last stream's coded bytes (varints), then the coded bytes in order."""
    return b"".join(pack_varint(len(p)) for p in payloads[:-1]) + b"".join(payloads)


def unpack_streams(payload: bytes, count: int) -> list[bytes]:
    """Inverse of pack_streams for ``count`` streams; FormatError when the sizes do not fit."""
    if count == 1:
        return [payload]
    cur = _Cursor(io.BytesIO(payload), "neural frame")
    sizes = []
    try:
        for _ in range(count - 1):
            sizes.append(cur.varint())
    except TruncatedError:
        raise FormatError("corrupt neural frame: its stream sizes run past the payload") from None
    pos = len(cur.seen)
    rest = len(payload) - pos - sum(sizes)
    if rest < 1 or any(size < 1 for size in sizes):
        raise FormatError("corrupt neural frame: its stream sizes do not fit the payload")
    parts = []
    for size in [*sizes, rest]:
        parts.append(payload[pos : pos + size])
        pos += size
    return parts


# --- frames -----------------------------------------------------------------


@dataclass(frozen=True)
class FrameHeader:
    type: FrameType
    raw_size: int
    payload_size: int
    symbols: int
    raw_crc32: int

    def pack(self) -> bytes:
        body = bytes([self.type]) + pack_varint(self.raw_size) + pack_varint(self.payload_size)
        if self.type == FrameType.NEURAL:
            body += pack_varint(self.symbols)
        body += struct.pack("<I", self.raw_crc32)
        return body + struct.pack("<I", zlib.crc32(body))

    @staticmethod
    def read_type(stream: BinaryIO) -> FrameType:
        """Read the one-byte type that starts every frame and the trailer."""
        byte = read_exact(stream, 1, "frame list")[0]
        try:
            return FrameType(byte)
        except ValueError:
            raise FormatError(f"corrupt file: unknown frame type {byte}") from None

    @classmethod
    def read_after_type(cls, stream: BinaryIO, ftype: FrameType, frame_size: int) -> FrameHeader:
        cur = _Cursor(stream, "frame header")
        cur.seen.append(ftype)
        raw_size = cur.varint()
        payload_size = cur.varint()
        symbols = cur.varint() if ftype == FrameType.NEURAL else 0
        raw_crc32 = cur.u32()
        cur.check_crc()
        if not 0 < raw_size <= frame_size:
            raise FormatError(f"corrupt frame header: {raw_size} bytes in a frame of at most {frame_size}")
        if not payload_fits(ftype, raw_size, payload_size):
            raise FormatError(f"corrupt frame header: payload of {payload_size} bytes for {raw_size}")
        if ftype == FrameType.NEURAL and not 0 < symbols <= raw_size:
            raise FormatError(f"corrupt frame header: {symbols} symbols for {raw_size} bytes")
        return cls(ftype, raw_size, payload_size, symbols, raw_crc32)


def payload_fits(ftype: FrameType, raw_size: int, payload_size: int) -> bool:
    """A stored payload is the raw bytes; a piece of the zstd stream is at most
    a little larger; any other is written only when it is smaller."""
    if ftype == FrameType.STORED:
        return payload_size == raw_size
    if ftype == FrameType.ZSTD_STREAM:
        return 0 < payload_size <= zstd_stream_bound(raw_size)
    return 0 < payload_size < raw_size


# --- a file of one frame (versions 2 and 3) ----------------------------------


def _says_payload_size(header: Header) -> bool:
    """Whether the file of one frame says its payload's size: a neural one,
    from version 3. (A stored payload's size is the content's; a zstd frame
    ends itself, and info decodes it without a model.)"""
    return header.single == FrameType.NEURAL and header.version >= 3


def pack_single(header: Header, raw: bytes, payload: bytes, symbols: int) -> bytes:
    """A compact file of one frame: the header, Content_Size, Symbol_Count and
    (version 3) Payload_Size, both neural only, the payload, and the CRC32 of
    every byte before it followed by the content, which covers the header too
    and tells a wrong model's output from the content."""
    ftype = header.single
    if ftype == FrameType.END or header.version not in COMPACT_VERSIONS:
        raise ValueError("a file of one frame needs a compact header that names its type")
    if not payload_fits(ftype, len(raw), len(payload)) and not (ftype == FrameType.STORED and not raw):
        raise ValueError(f"a payload of {len(payload)} bytes for {len(raw)}")
    out = header.pack() + pack_varint(len(raw))
    if ftype == FrameType.NEURAL:
        out += pack_varint(symbols)
    if _says_payload_size(header):
        out += pack_varint(len(payload))
    out += payload
    return out + struct.pack("<I", zlib.crc32(raw, zlib.crc32(out)))


@dataclass(frozen=True)
class SingleFrame:
    """A compact file's one frame, as read: its sizes, payload, and the CRC32
    its content must continue to give the stored checksum."""

    header: FrameHeader
    payload: bytes
    crc_before: int
    checksum: int

    def matches(self, content: bytes) -> bool:
        return zlib.crc32(content, self.crc_before) == self.checksum

    @classmethod
    def read(cls, stream: BinaryIO, header: Header, header_bytes: bytes) -> SingleFrame:
        """The rest of the file, whose end is the end of the payload and checksum."""
        ftype = header.single
        cur = _Cursor(stream, "frame")
        raw_size = cur.varint()
        symbols = cur.varint() if ftype == FrameType.NEURAL else 0
        if raw_size > header.frame_size or (raw_size == 0 and ftype != FrameType.STORED):
            raise FormatError(f"corrupt file: {raw_size} bytes in a frame of at most {header.frame_size}")
        if ftype == FrameType.NEURAL and not 0 < symbols <= raw_size:
            raise FormatError(f"corrupt file: {symbols} symbols for {raw_size} bytes")
        bound = raw_size if ftype == FrameType.STORED else zstd_stream_bound(raw_size)
        if _says_payload_size(header):
            size = cur.varint()
            if size > bound or not payload_fits(ftype, raw_size, size):
                raise FormatError(f"corrupt file: a payload of {size} bytes for {raw_size}")
            bound = size
            rest = read_up_to(stream, size + 5)
            if len(rest) < size + 4:
                raise TruncatedError("file is truncated: it ends inside its frame")
        else:
            rest = read_up_to(stream, bound + 5)
        if len(rest) > bound + 4:
            raise FormatError("corrupt file: data after the end of its frame, or a wrong size")
        payload, tail = rest[:-4], rest[-4:]
        if len(rest) < 4 or (not payload_fits(ftype, raw_size, len(payload)) and raw_size):
            if ftype == FrameType.STORED or len(rest) < 5:
                raise TruncatedError("file is truncated: it ends inside its frame")
            raise FormatError(f"corrupt file: a payload of {len(payload)} bytes for {raw_size}")
        crc_before = zlib.crc32(header_bytes + bytes(cur.seen) + payload)
        checksum = int(struct.unpack("<I", tail)[0])
        fh = FrameHeader(ftype, raw_size, len(payload), symbols, 0)
        return cls(fh, payload, crc_before, checksum)


# --- trailer (index) --------------------------------------------------------

_DATA_FRAMES = (FrameType.STORED, FrameType.ZSTD, FrameType.NEURAL, FrameType.ZSTD_STREAM)


@dataclass(frozen=True)
class IndexEntry:
    type: FrameType
    raw_size: int
    payload_size: int


@dataclass(frozen=True)
class Trailer:
    """Follows the END frame type byte; lets ``info`` list frames without decoding."""

    content_size: int
    content_sha256_8: bytes
    entries: tuple[IndexEntry, ...]

    def pack(self) -> bytes:
        body = bytes([FrameType.END]) + pack_varint(self.content_size) + self.content_sha256_8
        body += pack_varint(len(self.entries))
        for e in self.entries:
            body += bytes([e.type]) + pack_varint(e.raw_size) + pack_varint(e.payload_size)
        body += struct.pack("<I", zlib.crc32(body))
        return body + struct.pack("<I", len(body)) + FOOTER_MAGIC

    @classmethod
    def read_after_type(cls, stream: BinaryIO) -> Trailer:
        cur = _Cursor(stream, "index")
        cur.seen.append(FrameType.END)
        content_size = cur.varint()
        digest = cur.take(8)
        count = cur.varint()
        if count > content_size:
            raise FormatError(f"corrupt index: {count} frames for {content_size} bytes")
        entries = []
        for _ in range(count):
            byte = cur.u8()
            if byte not in _DATA_FRAMES:
                raise FormatError(f"corrupt index: frame type {byte}")
            entries.append(IndexEntry(FrameType(byte), cur.varint(), cur.varint()))
        cur.check_crc()
        size = len(cur.seen)
        tail = read_exact(stream, 8, "footer")
        if struct.unpack("<I", tail[:4])[0] != size or tail[4:] != FOOTER_MAGIC:
            raise FormatError("corrupt footer")
        return cls(content_size, digest, tuple(entries))

    @classmethod
    def read_from_end(cls, stream: BinaryIO) -> Trailer:
        """Read the trailer of a seekable file from its last bytes."""
        end = stream.seek(0, 2)
        if end < 8:
            raise TruncatedError("file is truncated: no footer")
        stream.seek(end - 8)
        tail = stream.read(8)
        if tail[4:] != FOOTER_MAGIC:
            raise TruncatedError("file is truncated or corrupt: no footer at the end")
        size = struct.unpack("<I", tail[:4])[0]
        if size + 8 > end or size < 1:
            raise FormatError("corrupt footer: index size out of range")
        stream.seek(end - 8 - size)
        if stream.read(1) != bytes([FrameType.END]):
            raise FormatError("corrupt footer: index does not start with an end marker")
        return cls.read_after_type(stream)
