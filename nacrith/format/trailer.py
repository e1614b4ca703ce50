"""The trailer: the END marker, the content's size and hash, an index of the
frames, and a footer that lets ``info`` find the index from the end of a file
without decoding it."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from nacrith.errors import FormatError, TruncatedError
from nacrith.format.constants import DATA_FRAMES, FOOTER_MAGIC, FrameType
from nacrith.format.primitives import Cursor, pack_varint, read_exact


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
        cur = Cursor(stream, "index")
        cur.seen.append(FrameType.END)
        content_size = cur.varint()
        digest = cur.take(8)
        count = cur.varint()
        if count > content_size:
            raise FormatError(f"corrupt index: {count} frames for {content_size} bytes")
        entries = []
        for _ in range(count):
            byte = cur.u8()
            if byte not in DATA_FRAMES:
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
