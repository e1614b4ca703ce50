"""The format's byte primitives: varints (unsigned LEB128), exact reads that
name what they were reading when the input ends, and a cursor that keeps the
bytes it read for their checksum."""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

from nacrith.errors import FormatError, TruncatedError


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


class Cursor:
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


def varint_from(data: bytes, what: str) -> int:
    """The one varint data holds; FormatError naming `what` for anything else."""
    cur = Cursor(io.BytesIO(data), what)
    try:
        value = cur.varint()
    except TruncatedError:
        raise FormatError(f"corrupt {what}: empty or cut varint") from None
    if len(cur.seen) != len(data):
        raise FormatError(f"corrupt {what}: trailing bytes after a varint")
    return value
