"""zstd as the file format uses it: a frame's bytes as one zstd frame, a
binary segment as the next piece of the file's one zstd stream, and decoding
either with memory bounded by the frame's raw size."""

from __future__ import annotations

import zstandard

from nacrith.errors import FormatError

__all__ = ["ZSTD_LEVEL", "StreamReader", "compress_frame", "stream_compressor", "stream_piece", "unzstd"]

ZSTD_LEVEL = 19
#: Largest zstd window a reader accepts (level 19 writes at most 8 MiB).
ZSTD_MAX_WINDOW = 1 << 27
#: Compressed bytes fed to the zstd decoder at a time: each can expand by at most
#: a few 128 KiB blocks, which bounds how far past raw_size a hostile frame gets.
ZSTD_FEED = 64


def _compressor() -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False, write_checksum=False)


def _decompressor() -> zstandard.ZstdDecompressionObj:
    return zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()


def compress_frame(data: bytes) -> bytes:
    """data as one zstd frame, without the content size or a checksum (the container has both)."""
    return _compressor().compress(data)


def stream_compressor() -> zstandard.ZstdCompressionObj:
    """The compressor of a file's one zstd stream, whose pieces stream_piece makes."""
    return _compressor().compressobj()


def stream_piece(stream: zstandard.ZstdCompressionObj, data: bytes) -> bytes:
    """data as the next piece of the zstd stream, ending on a block boundary."""
    return stream.compress(data) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


def _feed(
    decoder: zstandard.ZstdDecompressionObj, payload: bytes, limit: int, what: str, subject: str
) -> tuple[bytearray, int]:
    """Feed payload to decoder ZSTD_FEED bytes at a time until all of it is fed
    or the zstd frame ends; returns the output and the bytes fed.

    A hostile payload (a frame that declares a huge size, or blocks that
    expand without end) is stopped within a few blocks of ``limit`` bytes,
    never allocated whole: FormatError "corrupt <what>: <subject> holds more
    than <limit> bytes", or "corrupt <what>: <zstd's error>".
    """
    out = bytearray()
    view = memoryview(payload)
    fed = 0
    try:
        while fed < len(view) and not decoder.eof:
            piece = view[fed : fed + ZSTD_FEED]
            out += decoder.decompress(piece)
            fed += len(piece)
            if len(out) > limit:
                raise FormatError(f"corrupt {what}: {subject} holds more than {limit} bytes")
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt {what}: {exc}") from None
    return out, fed


class StreamReader:
    """Decodes the pieces of a file's one zstd stream, in order."""

    def __init__(self) -> None:
        self.decoder = _decompressor()

    def piece(self, payload: bytes, raw_size: int) -> bytes:
        """The raw_size bytes payload holds, which must not end the stream."""
        out, _ = _feed(self.decoder, payload, raw_size, "zstd stream", "a piece")
        if self.decoder.eof:
            raise FormatError("corrupt zstd stream: a piece ends the stream")
        if len(out) != raw_size:
            raise FormatError(f"corrupt zstd stream: a piece holds {len(out)} bytes, not {raw_size}")
        return bytes(out)


def unzstd(payload: bytes, raw_size: int) -> bytes:
    """Exactly one zstd frame of at most raw_size bytes, with nothing after it."""
    decoder = _decompressor()
    out, fed = _feed(decoder, payload, raw_size, "zstd frame", "it")
    if not decoder.eof:
        raise FormatError("corrupt zstd frame: it ends early")
    if decoder.unused_data or fed < len(payload):
        raise FormatError("corrupt zstd frame: data after the end of the zstd frame")
    return bytes(out)
