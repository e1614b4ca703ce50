"""Streaming writer and reader of the file format.

The writer reads its input one frame at a time and writes each frame as soon
as it is coded; the reader decodes one frame at a time and hands out its bytes
only after the frame's checksum matched. Memory stays bounded by the frame
size, whatever the size of the input.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import shutil
import tempfile
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Protocol

import zstandard

from nacrith.crash import inject_fault
from nacrith.engine import (
    FrameStats,
    LanesPredictor,
    Predictor,
    Progress,
    decode_frame,
    decode_lanes,
    encode_frame,
    encode_lanes,
)
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
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    Trailer,
    environment_backend,
    pack_streams,
    read_exact,
    stream_bounds,
    unpack_streams,
)
from nacrith.segment import segments
from nacrith.settings import (
    EnsembleSettings,
    check_batch,
    check_frame_size,
    check_lanes,
    check_window,
    encoder_temperature,
    llm_batch,
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
#: Lanes (streams per neural frame at most) and the fewest symbols per
#: stream, by default. Every stream starts cold (an empty window, an
#: untrained ensemble): measured on alice29.txt, each stream beyond the first
#: cost about 70 bytes (16 streams of 2,600 tokens: +5.3%; 4 streams of
#: 2,700 tokens of its first 40 KB: +3.3%). Streams of at least 16,384
#: tokens keep that near 1% or below, while a 1 MiB frame of text (about
#: 280,000 tokens) still gets all 16 lanes; smaller inputs get fewer streams,
#: and under 32,768 tokens one, exactly as without lanes.
DEFAULT_LANES = 16
DEFAULT_MIN_STREAM = 16384
#: Frame size of a file written as zstd alone: large, since each frame adds its
#: header and index entry (about 20 bytes) and a block boundary to the stream,
#: and small enough that a reader holds one frame in memory.
ZSTD_ONLY_FRAME_SIZE = 1 << 25
#: Bytes of output kept in memory before a spool goes to a temporary file.
SPOOL_MEMORY = 1 << 24
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

    def lanes_predictor(
        self, lanes: int, context: int, slide: int, start_token: int, batch: int = 1
    ) -> LanesPredictor:
        """A predictor of ``lanes`` streams evaluated together, each as ``predictor``'s."""
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
    #: Split the input into text and binary frames (segment.py). Off: frames of
    #: frame_size bytes, each the smallest of neural, zstd and stored.
    segment: bool = True
    #: With segment: write zstd alone instead when that is smaller. Off only to
    #: study the segmented file itself (tests, measurements).
    zstd_fallback: bool = True
    #: Streams a neural frame is split into at most, coded in lockstep as the
    #: lanes of one llama.cpp context; a stream gets at least min_stream
    #: symbols, so short frames get fewer streams (format.stream_bounds).
    lanes: int = DEFAULT_LANES
    min_stream: int = DEFAULT_MIN_STREAM

    def __post_init__(self) -> None:
        check_window(self.context, self.slide)
        # The header stores float32; code with exactly the value the decoder will read.
        object.__setattr__(self, "temperature", encoder_temperature(self.temperature))
        check_frame_size(self.frame_size)
        check_lanes(self.lanes, self.min_stream)
        if self.ensemble is not None and self.ensemble.skip_batch > self.slide:
            # A catch-up batch must fit in the room one slide makes in the window (check_batch).
            object.__setattr__(self, "ensemble", replace(self.ensemble, skip_batch=self.slide))
        check_batch(self.batch, self.slide)

    @property
    def batch(self) -> int:
        """Most tokens the language model is fed at once."""
        return llm_batch(self.ensemble)

    def streams(self, n_symbols: int) -> list[int]:
        """Where a neural frame of n_symbols symbols is split into streams."""
        return stream_bounds(n_symbols, self.lanes, self.min_stream)


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
    #: Segments the input was split into, and their bytes, by kind ("text", "binary").
    segments: dict[str, int] = field(default_factory=dict)
    segment_bytes: dict[str, int] = field(default_factory=dict)
    #: The segmented file lost to zstd alone, which was written instead.
    zstd_only: bool = False

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


