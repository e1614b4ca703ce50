"""The streaming writer of the file format.

It reads its input one frame at a time and writes each frame as soon as it is
coded (here or, several at a time, in workers), in input order. Memory stays
bounded by the frame size, whatever the size of the input. (A little over
400 lines: the segmented file and the zstd-alone file it is weighed against
are written side by side, and read best together.)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import tempfile
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, BinaryIO

from nacrith.engine import FrameStats, Progress
from nacrith.errors import InputChangedError
from nacrith.format import (
    COMPACT_VERSIONS,
    MODEL_ID_SIZE,
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    Trailer,
    pack_single,
    read_up_to,
)
from nacrith.framecodec import CodecModel, CodedFrame, FrameWorkers, done_future, encode_text
from nacrith.frameparams import FrameParams
from nacrith.options import CONTEXT_HEADS_MIN_INPUT, CompressOptions
from nacrith.reports import ProgressInfo, StreamProgress, Summary, frame_progress
from nacrith.segment import segments
from nacrith.zstdio import stream_compressor, stream_piece

__all__ = ["compress_stream"]

#: Frame size of a file written as zstd alone: large, since each frame adds its
#: header and index entry (about 20 bytes) and a block boundary to the stream,
#: and small enough that a reader holds one frame in memory.
ZSTD_ONLY_FRAME_SIZE = 1 << 25
#: Bytes of output kept in memory before a spool goes to a temporary file.
SPOOL_MEMORY = 1 << 24

#: What compress_stream writes with when given no options.
DEFAULT_OPTIONS = CompressOptions()


class _FrameWriter:
    """Writes a header, frames and the index to out, keeping the summary and the digest.

    In version 2, the header and the first frame wait until a second frame
    comes or the input ends: a file of one frame, the usual small file, is
    written without frame header and index (format.pack_single). Memory holds
    that one frame at most.
    """

    def __init__(self, out: BinaryIO, header: Header) -> None:
        self.out = out
        self.header = header
        self.summary = Summary()
        self.digest = hashlib.sha256()
        self.entries: list[IndexEntry] = []
        #: Version 2's first frame, until it is known whether it is the only one.
        self.held: tuple[FrameType, bytes, bytes, int] | None = None
        self.started = header.version == 1
        if self.started:
            self._write(header.pack())

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.summary.coded_bytes += len(data)

    def frame(self, ftype: FrameType, raw: bytes, payload: bytes, n_symbols: int = 0) -> None:
        s = self.summary
        s.raw_bytes += len(raw)
        s.frames[ftype.name.lower()] = s.frames.get(ftype.name.lower(), 0) + 1
        if not self.started:
            if self.held is None:
                self.held = (ftype, raw, payload, n_symbols)
                return
            self._start()
        self._frame(ftype, raw, payload, n_symbols)

    def _start(self) -> None:
        """A second frame came: the header of a file of frames, then the first frame."""
        self.started = True
        self._write(self.header.pack())
        if self.held is not None:
            self._frame(*self.held)
            self.held = None

    def _frame(self, ftype: FrameType, raw: bytes, payload: bytes, n_symbols: int) -> None:
        self._write(FrameHeader(ftype, len(raw), len(payload), n_symbols, zlib.crc32(raw)).pack())
        self._write(payload)
        self.digest.update(raw)
        self.entries.append(IndexEntry(ftype, len(raw), len(payload)))

    def finish(self, content_size: int | None) -> Summary:
        if content_size is not None and content_size != self.summary.raw_bytes:
            raise InputChangedError(
                f"input changed while reading: expected {content_size} bytes, read {self.summary.raw_bytes}"
            )
        if not self.started:
            if self.held is None:  # an empty input: one empty stored frame, as info lists it
                self.summary.frames["stored"] = 1
            ftype, raw, payload, n_symbols = self.held or (FrameType.STORED, b"", b"", 0)
            header = replace(
                self.header, single=ftype, zstd_stream=ftype == FrameType.ZSTD_STREAM, content_size=None
            )
            self._write(pack_single(header, raw, payload, n_symbols))
            return self.summary
        self._write(Trailer(self.summary.raw_bytes, self.digest.digest()[:8], tuple(self.entries)).pack())
        return self.summary


class _ZstdOnly:
    """The whole input as one zstd stream in a file without a model: what a
    segmented file must beat, written to a spool beside it.

    The header is written with the first frame, when it is known whether the
    file is a single frame, which is stored instead when zstd does not help.
    """

    def __init__(self, spool: BinaryIO, frame_size: int, content_size: int | None, version: int) -> None:
        self.spool = spool
        self.version = version
        self.frame_size = frame_size
        self.content_size = content_size
        self.writer: _FrameWriter | None = None
        self.stream = stream_compressor()
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
        piece = stream_piece(self.stream, raw)
        if self.writer is None:
            stored = last and len(piece) >= len(raw)  # a single frame zstd does not shrink
            header = Header.without_model(self.frame_size, self.content_size, not stored, self.version)
            self.writer = _FrameWriter(self.spool, header)
            if stored:
                self.writer.frame(FrameType.STORED, raw, raw)
                return
        self.writer.frame(FrameType.ZSTD_STREAM, raw, piece)

    def finish(self) -> Summary:
        if self.pending_size:
            self._frame(last=True)
        if self.writer is None:  # empty input
            header = Header.without_model(self.frame_size, self.content_size, False, self.version)
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
    options: CompressOptions = DEFAULT_OPTIONS,
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
    if content_size is None and options.for_input(0) != options:
        # A pipe: whether the input is short enough to code without the context
        # heads is known once that much of it is read.
        src, known = _read_ahead(src, CONTEXT_HEADS_MIN_INPUT)
        options = options.for_input(known)
    else:
        options = options.for_input(content_size)
    if options.dictionary is not None:
        options.dictionary.check_model(model.sha256, model.symbols.n_vocab)
    params = options.frame_params(model.start_token)
    header = _header(model, params, options, content_size, workers)
    if options.segment:
        return _compress_segmented(src, dst, header, model, options, params, progress, workers)
    writer = _FrameWriter(dst, header)
    frames = _OrderedFrames(writer, model, params, progress, workers)
    while chunk := read_up_to(src, options.frame_size):
        frames.text(chunk)
    frames.finish()
    return writer.finish(content_size)


class _Prepended(io.RawIOBase):
    """Bytes already read from a stream, then the rest of it."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_ahead(src: BinaryIO, limit: int) -> tuple[BinaryIO, int | None]:
    """src as it was, having read up to ``limit`` bytes of it: with its size
    when it held fewer (the whole input), else None."""
    head = read_up_to(src, limit)
    size = len(head) if len(head) < limit else None
    return io.BufferedReader(_Prepended(head, src)), size


