"""Frames: the frame header of a body of frames, what a payload's size may
be, and the one frame of a compact file (versions 2 and 3), which follows
the header without a frame header or an index."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from nacrith.errors import FormatError, TruncatedError
from nacrith.format.constants import COMPACT_VERSIONS, FrameType
from nacrith.format.primitives import Cursor, pack_varint, read_exact, read_up_to

if TYPE_CHECKING:
    from nacrith.format.header import Header


def zstd_stream_bound(raw_size: int) -> int:
    """Largest ZSTD_STREAM payload for raw_size bytes: zstd's frame header and
    its 3-byte block headers on data it cannot compress, with room to spare."""
    return raw_size + raw_size // 128 + 64


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
        cur = Cursor(stream, "frame header")
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
        cur = Cursor(stream, "frame")
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
