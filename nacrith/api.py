"""The Python API: bytes, streams and files in, Nacrith files out, and back."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Unpack

from nacrith.dictionary import Dictionary, find_dictionary
from nacrith.files import atomic_output
from nacrith.format import Header
from nacrith.framecodec import FrameWorkers
from nacrith.identity import ModelIdentity, check_model
from nacrith.models.llm import LanguageModel, open_model
from nacrith.options import CompressOptions, OptionChanges, resolve_options
from nacrith.parallel import Workers, plan_workers
from nacrith.reader import FileInfo, decompress_stream, iter_decoded_frames, read_info
from nacrith.reports import StreamProgress, Summary
from nacrith.writer import compress_stream

__all__ = ["Codec", "compress", "compress_file", "decompress", "decompress_file", "info"]

PathLike = str | os.PathLike[str]


class Codec:
    """Compresses and decompresses with one language model, loaded on first use.

    Reuse one Codec for many calls: loading the model costs about a second.
    Not thread-safe: use one Codec per thread.

    With ``workers`` > 1 or ``gpus``, neural frames are coded in that many
    worker processes (parallel.py; with GPUs, one per GPU by default), each
    with ``threads`` llama.cpp threads (default: the cores divided among
    them). The files are the same as with one process. Call close() (or use
    the Codec as a context manager) to stop the workers.
    """

    def __init__(
        self,
        model: PathLike | None = None,
        threads: int | None = None,
        *,
        workers: int | None = None,
        gpus: Sequence[str] = (),
        dict: Dictionary | PathLike | None = None,  # zstd's name for it
    ) -> None:
        self.model_arg = model
        self.threads = threads
        #: Compress with this dictionary (dictionary.py), and decompress files made
        #: with it; files made with another are found by fingerprint (find_dictionary).
        self.dictionary = dict if dict is None or isinstance(dict, Dictionary) else Dictionary.read(dict)
        self._model: LanguageModel | None = None
        self.plans = plan_workers(workers, gpus, threads) if (workers or 1) > 1 or gpus else []
        self._workers: Workers | None = None
        #: Workers lent by the caller (from_model), which the Codec uses but does not stop.
        self._lent_workers: FrameWorkers | None = None
        #: How a file's dictionary is found by its fingerprint (from_model).
        self._find_dictionary: Callable[[bytes], Dictionary] | None = None

    @property
    def workers(self) -> FrameWorkers | None:
        """The worker processes, started on first use; None when frames are coded here."""
        if self._lent_workers is not None:
            return self._lent_workers
        if self._workers is None and self.plans:
            self._workers = Workers(self.model_arg, self.plans)
        return self._workers

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def __enter__(self) -> Codec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def from_model(
        cls,
        model: LanguageModel,
        dict: Dictionary | PathLike | None = None,
        *,
        workers: FrameWorkers | None = None,
        dictionaries: Callable[[bytes], Dictionary] | None = None,
    ) -> Codec:
        """A Codec over an already loaded model. With ``workers`` (a service's
        pool, as one request sees it: parallel.WorkerJob), neural frames are
        coded there and the model only tokenizes; the Codec does not stop them.
        ``dictionaries`` finds a file's dictionary by its fingerprint, in place
        of the search of dictionary.find_dictionary (a service knows its own)."""
        codec = cls(model.path, model.threads, dict=dict)
        codec._model = model
        codec._lent_workers = workers
        codec._find_dictionary = dictionaries
        return codec

    @property
    def model(self) -> LanguageModel:
        """The language model, loaded on first use (files without neural frames never need it)."""
        if self._model is None:
            # With workers this one only tokenizes: one thread, no context is ever made.
            threads = 1 if self.plans else self.threads
            self._model = open_model(self.model_arg, threads)
        return self._model

    def _model_for(self, header: Header) -> LanguageModel:
        check_model(header, ModelIdentity.of(self.model))
        return self.model

    def compress_stream(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        options: CompressOptions | None = None,
        *,
        content_size: int | None = None,
        progress: StreamProgress | None = None,
        **changes: Unpack[OptionChanges],
    ) -> Summary:
        """Compress src into dst frame by frame, with ``options`` (default:
        CompressOptions()) and any of its fields changed by keyword."""
        if (
            self.dictionary is not None
            and "dictionary" not in changes
            and (options is None or not options.dictionary)
        ):
            changes = {**changes, "dictionary": self.dictionary}
        return compress_stream(
            src,
            dst,
            self.model,
            resolve_options(options, changes),
            content_size,
            progress,
            self.workers,
        )

    def decompress_stream(
        self, src: BinaryIO, dst: BinaryIO, *, progress: StreamProgress | None = None
    ) -> int:
        """Decompress src into dst; returns the number of bytes written."""
        return decompress_stream(src, dst, self._model_for, progress, self.workers, self._dictionary_for)

    def decompressed_frames(
        self, src: BinaryIO, *, progress: StreamProgress | None = None
    ) -> Iterator[bytes]:
        """Each frame's bytes in turn, as it passes its checksum (reader.iter_decoded_frames)."""
        return iter_decoded_frames(src, self._model_for, progress, self.workers, self._dictionary_for)

    def _dictionary_for(self, fingerprint: bytes) -> Dictionary:
        if self._find_dictionary is not None:
            return self._find_dictionary(fingerprint)
        return find_dictionary(fingerprint, [self.dictionary] if self.dictionary is not None else [])

    def compress(
        self, data: bytes, options: CompressOptions | None = None, **changes: Unpack[OptionChanges]
    ) -> bytes:
        out = io.BytesIO()
        self.compress_stream(io.BytesIO(data), out, options, content_size=len(data), **changes)
        return out.getvalue()

    def decompress(self, blob: bytes) -> bytes:
        out = io.BytesIO()
        self.decompress_stream(io.BytesIO(blob), out)
        return out.getvalue()

    def compress_file(
        self,
        src: PathLike,
        dst: PathLike,
        options: CompressOptions | None = None,
        *,
        overwrite: bool = False,
        **changes: Unpack[OptionChanges],
    ) -> Summary:
        """Compress file src into dst, written atomically; src is kept."""
        with open(src, "rb") as fin, atomic_output(dst, overwrite=overwrite, like=src) as fout:
            size = os.fstat(fin.fileno()).st_size
            return self.compress_stream(fin, fout, options, content_size=size, **changes)

    def decompress_file(self, src: PathLike, dst: PathLike, *, overwrite: bool = False) -> int:
        """Decompress file src into dst, written atomically; nothing is left behind on error."""
        with open(src, "rb") as fin, atomic_output(dst, overwrite=overwrite, like=src) as fout:
            return self.decompress_stream(fin, fout)