def _header(
    model: CodecModel,
    params: FrameParams,
    options: CompressOptions,
    content_size: int | None,
    workers: FrameWorkers | None,
) -> Header:
    """The header of options.format_version, recording the frames' params
    (FrameParams.of_header reads them back) and the container's options.
    The compact versions (2 and 3) name the model by a short fingerprint and
    leave out what the model itself says (its vocabulary, its start token)
    and its file name, which ``info`` finds among the models it knows
    (models/registry.py)."""
    compact = options.format_version in COMPACT_VERSIONS
    dictionary = options.dictionary
    return Header(
        # With a dictionary, its file names the model.
        model_id=(b"" if dictionary is not None else model.sha256[:MODEL_ID_SIZE])
        if compact
        else model.sha256,
        vocab_size=None if compact else model.symbols.n_vocab,
        context=params.context,
        slide=params.slide,
        temperature=params.temperature,
        frame_size=options.frame_size,
        start_token=None if compact else params.start_token,
        content_size=content_size,
        model_name="" if compact else model.name,
        environment=workers.environment if workers is not None else model.environment,
        ensemble=params.ensemble,
        zstd_stream=options.segment,
        lanes=params.lanes,
        min_stream=params.min_stream,
        coding=params.coding,
        version=options.format_version,
        dict_id=dictionary.fingerprint if dictionary is not None else None,
    )


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
        params: FrameParams,
        progress: StreamProgress | None,
        workers: FrameWorkers | None,
    ) -> None:
        self.writer = writer
        self.model = model
        self.params = params
        self.progress = progress
        self.workers = workers
        self.depth = workers.depth if workers is not None else 0
        self.pending: deque[tuple[bytes, Future[CodedFrame]]] = deque()

    def text(self, chunk: bytes) -> None:
        if self.workers is not None:
            self._add(chunk, self.workers.encode(chunk, self.params))
            return
        summary = self.writer.summary

        def progress_for(n_symbols: int) -> Progress | None:
            return frame_progress(self.progress, summary, len(chunk), n_symbols)

        self._add(chunk, done_future(encode_text(chunk, self.model, self.params, progress_for)))

    def binary(self, chunk: bytes, piece: bytes) -> None:
        self._add(chunk, done_future(CodedFrame(FrameType.ZSTD_STREAM, piece, 0, FrameStats())))

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
    params: FrameParams,
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

    Binary frames continue one zstd stream, since sharing the context is what
    makes zstd good on a file's binary parts; neural frames stand alone.
    """
    if not options.zstd_fallback:
        return _write_segments(src, dst, header, model, options, params, progress, workers, None)
    direct = _seekable(dst)
    with contextlib.ExitStack() as spools:
        out: BinaryIO = dst if direct else spools.enter_context(_spool())
        zstd_only = _ZstdOnly(
            spools.enter_context(_spool()),
            max(ZSTD_ONLY_FRAME_SIZE, options.frame_size),
            header.content_size,
            header.version,
        )
        start = out.tell() if direct else 0
        summary = _write_segments(src, out, header, model, options, params, progress, workers, zstd_only)
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
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # type: ignore[return-value]  # a BinaryIO but in name


def _write_segments(
    src: BinaryIO,
    out: BinaryIO,
    header: Header,
    model: CodecModel,
    options: CompressOptions,
    params: FrameParams,
    progress: StreamProgress | None,
    workers: FrameWorkers | None,
    zstd_only: _ZstdOnly | None,
) -> Summary:
    """The segmented file into out; every byte read also goes to zstd_only, if any."""
    writer = _FrameWriter(out, header)
    summary = writer.summary
    frames = _OrderedFrames(writer, model, params, progress, workers)
    stream = stream_compressor()

    def blocks() -> Iterator[bytes]:
        while chunk := read_up_to(src, options.frame_size):
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
            frames.binary(seg.data, stream_piece(stream, seg.data))
    frames.finish()
    return writer.finish(header.content_size)
