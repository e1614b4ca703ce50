"""The streaming reader of the file format, and ``info``'s listing.

The reader decodes one frame at a time (or, several at a time, in workers)
and hands out a frame's bytes only after its checksum matched, in file order.
Memory stays bounded by the frame size, whatever the size of the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from nacrith.dictionary import Dictionary
from nacrith.engine import Progress
from nacrith.errors import ChecksumError, CoderError, DictionaryError, FormatError, TruncatedError
from nacrith.format import (
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    SingleFrame,
    Trailer,
    environment_backend,
    read_exact,
)
from nacrith.framecodec import (
    CodecModel,
    FrameWorkers,
    decode_text,
    decoding_params,
    done_future,
    failed_future,
)
from nacrith.frameparams import FrameParams
from nacrith.identity import ModelIdentity
from nacrith.readahead import ReadAhead
from nacrith.reports import ProgressInfo, StreamProgress, Summary, frame_progress
from nacrith.zstdio import StreamReader, unzstd

__all__ = ["FileInfo", "check_body", "decompress_stream", "iter_decoded_frames", "read_info"]


def _decode_payload(
    header: Header,
    fh: FrameHeader,
    payload: bytes,
    neural: Callable[[int, bytes, Progress | None], Future[bytes]],
    progress: Progress | None,
    stream: StreamReader,
) -> Future[bytes]:
    """The frame's bytes, or the error decoding them, as a future: neural
    frames may still be decoding in a worker."""
    try:
        if fh.type == FrameType.STORED:
            return done_future(payload)
        if fh.type == FrameType.ZSTD:
            return done_future(unzstd(payload, fh.raw_size))
        if fh.type == FrameType.ZSTD_STREAM:
            if not header.zstd_stream:
                raise FormatError("corrupt file: a zstd stream frame in a file without the stream flag")
            return done_future(stream.piece(payload, fh.raw_size))
        if header.model_id is None:
            raise FormatError("corrupt file: a neural frame in a file without a model")
        return neural(fh.symbols, payload, progress)
    except (FormatError, CoderError) as exc:
        return failed_future(exc)


def iter_decoded_frames(
    src: BinaryIO,
    load_model: Callable[[Header], CodecModel],
    progress: StreamProgress | None = None,
    workers: FrameWorkers | None = None,
    load_dictionary: Callable[[bytes], Dictionary] | None = None,
) -> Iterator[bytes]:
    """Yield each frame's bytes after its checksum matched; check the trailer at the end.

    ``load_model`` is called (and should check the model) only when a neural
    frame needs it, so files of stored and zstd frames decode without a model.
    With ``workers``, neural frames are decoded there instead, several at a
    time, and still handed out in file order. A file made with a dictionary
    needs ``load_dictionary``, which finds it by its fingerprint.
    """
    header, header_bytes = Header.read_bytes(src)
    if header.single != FrameType.END:  # a compact file of one frame: no frame header, no index
        one = SingleFrame.read(src, header, header_bytes)
        fh = one.header
        decoding = _Decoding(header, load_model, _with_total(progress, fh.raw_size), workers, load_dictionary)
        yield decoding.finished(fh, decoding.frame(fh, one.payload), one)
        return
    # Damage found first: every frame header against the index and footer at
    # the end, before any frame is decoded (on a pipe, as soon as it has ended).
    ahead: ReadAhead | None = None
    if _seekable(src):
        total: int | None = check_body(src, header).content_size
    else:
        ahead = ReadAhead(src, lambda spool: _check_rest(spool, header))
        src = cast(BinaryIO, ahead)  # it reads as the pipe would
        total = header.content_size
    progress = _with_total(progress, total)
    if ahead is not None and progress is not None:
        progress = _failing_early(progress, ahead)
    decoding = _Decoding(header, load_model, progress, workers, load_dictionary)
    depth = workers.depth if workers is not None else 0
    pending: deque[tuple[FrameHeader, Future[bytes]]] = deque()
    while True:
        if ahead is not None:
            ahead.raise_failure()
        ftype = FrameHeader.read_type(src)
        if ftype == FrameType.END:
            break
        fh = FrameHeader.read_after_type(src, ftype, header.frame_size)
        pending.append((fh, decoding.frame(fh, read_exact(src, fh.payload_size, "frame payload"))))
        while pending and (len(pending) > depth or pending[0][1].done()):
            yield decoding.finished(*pending.popleft())
    while pending:
        yield decoding.finished(*pending.popleft())
    decoding.check_end(Trailer.read_after_type(src))
    if src.read(1):
        raise FormatError("unexpected data after the end of the file")


class _Decoding:
    """One file's frames as they are decoded: the frames' params (made from the
    header when the first neural frame needs them), the model or workers that
    decode them, and what the frames handed out so far add up to."""

    def __init__(
        self,
        header: Header,
        load_model: Callable[[Header], CodecModel],
        progress: StreamProgress | None,
        workers: FrameWorkers | None,
        load_dictionary: Callable[[bytes], Dictionary] | None,
    ) -> None:
        self.header = header
        self.load_model = load_model
        self.progress = progress
        self.workers = workers
        self.load_dictionary = load_dictionary
        self.digest = hashlib.sha256()
        self.entries: list[IndexEntry] = []
        self.stream = StreamReader()
        #: coded_bytes stays 0: decoding reports no bits; model_symbols counts decoded ones.
        self.done = Summary()
        #: The decoding side's ENVIRONMENT, once a neural frame has been met.
        self.environment: str | None = None
        self.params: FrameParams | None = None

    def frame(self, fh: FrameHeader, payload: bytes) -> Future[bytes]:
        """The frame's bytes, or the error decoding them, as a future."""
        on_frame = (
            frame_progress(self.progress, self.done, fh.raw_size, fh.symbols)
            if self.workers is None
            else None
        )
        return _decode_payload(self.header, fh, payload, self._neural, on_frame, self.stream)

    def _frame_params(self, model: ModelIdentity) -> FrameParams:
        if self.params is None:
            header, dictionary = self.header, None
            if header.dict_id is not None:
                if self.load_dictionary is None:
                    raise DictionaryError(
                        f"file needs dictionary {header.dict_id.hex()}: give it with --dict FILE"
                    )
                dictionary = self.load_dictionary(header.dict_id)
            self.params = decoding_params(header, model, dictionary)
        return self.params

    def _neural(self, symbols: int, payload: bytes, frame_progress: Progress | None) -> Future[bytes]:
        if self.workers is not None:
            if self.environment is None:
                self.workers.check(self.header)
                self.environment = self.workers.environment
            return self.workers.decode(self._frame_params(self.workers.model), symbols, payload)
        model = self.load_model(self.header)
        self.environment = model.environment
        params = self._frame_params(ModelIdentity.of(model))
        return done_future(decode_text(params, symbols, payload, model, frame_progress))

    def finished(self, fh: FrameHeader, future: Future[bytes], single: SingleFrame | None = None) -> bytes:
        """The frame's bytes, once its checksum matched; a named error otherwise."""
        header, number = self.header, len(self.entries) + 1
        backend = _backend_hint(header, self.environment)
        # A file of one frame has no checksum of its own to tell damage from a wrong
        # model; a version-2 one not even its payload's size to tell a cut: say so.
        damaged = ""
        if single is not None:
            damaged = f" (the file is {'truncated or ' if _cut_unseen(header) else ''}damaged)"
        try:
            data = future.result()
        except CoderError as exc:
            raise ChecksumError(f"frame {number}: {exc}{backend or damaged}") from None
        except FormatError as exc:
            if str(exc).startswith("corrupt"):  # the payload's own structure, not the file's
                raise FormatError(f"frame {number}: {exc}{damaged}") from None
            raise
        matches = single.matches(data) if single is not None else zlib.crc32(data) == fh.raw_crc32
        if len(data) != fh.raw_size or not matches:
            hint = damaged
            if fh.type == FrameType.NEURAL:
                other = "the model or llama.cpp build differs from the encoder's"
                hint = backend or (f"{damaged[:-1]}, or {other})" if single is not None else f" ({other}?)")
            raise ChecksumError(f"frame {number}: decoded bytes do not match the checksum{hint}")
        self.digest.update(data)
        self.done.raw_bytes += len(data)
        self.done.model_symbols += fh.symbols
        self.entries.append(IndexEntry(fh.type, fh.raw_size, fh.payload_size))
        if self.progress is not None:
            self.progress(ProgressInfo(self.done.raw_bytes, self.done.model_symbols, 0.0))
        return data

    def check_end(self, trailer: Trailer) -> None:
        """The index and the content checks, once every frame was handed out."""
        total, header = self.done.raw_bytes, self.header
        if trailer.entries != tuple(self.entries) or trailer.content_size != total:
            raise FormatError("corrupt index: it does not describe the frames in the file")
        if header.content_size is not None and header.content_size != total:
            raise FormatError(f"corrupt file: header says {header.content_size} bytes, frames hold {total}")
        if trailer.content_sha256_8 != self.digest.digest()[:8]:
            raise ChecksumError("content checksum mismatch")


