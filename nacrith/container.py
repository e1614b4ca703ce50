"""Streaming writer and reader of the file format.

The writer reads its input one frame at a time and writes each frame as soon
as it is coded; the reader decodes one frame at a time and hands out its bytes
only after the frame's checksum matched. Memory stays bounded by the frame
size, whatever the size of the input.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Protocol

import zstandard

from nacrith.engine import FrameStats, Predictor, Progress, decode_frame, encode_frame
from nacrith.errors import (
    ChecksumError,
    CoderError,
    FormatError,
    InputChangedError,
    ModelMismatchError,
    NacrithWarning,
)
from nacrith.format import (
    ESCAPE_SYMBOLS,
    MAX_CONTEXT,
    MAX_FRAME_SIZE,
    MIN_CONTEXT,
    EnsembleSettings,
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    Trailer,
    read_exact,
)
from nacrith.tokens import SymbolCodec

__all__ = [
    "CodecModel",
    "CompressOptions",
    "FileInfo",
    "Summary",
    "compress_stream",
    "decompress_stream",
    "read_info",
]

ZSTD_LEVEL = 19
#: Largest zstd window a reader accepts (level 19 writes at most 8 MiB).
ZSTD_MAX_WINDOW = 1 << 27
#: Compressed bytes fed to the zstd decoder at a time: each can expand by at most
#: a few 128 KiB blocks, which bounds how far past raw_size a hostile frame gets.
ZSTD_FEED = 64
#: Every escape costs at least 24 bits: a frame with this many escapes per
#: byte of the best classical encoding cannot win, so the model is not run.
ESCAPE_BYTES = 3


class CodecModel(Protocol):
    """A loaded language model: its identity, its predictor and its tokenizer."""

    sha256: bytes
    name: str
    environment: str
    symbols: SymbolCodec
    #: Longest context (tokens) this loaded model can hold.
    max_context: int
    #: The token new files start each frame from.
    start_token: int

    def predictor(self, context: int, slide: int, start_token: int, batch: int = 1) -> Predictor:
        """The model's predictor: a window of ``context`` tokens sliding by ``slide``,
        each frame starting from ``start_token``, fed at most ``batch`` tokens at a time."""
        ...


@dataclass(frozen=True)
class CompressOptions:
    """Encoder settings; all are written into the header, so decoding takes none."""

    #: Tokens the model sees at most, the start token included.
    context: int = 2048
    #: Tokens dropped from the front of the window when it is full.
    slide: int = 512
    temperature: float = 1.0
    #: Raw bytes per frame; each frame restarts the model, and bounds memory.
    frame_size: int = 1 << 20
    #: The cheap models mixed with the language model; None: the language model alone.
    ensemble: EnsembleSettings | None = field(default_factory=EnsembleSettings)

    def __post_init__(self) -> None:
        if not MIN_CONTEXT <= self.context <= MAX_CONTEXT:
            raise ValueError(f"context must be {MIN_CONTEXT}..{MAX_CONTEXT} tokens, not {self.context}")
        if not 1 <= self.slide <= self.context - 2:
            raise ValueError(f"slide must be 1..context-2 tokens, not {self.slide}")
        if not 0.05 <= self.temperature <= 20:
            raise ValueError(f"temperature must be 0.05..20, not {self.temperature}")
        # The header stores float32; code with exactly the value the decoder will read.
        object.__setattr__(self, "temperature", struct.unpack("<f", struct.pack("<f", self.temperature))[0])
        if not 1 <= self.frame_size <= MAX_FRAME_SIZE:
            raise ValueError(f"frame size must be 1..{MAX_FRAME_SIZE} bytes, not {self.frame_size}")
        if self.ensemble is not None and self.ensemble.skip_batch > self.slide:
            # A catch-up batch must fit in the room one slide makes in the window.
            object.__setattr__(self, "ensemble", replace(self.ensemble, skip_batch=self.slide))

    @property
    def batch(self) -> int:
        """Most tokens the language model is fed at once."""
        return llm_batch(self.ensemble)


def llm_batch(ensemble: EnsembleSettings | None) -> int:
    """Tokens fed to the language model at once: skipped ones catch up in batches."""
    return ensemble.model_batch if ensemble is not None else 1


@dataclass
class Summary:
    """What a compress or decompress call did."""

    raw_bytes: int = 0
    coded_bytes: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    #: Cost of the frames written as neural (what a decoder runs the model over).
    stats: FrameStats = field(default_factory=FrameStats)
    #: Symbols the model coded, including frames that then went out as zstd or stored.
    model_symbols: int = 0

    @property
    def bpb(self) -> float:
        return 8 * self.coded_bytes / self.raw_bytes if self.raw_bytes else 0.0


@dataclass(frozen=True)
class ProgressInfo:
    """Where a compress or decompress call stands, for progress displays."""

    #: Raw bytes done; inside a frame, estimated from the share of its symbols done.
    bytes_done: int
    #: Symbols coded so far, all frames together.
    symbols: int
    #: Bits written so far (compression only; 0 when decoding).
    coded_bits: float


StreamProgress = Callable[[ProgressInfo], None]


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _frame_progress(
    progress: StreamProgress | None, summary: Summary, frame_bytes: int, frame_symbols: int
) -> Progress | None:
    """Adapt the engine's per-frame callback to whole-stream progress."""
    if progress is None or frame_symbols == 0:
        return None
    base_bytes, base_symbols = summary.raw_bytes, summary.model_symbols
    base_bits = 8 * summary.coded_bytes

    def report(symbols: int, bits: float) -> None:
        progress(
            ProgressInfo(
                base_bytes + frame_bytes * symbols // frame_symbols,
                base_symbols + symbols,
                base_bits + bits if bits else 0.0,  # decoding reports no bits
            )
        )

    return report