@dataclass(frozen=True)
class CodedFrame:
    """A text chunk coded as the smallest of stored, zstd and neural."""

    type: FrameType
    payload: bytes
    #: Symbols of a neural frame (0 otherwise).
    symbols: int
    #: What the model's coding cost, whether or not it was kept.
    stats: FrameStats


#: Given a frame's symbol count, the engine's progress callback for it (or None).
ProgressFor = Callable[[int], "Progress | None"]


def encode_chunk(
    chunk: bytes, model: CodecModel, options: CompressOptions, progress_for: ProgressFor | None = None
) -> CodedFrame:
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
        frame_progress = progress_for(len(symbols)) if progress_for is not None else None
        inject_fault(chunk)  # tests only: the model's process dies here, as llama.cpp can
        bounds = options.streams(len(symbols))
        if len(bounds) == 2:
            predictor = model.predictor(options.context, options.slide, model.start_token, options.batch)
            payload, stats = encode_frame(
                predictor, symbols, ESCAPE_SYMBOLS, options.temperature, frame_progress, options.ensemble
            )
        else:
            lanes = model.lanes_predictor(
                len(bounds) - 1, options.context, options.slide, model.start_token, options.batch
            )
            streams = [symbols[a:b] for a, b in itertools.pairwise(bounds)]
            payloads, stats = encode_lanes(
                lanes, streams, ESCAPE_SYMBOLS, options.temperature, frame_progress, options.ensemble
            )
            payload = pack_streams(payloads)
            stats.payload_bytes = len(payload)
        if len(payload) < len(best):
            best_type, best, symbols_count = FrameType.NEURAL, payload, len(symbols)
    return CodedFrame(best_type, best, symbols_count, stats)


def decode_neural(
    header: Header, symbols: int, payload: bytes, model: CodecModel, progress: Progress | None
) -> bytes:
    """The bytes of a neural frame of ``symbols`` symbols, decoded with a model already checked."""
    if header.context > model.max_context:
        raise FormatError(
            f"file needs a context of {header.context} tokens, the model holds {model.max_context}"
        )
    batch = llm_batch(header.ensemble)
    bounds = header.streams(symbols)
    if len(bounds) == 2:
        predictor = model.predictor(header.context, header.slide, header.start_token, batch)
        decoded = decode_frame(
            predictor, payload, symbols, ESCAPE_SYMBOLS, header.temperature, progress, header.ensemble
        )
        data = model.symbols.decode(decoded)
    else:
        parts = unpack_streams(payload, len(bounds) - 1)
        lanes = model.lanes_predictor(len(parts), header.context, header.slide, header.start_token, batch)
        counts = [b - a for a, b in itertools.pairwise(bounds)]
        streams = decode_lanes(
            lanes, parts, counts, ESCAPE_SYMBOLS, header.temperature, progress, header.ensemble
        )
        data = b"".join(model.symbols.decode(stream) for stream in streams)
    inject_fault(data)  # tests only: the model's process dies here, as llama.cpp can
    return data


class FrameWorkers(Protocol):
    """Code neural frames somewhere else (worker processes, parallel.py), in any
    order; the container writes and checks the results in file order."""

    #: ENVIRONMENT of the files the workers write.
    environment: str

    def check(self, header: Header) -> None:
        """Raise ModelMismatchError unless the workers' model is the file's."""

    def encode(self, chunk: bytes, options: CompressOptions) -> Future[CodedFrame]: ...

    def decode(self, header: Header, symbols: int, payload: bytes) -> Future[bytes]: ...

    @property
    def depth(self) -> int:
        """Frames to keep in flight so that every worker stays busy."""
        ...


def _done(value: object) -> Future:  # type: ignore[type-arg]
    future: Future = Future()  # type: ignore[type-arg]
    future.set_result(value)
    return future


def _failed(exc: BaseException) -> Future:  # type: ignore[type-arg]
    future: Future = Future()  # type: ignore[type-arg]
    future.set_exception(exc)
    return future