def check_body(src: BinaryIO, header: Header) -> Trailer:
    """Check a seekable file's body of frames from where its header ended,
    without decoding: every frame header in turn (payloads skipped), then the
    index and footer, which must describe those frames and end the file.
    TruncatedError names where a cut file ends, FormatError what disagrees;
    the stream is left where it was."""
    start = src.tell()
    end = src.seek(0, 2)
    src.seek(start)
    entries: list[IndexEntry] = []
    while (ftype := FrameHeader.read_type(src)) != FrameType.END:
        fh = FrameHeader.read_after_type(src, ftype, header.frame_size)
        if src.tell() + fh.payload_size > end:
            raise TruncatedError(f"file is truncated: it ends inside frame {len(entries) + 1}")
        src.seek(fh.payload_size, 1)
        entries.append(IndexEntry(fh.type, fh.raw_size, fh.payload_size))
    trailer = Trailer.read_after_type(src)
    if src.read(1):
        raise FormatError("unexpected data after the end of the file")
    total = sum(e.raw_size for e in entries)
    if trailer.entries != tuple(entries) or trailer.content_size != total:
        raise FormatError("corrupt index: it does not describe the frames in the file")
    if header.content_size is not None and header.content_size != total:
        raise FormatError(f"corrupt file: header says {header.content_size} bytes, frames hold {total}")
    src.seek(start)
    return trailer


