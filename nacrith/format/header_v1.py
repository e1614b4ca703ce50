"""The version-1 header (docs/format.md, "File header"): magic, version,
required and optional flags, every parameter the decoder needs in a
tag-length-value block, and a CRC32. Read forever; written only for the
tests of its golden files."""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING

from nacrith.errors import FormatError, UnsupportedVersionError
from nacrith.format.constants import ESCAPE_SYMBOLS, MAGIC, MAX_PARAMS_SIZE, Tag
from nacrith.format.ensemble import pack_ensemble, unpack_ensemble
from nacrith.format.params import coding_from, lanes_from, parse_params, put_param
from nacrith.format.primitives import Cursor, pack_varint, varint_from
from nacrith.settings import LEGACY_CODING

if TYPE_CHECKING:  # the header module imports this one
    from nacrith.format.header import Header


class HeaderFlag(enum.IntFlag):
    """Required header flags: a reader that does not know one refuses the file."""

    #: No neural frames and no model: the model parameters are absent.
    NO_MODEL = 0x01
    #: ZSTD_STREAM frames may appear.
    ZSTD_STREAM = 0x02


#: The parameters a version-1 header with a model must have.
REQUIRED = (
    Tag.MODEL_SHA256,
    Tag.VOCAB_SIZE,
    Tag.CONTEXT,
    Tag.SLIDE,
    Tag.TEMPERATURE,
    Tag.ESCAPES,
    Tag.FRAME_SIZE,
    Tag.START_TOKEN,
)


def flags_of(header: Header) -> HeaderFlag:
    """The header's required flags."""
    out = HeaderFlag(0)
    if header.model_id is None:
        out |= HeaderFlag.NO_MODEL
    if header.zstd_stream:
        out |= HeaderFlag.ZSTD_STREAM
    return out


def pack(header: Header) -> bytes:
    """A version-1 header: magic, version, flags, the parameter block and its CRC32."""
    params = bytearray()

    def put(tag: Tag, value: bytes) -> None:
        put_param(params, tag, value)

    if header.model_id is not None:
        assert header.vocab_size is not None  # __post_init__
        put(Tag.MODEL_SHA256, header.model_id)
        put(Tag.VOCAB_SIZE, pack_varint(header.vocab_size))
        put(Tag.CONTEXT, pack_varint(header.context))
        put(Tag.SLIDE, pack_varint(header.slide))
        put(Tag.TEMPERATURE, struct.pack("<f", header.temperature))
        put(Tag.ESCAPES, pack_varint(header.escapes))
    put(Tag.FRAME_SIZE, pack_varint(header.frame_size))
    if header.start_token is not None and header.model_id is not None:
        put(Tag.START_TOKEN, pack_varint(header.start_token))
    if header.ensemble is not None:
        put(Tag.ENSEMBLE, pack_ensemble(header.ensemble))
    if header.lanes > 1:
        put(Tag.LANES, pack_varint(header.lanes) + pack_varint(header.min_stream))
    if header.coding != LEGACY_CODING:
        put(Tag.CODING, pack_varint(header.coding.arith) + bytes([int(header.coding.shared)]))
    if header.content_size is not None:
        put(Tag.CONTENT_SIZE, pack_varint(header.content_size))
    if header.model_name:
        put(Tag.MODEL_NAME, header.model_name.encode())
    if header.environment:
        put(Tag.ENVIRONMENT, header.environment.encode())
    for tag, value in sorted(header.unknown_ignorable.items()):
        put_param(params, tag, value)
    if len(params) > MAX_PARAMS_SIZE:
        raise ValueError(f"header parameters take {len(params)} bytes, more than {MAX_PARAMS_SIZE}")
    body = MAGIC + bytes([1, flags_of(header), 0]) + pack_varint(len(params)) + bytes(params)
    return body + struct.pack("<I", zlib.crc32(body))


def read(cur: Cursor, cls: type[Header]) -> Header:
    """A version-1 header, from the byte after its version on: a Header (cls)."""
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
    return _from_params(cls, params, HeaderFlag(required_flags))


def _from_params(cls: type[Header], params: bytes, flags: HeaderFlag) -> Header:
    """The header a parameter block and its flags describe."""
    fields = parse_params(params)

    def num(tag: Tag) -> int:
        return varint_from(fields[tag], f"header parameter {tag.name}")

    zstd_stream = bool(flags & HeaderFlag.ZSTD_STREAM)
    if flags & HeaderFlag.NO_MODEL:
        extra = [Tag(t).name for t in fields if t in REQUIRED and t != Tag.FRAME_SIZE]
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
    missing = [t.name for t in REQUIRED if t not in fields]
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
    lanes, min_stream = lanes_from(fields[Tag.LANES]) if Tag.LANES in fields else (1, 0)
    coding = coding_from(fields[Tag.CODING]) if Tag.CODING in fields else LEGACY_CODING
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