class _FrameWriter:
    """Writes a header, frames and the index to out, keeping the summary and the digest."""

    def __init__(self, out: BinaryIO, header: Header) -> None:
        self.out = out
        self.summary = Summary()
        self.digest = hashlib.sha256()
        self.entries: list[IndexEntry] = []
        self._write(header.pack())

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.summary.coded_bytes += len(data)

    def frame(self, ftype: FrameType, raw: bytes, payload: bytes, n_symbols: int = 0) -> None:
        self._write(FrameHeader(ftype, len(raw), len(payload), n_symbols, zlib.crc32(raw)).pack())
        self._write(payload)
        self.digest.update(raw)
        self.entries.append(IndexEntry(ftype, len(raw), len(payload)))
        s = self.summary
        s.raw_bytes += len(raw)
        s.frames[ftype.name.lower()] = s.frames.get(ftype.name.lower(), 0) + 1

    def finish(self, content_size: int | None) -> Summary:
        if content_size is not None and content_size != self.summary.raw_bytes:
            raise InputChangedError(
                f"input changed while reading: expected {content_size} bytes, read {self.summary.raw_bytes}"
            )
        self._write(Trailer(self.summary.raw_bytes, self.digest.digest()[:8], tuple(self.entries)).pack())
        return self.summary


def _stream_compressor() -> zstandard.ZstdCompressionObj:
    return zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_content_size=False, write_checksum=False
    ).compressobj()


def _stream_piece(stream: zstandard.ZstdCompressionObj, data: bytes) -> bytes:
    """data as the next piece of the zstd stream, ending on a block boundary."""
    return stream.compress(data) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


class _ZstdOnly:
    """The whole input as one zstd stream in a file without a model: what a
    segmented file must beat, written to a spool beside it.

    The header is written with the first frame, when it is known whether the
    file is a single frame, which is stored instead when zstd does not help.
    """

    def __init__(self, spool: BinaryIO, frame_size: int, content_size: int | None) -> None:
        self.spool = spool
        self.frame_size = frame_size
        self.content_size = content_size
        self.writer: _FrameWriter | None = None
        self.stream = _stream_compressor()
        self.pending: list[bytes] = []
        self.pending_size = 0

    def feed(self, data: bytes) -> None:
        while data:
            take = min(len(data), self.frame_size - self.pending_size)
            self.pending.append(data[:take])
            self.pending_size += take
            data = data[take:]
            if self.pending_size == self.frame_size:
                self._frame(last=False)

    def _frame(self, last: bool) -> None:
        raw = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        piece = _stream_piece(self.stream, raw)
        if self.writer is None:
            stored = last and len(piece) >= len(raw)  # a single frame zstd does not shrink
            header = Header.without_model(self.frame_size, self.content_size, zstd_stream=not stored)
            self.writer = _FrameWriter(self.spool, header)
            if stored:
                self.writer.frame(FrameType.STORED, raw, raw)
                return
        self.writer.frame(FrameType.ZSTD_STREAM, raw, piece)

    def finish(self) -> Summary:
        if self.pending_size:
            self._frame(last=True)
        if self.writer is None:  # empty input
            header = Header.without_model(self.frame_size, self.content_size, zstd_stream=False)
            self.writer = _FrameWriter(self.spool, header)
        return self.writer.finish(self.content_size)


def _copy(src: BinaryIO, dst: BinaryIO) -> None:
    src.seek(0)
    shutil.copyfileobj(src, dst, 1 << 20)


def _seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable() and hasattr(f, "truncate")
    except (AttributeError, ValueError):
        return False


def compress_stream(
    src: BinaryIO,
    dst: BinaryIO,
    model: CodecModel,
    options: CompressOptions = CompressOptions(),
    content_size: int | None = None,
    progress: StreamProgress | None = None,
    workers: FrameWorkers | None = None,
) -> Summary:
    """Compress everything readable from src into dst, one frame at a time.

    With ``options.segment`` (the default), text and binary parts get frames
    of their own, and the result is never larger than the whole input as one
    zstd stream in a file without a model; see ``_compress_segmented``.

    With ``workers``, text frames are coded in the workers, several at once,
    and written in input order: the file is the same byte for byte. ``model``
    then serves only the tokenizer and the model's identity.
    """
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
        environment=workers.environment if workers is not None else model.environment,
        ensemble=options.ensemble,
        zstd_stream=options.segment,
        lanes=options.lanes,
        min_stream=options.min_stream if options.lanes > 1 else 0,
    )
    if options.segment:
        return _compress_segmented(src, dst, header, model, options, progress, workers)
    writer = _FrameWriter(dst, header)
    frames = _OrderedFrames(writer, model, options, progress, workers)
    while chunk := _read_up_to(src, options.frame_size):
        frames.text(chunk)
    frames.finish()
    return writer.finish(content_size)