def _check_rest(spool: IO[bytes], header: Header) -> None:
    """check_body over what followed the header (a pipe's, spooled by ReadAhead)."""
    rest = cast(BinaryIO, spool)  # a file opened for bytes, as BinaryIO means
    rest.seek(0)
    check_body(rest, header)


def _cut_unseen(header: Header) -> bool:
    """A version-2 file of one neural frame: its payload runs to the last 4
    bytes, so a cut is not told from damage until it is decoded."""
    return header.version == 2 and header.single == FrameType.NEURAL


def _seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable()
    except (AttributeError, ValueError):
        return False


def _with_total(progress: StreamProgress | None, total: int | None) -> StreamProgress | None:
    """The progress callback, told the size the file decodes to, when known."""
    if progress is None or total is None:
        return progress
    report = progress

    def with_total(info: ProgressInfo) -> None:
        report(dataclasses.replace(info, total_bytes=total))

    return with_total


def _failing_early(progress: StreamProgress, ahead: ReadAhead) -> StreamProgress:
    """The progress callback, raising inside a frame as soon as the read-ahead
    found the file damaged, rather than once the frame is done."""

    def checked(info: ProgressInfo) -> None:
        ahead.raise_failure()
        progress(info)

    return checked


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
    load_dictionary: Callable[[bytes], Dictionary] | None = None,
) -> int:
    """Decode src into dst; returns the number of bytes written."""
    total = 0
    for data in iter_decoded_frames(src, load_model, progress, workers, load_dictionary):
        dst.write(data)
        total += len(data)
    return total


@dataclass(frozen=True)
class FileInfo:
    header: Header
    trailer: Trailer
    file_size: int
    #: What reading the file without a model could check, in words.
    checked: str = ""


def read_info(src: BinaryIO) -> FileInfo:
    """Header and index of a seekable file, without decoding any neural frame,
    checked as far as that allows: a file of frames, its index and footer and
    every frame header against them; a file of one frame (which has no index:
    the frame stands for it, with no content digest), its sizes, and the
    whole file's checksum when the frame is stored or zstd. FormatError,
    TruncatedError or ChecksumError when a check fails."""
    header, header_bytes = Header.read_bytes(src)
    if header.single == FrameType.END:
        trailer = check_body(src, header)
        checked = "frames, index and footer agree; each frame's checksum is checked when it is decoded"
        return FileInfo(header, trailer, src.seek(0, 2), checked)
    one = SingleFrame.read(src, header, header_bytes)
    fh = one.header
    entry = IndexEntry(fh.type, fh.raw_size, fh.payload_size)
    if fh.type == FrameType.NEURAL:
        checked = "sizes; the checksum covers the decoded text, which only decoding checks (nacrith test)"
        if _cut_unseen(header):
            checked = (
                "sizes; a version-2 file of one neural frame does not say where its payload ends, "
                "so only decoding finds a cut (nacrith test)"
            )
    else:
        content = (
            one.payload
            if fh.type == FrameType.STORED
            else unzstd(one.payload, fh.raw_size)
            if fh.type == FrameType.ZSTD
            else StreamReader().piece(one.payload, fh.raw_size)
        )
        if len(content) != fh.raw_size or not one.matches(content):
            raise ChecksumError("the file's checksum does not match: it is truncated or damaged")
        checked = "the whole file, checksum included"
    return FileInfo(header, Trailer(fh.raw_size, b"", (entry,)), src.seek(0, 2), checked)