def _encode_chunk(
    chunk: bytes,
    model: CodecModel,
    predictor: Predictor,
    options: CompressOptions,
    progress: StreamProgress | None,
    summary: Summary,
) -> tuple[FrameType, bytes, int, FrameStats]:
    """Smallest of stored, zstd and neural coding of one frame's bytes."""
    best_type, best, symbols_count = FrameType.STORED, chunk, 0
    stats = FrameStats()
    zstd_payload = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_content_size=False, write_checksum=False
    ).compress(chunk)
    if len(zstd_payload) < len(best):
        best_type, best = FrameType.ZSTD, zstd_payload
    symbols = model.symbols.encode(chunk)
    escapes = sum(1 for s in symbols if s >= model.symbols.n_vocab)
    if escapes * ESCAPE_BYTES < len(best):
        frame_progress = _frame_progress(progress, summary, len(chunk), len(symbols))
        payload, stats = encode_frame(
            predictor, symbols, ESCAPE_SYMBOLS, options.temperature, frame_progress, options.ensemble
        )
        if len(payload) < len(best):
            best_type, best, symbols_count = FrameType.NEURAL, payload, len(symbols)
    return best_type, best, symbols_count, stats


def compress_stream(
    src: BinaryIO,
    dst: BinaryIO,
    model: CodecModel,
    options: CompressOptions = CompressOptions(),
    content_size: int | None = None,
    progress: StreamProgress | None = None,
) -> Summary:
    """Compress everything readable from src into dst, one frame at a time."""
    predictor = model.predictor(options.context, options.slide, model.start_token, options.batch)
    header = Header(
        model_sha256=model.sha256,
        vocab_size=model.symbols.n_vocab,
        context=options.context,
        slide=options.slide,
        temperature=options.temperature,
        frame_size=options.frame_size,
        start_token=model.start_token,
        content_size=content_size,
        model_name=model.name,
        environment=model.environment,
        ensemble=options.ensemble,
    )
    summary = Summary()
    out = header.pack()
    dst.write(out)
    summary.coded_bytes += len(out)
    digest = hashlib.sha256()
    entries: list[IndexEntry] = []
    while chunk := _read_up_to(src, options.frame_size):
        digest.update(chunk)
        ftype, payload, n_symbols, stats = _encode_chunk(chunk, model, predictor, options, progress, summary)
        fh = FrameHeader(ftype, len(chunk), len(payload), n_symbols, zlib.crc32(chunk))
        out = fh.pack()
        dst.write(out)
        dst.write(payload)
        entries.append(IndexEntry(ftype, len(chunk), len(payload)))
        summary.raw_bytes += len(chunk)
        summary.coded_bytes += len(out) + len(payload)
        summary.frames[ftype.name.lower()] = summary.frames.get(ftype.name.lower(), 0) + 1
        summary.model_symbols += stats.symbols
        if ftype == FrameType.NEURAL:
            summary.stats.add(stats)
        if progress is not None:
            progress(ProgressInfo(summary.raw_bytes, summary.model_symbols, 8 * summary.coded_bytes))
    if content_size is not None and content_size != summary.raw_bytes:
        raise InputChangedError(
            f"input changed while reading: expected {content_size} bytes, read {summary.raw_bytes}"
        )
    out = Trailer(summary.raw_bytes, digest.digest()[:8], tuple(entries)).pack()
    dst.write(out)
    summary.coded_bytes += len(out)
    return summary


def check_model(header: Header, model: CodecModel) -> None:
    """Refuse a model that is not the one the file was made with; warn on a different build."""
    if header.model_sha256 != model.sha256:
        named = f" ({header.model_name})" if header.model_name else ""
        raise ModelMismatchError(
            f"file needs model sha256 {header.model_sha256.hex()[:16]}…{named}, "
            f"loaded model is {model.sha256.hex()[:16]}… ({model.name})"
        )
    if header.vocab_size != model.symbols.n_vocab:
        raise ModelMismatchError(
            f"file needs a vocabulary of {header.vocab_size} tokens, the model has {model.symbols.n_vocab}"
        )
    if header.environment and header.environment != model.environment:
        warnings.warn(
            f"file was made with {header.environment!r}, decoding with {model.environment!r}: "
            "decoding is guaranteed only on the same build and backend",
            NacrithWarning,
            stacklevel=3,
        )