def _count_model(summary: Summary, ftype: FrameType, stats: FrameStats) -> None:
    summary.model_symbols += stats.symbols
    if ftype == FrameType.NEURAL:
        summary.stats.add(stats)


class _OrderedFrames:
    """Frames go out in input order, while text frames are coded here or,
    several at a time, in the workers; at most ``depth`` wait in memory."""

    def __init__(
        self,
        writer: _FrameWriter,
        model: CodecModel,
        options: CompressOptions,
        progress: StreamProgress | None,
        workers: FrameWorkers | None,
    ) -> None:
        self.writer = writer
        self.model = model
        self.options = options
        self.progress = progress
        self.workers = workers
        self.depth = workers.depth if workers is not None else 0
        self.pending: deque[tuple[bytes, Future[CodedFrame]]] = deque()

    def text(self, chunk: bytes) -> None:
        if self.workers is not None:
            self._add(chunk, self.workers.encode(chunk, self.options))
            return
        summary = self.writer.summary

        def progress_for(n_symbols: int) -> Progress | None:
            return _frame_progress(self.progress, summary, len(chunk), n_symbols)

        self._add(chunk, _done(encode_chunk(chunk, self.model, self.options, progress_for)))

    def binary(self, chunk: bytes, piece: bytes) -> None:
        self._add(chunk, _done(CodedFrame(FrameType.ZSTD_STREAM, piece, 0, FrameStats())))

    def _add(self, chunk: bytes, future: Future[CodedFrame]) -> None:
        self.pending.append((chunk, future))
        self._drain(self.depth)

    def _drain(self, keep: int) -> None:
        summary = self.writer.summary
        while self.pending and (len(self.pending) > keep or self.pending[0][1].done()):
            chunk, future = self.pending.popleft()
            coded = future.result()
            self.writer.frame(coded.type, chunk, coded.payload, coded.symbols)
            _count_model(summary, coded.type, coded.stats)
            if self.progress is not None:
                self.progress(ProgressInfo(summary.raw_bytes, summary.model_symbols, 8 * summary.coded_bytes))

    def finish(self) -> None:
        self._drain(0)


def _compress_segmented(
    src: BinaryIO,
    dst: BinaryIO,
    header: Header,
    model: CodecModel,
    options: CompressOptions,
    progress: StreamProgress | None,
    workers: FrameWorkers | None,
) -> Summary:
    """Text segments as the smallest of neural, zstd and stored frames; binary
    segments as pieces of one zstd stream, so they share its context.

    Alongside, the whole input goes into a zstd-only file (``_ZstdOnly``); when
    that is smaller, it is what dst gets. So the output is never more than
    that file's few dozen bytes of container larger than zstd of the input.
    The segmented file goes straight to dst when dst can be rewound, else to
    a spool on disk.

    (Design change: frames were all independently decodable. Binary frames
    now continue one zstd stream, since sharing the context is what makes
    zstd good on a file's binary parts; a reader decodes frames in order
    anyway. Neural frames still restart the model and stand alone.)
    """
    if not options.zstd_fallback:
        return _write_segments(src, dst, header, model, options, progress, workers, None)
    direct = _seekable(dst)
    with contextlib.ExitStack() as spools:
        out: BinaryIO = dst if direct else spools.enter_context(_spool())
        zstd_only = _ZstdOnly(
            spools.enter_context(_spool()), max(ZSTD_ONLY_FRAME_SIZE, options.frame_size), header.content_size
        )
        start = out.tell() if direct else 0
        summary = _write_segments(src, out, header, model, options, progress, workers, zstd_only)
        alone = zstd_only.finish()
        if alone.coded_bytes < summary.coded_bytes:
            if direct:
                out.seek(start)
                _copy(zstd_only.spool, out)
                out.truncate()
            else:
                _copy(zstd_only.spool, dst)
            alone.segments, alone.segment_bytes = summary.segments, summary.segment_bytes
            alone.model_symbols = summary.model_symbols
            alone.zstd_only = True
            return alone
        if not direct:
            _copy(out, dst)
        return summary