_codecs: dict[tuple[str | None, int | None], Codec] = {}
_codecs_lock = threading.Lock()


def _codec(model: PathLike | None, threads: int | None) -> Codec:
    """One cached Codec per (model, threads), so repeated calls load the model once."""
    key = (None if model is None else os.fspath(model), threads)
    with _codecs_lock:
        if key not in _codecs:
            _codecs[key] = Codec(model, threads)
        return _codecs[key]


def compress(
    data: bytes,
    options: CompressOptions | None = None,
    *,
    model: PathLike | None = None,
    threads: int | None = None,
    **changes: Unpack[OptionChanges],
) -> bytes:
    """Compress bytes with ``options`` (default: CompressOptions()), any of its
    fields changed by keyword (context, slide, temperature, frame_size, ensemble, ...)."""
    return _codec(model, threads).compress(bytes(data), options, **changes)


def decompress(blob: bytes, *, model: PathLike | None = None, threads: int | None = None) -> bytes:
    """Decompress bytes made by ``compress``; raises a NacrithError subclass on bad input."""
    return _codec(model, threads).decompress(bytes(blob))


def compress_file(
    src: PathLike,
    dst: PathLike,
    options: CompressOptions | None = None,
    *,
    model: PathLike | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    **changes: Unpack[OptionChanges],
) -> Summary:
    return _codec(model, threads).compress_file(src, dst, options, overwrite=overwrite, **changes)


def decompress_file(
    src: PathLike,
    dst: PathLike,
    *,
    model: PathLike | None = None,
    threads: int | None = None,
    overwrite: bool = False,
) -> int:
    return _codec(model, threads).decompress_file(src, dst, overwrite=overwrite)


def info(path: PathLike) -> FileInfo:
    """Header and frame index of a Nacrith file, read without loading any model."""
    with Path(path).open("rb") as f:
        return read_info(f)
