"""The compact header of versions 2 and 3 (docs/format.md, "Version 2: the
compact layout"): magic, version, a descriptor byte, short fingerprints of
the model and dictionary, and only the settings that differ from version 2's
frozen defaults. Version 3 is what writers write."""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING

from nacrith.errors import FormatError, UnsupportedVersionError
from nacrith.format.constants import (
    DATA_FRAMES,
    DICT_ID_SIZE,
    MAGIC,
    MAX_PARAMS_SIZE,
    MODEL_ID_SIZE,
    FrameType,
    Tag,
)
from nacrith.format.ensemble import ensemble_of_layout, pack_ensemble, unpack_ensemble
from nacrith.format.params import coding_from, lanes_from, parse_params, put_param
from nacrith.format.primitives import Cursor, pack_varint, varint_from
from nacrith.settings import Arithmetic, Coding, EnsembleSettings

if TYPE_CHECKING:  # the header module imports this one
    from nacrith.format.header import Header


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


def _settings(header: Header) -> bytes:
    """The settings that differ from version 2's defaults, in tag order."""
    params = bytearray()

    def put(tag: Tag, value: bytes) -> None:
        put_param(params, tag, value)

    model = header.model_id is not None
    if model and header.context != V2_CONTEXT:
        put(Tag.CONTEXT, pack_varint(header.context))
    if model and header.slide != V2_SLIDE:
        put(Tag.SLIDE, pack_varint(header.slide))
    if model and header.temperature != V2_TEMPERATURE:
        put(Tag.TEMPERATURE, struct.pack("<f", header.temperature))
    if header.frame_size != (V2_FRAME_SIZE if model else V2_FRAME_SIZE_NO_MODEL):
        put(Tag.FRAME_SIZE, pack_varint(header.frame_size))
    if header.single == FrameType.END and header.content_size is not None:
        put(Tag.CONTENT_SIZE, pack_varint(header.content_size))
    if model and header.start_token is not None:
        put(Tag.START_TOKEN, pack_varint(header.start_token))
    if model:
        ensemble = V2_NO_ENSEMBLE if header.ensemble is None else pack_ensemble(header.ensemble)
        if ensemble != V2_ENSEMBLE:
            put(Tag.ENSEMBLE, ensemble)
        if (header.lanes, header.min_stream) != (V2_LANES if header.dict_id is None else V2_LANES_DICT):
            put(Tag.LANES, pack_varint(header.lanes) + pack_varint(header.min_stream))
        if header.coding != V2_CODING:
            put(Tag.CODING, pack_varint(header.coding.arith) + bytes([int(header.coding.shared)]))
    if header.model_name:
        put(Tag.MODEL_NAME, header.model_name.encode())
    if model and header.environment != V2_ENVIRONMENT:
        put(Tag.ENVIRONMENT, header.environment.encode())
    for tag, value in sorted(header.unknown_ignorable.items()):
        put_param(params, tag, value)
    if len(params) > MAX_PARAMS_SIZE:
        raise ValueError(f"header settings take {len(params)} bytes, more than {MAX_PARAMS_SIZE}")
    return bytes(params)


def pack(header: Header) -> bytes:
    """A compact header: magic, version, descriptor, the model's and dictionary's
    ids, the settings that differ from the defaults, and (a body of frames) a CRC32."""
    settings = _settings(header)
    descriptor = int(header.single)
    if header.model_id is not None:
        descriptor |= Descriptor.MODEL
    if settings:
        descriptor |= Descriptor.SETTINGS
    if header.zstd_stream and header.single == FrameType.END:
        descriptor |= Descriptor.ZSTD_STREAM
    if header.dict_id is not None:
        descriptor |= Descriptor.DICT
    out = MAGIC + bytes([header.version, descriptor]) + (header.model_id or b"") + (header.dict_id or b"")
    if settings:
        out += pack_varint(len(settings)) + settings
    if header.single == FrameType.END:  # a single frame's checksum covers the header instead
        out += struct.pack("<I", zlib.crc32(out))
    return out


def read(cur: Cursor, version: int, cls: type[Header]) -> Header:
    """A compact header of this version, from the byte after its version on: a Header (cls)."""
    descriptor = cur.u8()
    if descriptor & _DESCRIPTOR_UNKNOWN:
        raise UnsupportedVersionError(
            f"file needs features this nacrith does not know (descriptor {descriptor:#04x})"
        )
    kind = descriptor & Descriptor.SINGLE_MASK
    if kind not in (FrameType.END, *DATA_FRAMES):
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
    fields = parse_params(settings)
    # A file whose one frame is a piece of the zstd stream needs no flag to say that it may appear.
    zstd_stream = bool(descriptor & Descriptor.ZSTD_STREAM) or single == FrameType.ZSTD_STREAM
    return _header(cls, fields, model_id, dict_id, single, zstd_stream, version)


def _header(
    cls: type[Header],
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
        value = varint_from(fields[tag], f"header parameter {tag.name}")
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
            header = cls.without_model(frame_size, content_size, zstd_stream, version=version)
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
            lanes_from(fields[Tag.LANES], default=lanes_default) if Tag.LANES in fields else lanes_default
        )
        coding = coding_from(fields[Tag.CODING], default=V2_CODING) if Tag.CODING in fields else V2_CODING
        environment = text(Tag.ENVIRONMENT) if Tag.ENVIRONMENT in fields else V2_ENVIRONMENT
        if environment == V2_ENVIRONMENT and Tag.ENVIRONMENT in fields:
            raise FormatError("corrupt file header: ENVIRONMENT written at its default")
        context = num(Tag.CONTEXT, V2_CONTEXT)
        slide = num(Tag.SLIDE, V2_SLIDE)
        assert context is not None and slide is not None
        return cls(
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