def _spool() -> BinaryIO:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # type: ignore[return-value]


def _write_segments(
    src: BinaryIO,
    out: BinaryIO,
    header: Header,
    model: CodecModel,
    options: CompressOptions,
    progress: StreamProgress | None,
    workers: FrameWorkers | None,
    zstd_only: _ZstdOnly | None,
) -> Summary:
    """The segmented file into out; every byte read also goes to zstd_only, if any."""
    writer = _FrameWriter(out, header)
    summary = writer.summary
    frames = _OrderedFrames(writer, model, options, progress, workers)
    stream = _stream_compressor()

    def blocks() -> Iterator[bytes]:
        while chunk := _read_up_to(src, options.frame_size):
            if zstd_only is not None:
                zstd_only.feed(chunk)
            yield chunk

    for seg in segments(blocks(), options.frame_size, model.symbols.uncarried_bytes):
        kind = "text" if seg.text else "binary"
        summary.segments[kind] = summary.segments.get(kind, 0) + 1
        summary.segment_bytes[kind] = summary.segment_bytes.get(kind, 0) + len(seg.data)
        if seg.text:
            frames.text(seg.data)
        else:
            # Pieces of the stream are made here, in input order, whatever the workers do.
            frames.binary(seg.data, _stream_piece(stream, seg.data))
    frames.finish()
    return writer.finish(header.content_size)


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
    written, here = environment_backend(header.environment), environment_backend(model.environment)
    if written and here and written != here:
        warnings.warn(
            f"file was made on the {written.upper()} backend, decoding on the {here.upper()}: "
            "CPU and GPU arithmetic differ, so decoding is expected to fail its checksums",
            NacrithWarning,
            stacklevel=3,
        )
    elif header.environment and header.environment != model.environment:
        warnings.warn(
            f"file was made with {header.environment!r}, decoding with {model.environment!r}: "
            "decoding is guaranteed only on the same build and backend",
            NacrithWarning,
            stacklevel=3,
        )


class _StreamReader:
    """Decodes the pieces of a file's one zstd stream, in order."""

    def __init__(self) -> None:
        self.decoder = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()

    def piece(self, payload: bytes, raw_size: int) -> bytes:
        """The raw_size bytes payload holds; fed in small steps, so a hostile
        piece is stopped within a block of raw_size, never allocated whole."""
        out = bytearray()
        view = memoryview(payload)
        try:
            for fed in range(0, len(view), ZSTD_FEED):
                if self.decoder.eof:
                    raise FormatError("corrupt zstd stream: a piece ends the stream")
                out += self.decoder.decompress(view[fed : fed + ZSTD_FEED])
                if len(out) > raw_size:
                    raise FormatError(f"corrupt zstd stream: a piece holds more than {raw_size} bytes")
        except zstandard.ZstdError as exc:
            raise FormatError(f"corrupt zstd stream: {exc}") from None
        if self.decoder.eof:
            raise FormatError("corrupt zstd stream: a piece ends the stream")
        if len(out) != raw_size:
            raise FormatError(f"corrupt zstd stream: a piece holds {len(out)} bytes, not {raw_size}")
        return bytes(out)