def _decode_payload(
    header: Header,
    fh: FrameHeader,
    payload: bytes,
    load_model: Callable[[Header], CodecModel],
    progress: Progress | None,
) -> bytes:
    if fh.type == FrameType.STORED:
        return payload
    if fh.type == FrameType.ZSTD:
        return _unzstd(payload, fh.raw_size)
    model = load_model(header)
    if header.context > model.max_context:
        raise FormatError(
            f"file needs a context of {header.context} tokens, the model holds {model.max_context}"
        )
    predictor = model.predictor(header.context, header.slide, header.start_token, llm_batch(header.ensemble))
    symbols = decode_frame(
        predictor, payload, fh.symbols, ESCAPE_SYMBOLS, header.temperature, progress, header.ensemble
    )
    return model.symbols.decode(symbols)


def _unzstd(payload: bytes, raw_size: int) -> bytes:
    """Exactly one zstd frame of at most raw_size bytes, with nothing after it.

    The payload is fed in small pieces so that a hostile one (a frame that
    declares a huge size, or blocks that expand without end) is stopped
    within a few MiB of raw_size, never allocated whole.
    """
    decoder = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()
    out = bytearray()
    view = memoryview(payload)
    fed = 0
    try:
        while fed < len(view) and not decoder.eof:
            piece = view[fed : fed + ZSTD_FEED]
            out += decoder.decompress(piece)
            fed += len(piece)
            if len(out) > raw_size:
                raise FormatError(f"corrupt zstd frame: it holds more than {raw_size} bytes")
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt zstd frame: {exc}") from None
    if not decoder.eof:
        raise FormatError("corrupt zstd frame: it ends early")
    if decoder.unused_data or fed < len(view):
        raise FormatError("corrupt zstd frame: data after the end of the zstd frame")
    return bytes(out)


def iter_decoded_frames(
    src: BinaryIO,
    load_model: Callable[[Header], CodecModel],
    progress: StreamProgress | None = None,
) -> Iterator[bytes]:
    """Yield each frame's bytes after its checksum matched; check the trailer at the end.

    ``load_model`` is called (and should check the model) only when a neural
    frame needs it, so files of stored and zstd frames decode without a model.
    """
    header = Header.read(src)
    digest = hashlib.sha256()
    entries: list[IndexEntry] = []
    done = Summary()  # coded_bytes stays 0: decoding reports no bits; model_symbols counts decoded ones
    while True:
        ftype = FrameHeader.read_type(src)
        if ftype == FrameType.END:
            break
        fh = FrameHeader.read_after_type(src, ftype, header.frame_size)
        payload = read_exact(src, fh.payload_size, "frame payload")
        try:
            frame_progress = _frame_progress(progress, done, fh.raw_size, fh.symbols)
            data = _decode_payload(header, fh, payload, load_model, frame_progress)
        except CoderError as exc:
            raise ChecksumError(f"frame {len(entries) + 1}: {exc}") from None
        if len(data) != fh.raw_size or zlib.crc32(data) != fh.raw_crc32:
            hint = (
                " (model or llama.cpp build differs from the encoder's?)" if ftype == FrameType.NEURAL else ""
            )
            raise ChecksumError(f"frame {len(entries) + 1}: decoded bytes do not match the checksum{hint}")
        digest.update(data)
        done.raw_bytes += len(data)
        done.model_symbols += fh.symbols
        entries.append(IndexEntry(ftype, fh.raw_size, fh.payload_size))
        if progress is not None:
            progress(ProgressInfo(done.raw_bytes, done.model_symbols, 0.0))
        yield data
    trailer = Trailer.read_after_type(src)
    total = done.raw_bytes
    if trailer.entries != tuple(entries) or trailer.content_size != total:
        raise FormatError("corrupt index: it does not describe the frames in the file")
    if header.content_size is not None and header.content_size != total:
        raise FormatError(f"corrupt file: header says {header.content_size} bytes, frames hold {total}")
    if trailer.content_sha256_8 != digest.digest()[:8]:
        raise ChecksumError("content checksum mismatch")
    if src.read(1):
        raise FormatError("unexpected data after the end of the file")


def decompress_stream(
    src: BinaryIO,
    dst: BinaryIO,
    load_model: Callable[[Header], CodecModel],
    progress: StreamProgress | None = None,
) -> int:
    """Decode src into dst; returns the number of bytes written."""
    total = 0
    for data in iter_decoded_frames(src, load_model, progress):
        dst.write(data)
        total += len(data)
    return total


@dataclass(frozen=True)
class FileInfo:
    header: Header
    trailer: Trailer
    file_size: int


def read_info(src: BinaryIO) -> FileInfo:
    """Header and index of a seekable file, without decoding any frame."""
    header = Header.read(src)
    trailer = Trailer.read_from_end(src)
    return FileInfo(header, trailer, src.seek(0, 2))