def _decode_payload(
    header: Header,
    fh: FrameHeader,
    payload: bytes,
    neural: Callable[[int, bytes, Progress | None], Future[bytes]],
    progress: Progress | None,
    stream: _StreamReader,
) -> Future[bytes]:
    """The frame's bytes, or the error decoding them, as a future: neural
    frames may still be decoding in a worker."""
    try:
        if fh.type == FrameType.STORED:
            return _done(payload)
        if fh.type == FrameType.ZSTD:
            return _done(_unzstd(payload, fh.raw_size))
        if fh.type == FrameType.ZSTD_STREAM:
            if not header.zstd_stream:
                raise FormatError("corrupt file: a zstd stream frame in a file without the stream flag")
            return _done(stream.piece(payload, fh.raw_size))
        if header.model_sha256 is None:
            raise FormatError("corrupt file: a neural frame in a file without a model")
        return neural(fh.symbols, payload, progress)
    except (FormatError, CoderError) as exc:
        return _failed(exc)


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
    workers: FrameWorkers | None = None,
) -> Iterator[bytes]:
    """Yield each frame's bytes after its checksum matched; check the trailer at the end.

    ``load_model`` is called (and should check the model) only when a neural
    frame needs it, so files of stored and zstd frames decode without a model.
    With ``workers``, neural frames are decoded there instead, several at a
    time, and still handed out in file order.
    """
    header = Header.read(src)
    digest = hashlib.sha256()
    entries: list[IndexEntry] = []
    stream = _StreamReader()
    done = Summary()  # coded_bytes stays 0: decoding reports no bits; model_symbols counts decoded ones
    pending: deque[tuple[FrameHeader, Future[bytes]]] = deque()
    #: The decoding side's ENVIRONMENT, once a neural frame has been met.
    environment: str | None = None

    def neural(symbols: int, payload: bytes, frame_progress: Progress | None) -> Future[bytes]:
        nonlocal environment
        if workers is not None:
            if environment is None:
                workers.check(header)
                environment = workers.environment
            return workers.decode(header, symbols, payload)
        model = load_model(header)
        environment = model.environment
        return _done(decode_neural(header, symbols, payload, model, frame_progress))

    def finished(fh: FrameHeader, future: Future[bytes]) -> bytes:
        number = len(entries) + 1
        try:
            data = future.result()
        except CoderError as exc:
            raise ChecksumError(f"frame {number}: {exc}{_backend_hint(header, environment)}") from None
        except FormatError as exc:
            if str(exc).startswith("corrupt"):  # the payload's own structure, not the file's
                raise FormatError(f"frame {number}: {exc}") from None
            raise
        if len(data) != fh.raw_size or zlib.crc32(data) != fh.raw_crc32:
            hint = ""
            if fh.type == FrameType.NEURAL:
                hint = (
                    _backend_hint(header, environment)
                    or " (model or llama.cpp build differs from the encoder's?)"
                )
            raise ChecksumError(f"frame {number}: decoded bytes do not match the checksum{hint}")
        digest.update(data)
        done.raw_bytes += len(data)
        done.model_symbols += fh.symbols
        entries.append(IndexEntry(fh.type, fh.raw_size, fh.payload_size))
        if progress is not None:
            progress(ProgressInfo(done.raw_bytes, done.model_symbols, 0.0))
        return data

    depth = workers.depth if workers is not None else 0
    while True:
        ftype = FrameHeader.read_type(src)
        if ftype == FrameType.END:
            break
        fh = FrameHeader.read_after_type(src, ftype, header.frame_size)
        payload = read_exact(src, fh.payload_size, "frame payload")
        frame_progress = _frame_progress(progress, done, fh.raw_size, fh.symbols) if workers is None else None
        pending.append((fh, _decode_payload(header, fh, payload, neural, frame_progress, stream)))
        while pending and (len(pending) > depth or pending[0][1].done()):
            yield finished(*pending.popleft())
    while pending:
        yield finished(*pending.popleft())
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


def _backend_hint(header: Header, environment: str | None) -> str:
    """When the file was made on another backend (CPU, GPU) than it is decoded
    on, the likely reason a neural frame fails; else ""."""
    written = environment_backend(header.environment)
    here = environment_backend(environment or "")
    if written and here and written != here:
        return (
            f" (the file was made on the {written.upper()} backend and is decoded on the {here.upper()}: "
            "their arithmetic differs, so decode it on the backend that made it)"
        )
    return ""


def decompress_stream(
    src: BinaryIO,
    dst: BinaryIO,
    load_model: Callable[[Header], CodecModel],
    progress: StreamProgress | None = None,
    workers: FrameWorkers | None = None,
) -> int:
    """Decode src into dst; returns the number of bytes written."""
    total = 0
    for data in iter_decoded_frames(src, load_model, progress, workers):
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
