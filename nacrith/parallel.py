"""Worker processes that code whole neural frames, one model and one set of
llama.cpp contexts each, on the CPU or pinned to one GPU.

What runs where never changes a file: the split of the input into frames and
of a frame into streams (its lanes) depends only on the input and the file's
settings, and each worker codes a frame exactly as a single process would. The
container hands frames out and writes or yields them back in file order.

Workers are processes, not threads: a llama.cpp context is not thread-safe,
and a GPU is chosen through ``CUDA_VISIBLE_DEVICES``, which the CUDA runtime
reads once, when llama.cpp first loads in the process. Each worker is its own
single-process pool, so that each can get its own device.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from nacrith.container import CodedFrame, CompressOptions, check_model, decode_neural, encode_chunk
from nacrith.errors import WorkerError
from nacrith.format import Header
from nacrith.models.llm import LanguageModel, default_threads, resolve_model_path, threads_from_env

__all__ = ["WorkerPlan", "Workers", "plan_workers"]

#: Frames queued per worker beyond the one it codes: it never waits for the next.
QUEUED_PER_WORKER = 1


@dataclass(frozen=True)
class WorkerPlan:
    """Where one worker runs: its llama.cpp threads and its GPU (None: the CPU)."""

    threads: int
    gpu: str | None = None


def plan_workers(
    workers: int | None = None, gpus: Sequence[str] = (), threads: int | None = None
) -> list[WorkerPlan]:
    """One plan per worker: with GPUs, workers are dealt over them in turn (one
    each by default); threads default to $NACRITH_THREADS, else the cores
    divided among the workers, since llama.cpp threads on busy cores run many
    times slower."""
    count = workers if workers is not None else max(1, len(gpus))
    if count < 1:
        raise ValueError(f"workers must be at least 1, not {count}")
    per_worker = threads or threads_from_env() or max(1, default_threads() // count)
    if per_worker < 1:
        raise ValueError(f"threads must be at least 1, not {per_worker}")
    return [WorkerPlan(per_worker, gpus[i % len(gpus)] if gpus else None) for i in range(count)]


# --- inside a worker process ---------------------------------------------------

_MODEL: LanguageModel | None = None
_PLAN: tuple[str, WorkerPlan] | None = None


def _start(model_path: str, plan: WorkerPlan) -> None:
    """On a GPU, hide every other device from CUDA before anything loads it.
    The model itself is loaded by the first task, so that a failure to load
    it reaches the caller as that task's error, not as a broken pool."""
    global _PLAN
    if plan.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = plan.gpu
    _PLAN = (model_path, plan)


def _loaded() -> LanguageModel:
    global _MODEL
    if _MODEL is None:
        if _PLAN is None:  # pragma: no cover - the initializer always runs first
            raise RuntimeError("worker was not started")
        path, plan = _PLAN
        _MODEL = LanguageModel(path, plan.threads, gpu=plan.gpu is not None)
    return _MODEL


def _identity() -> tuple[bytes, str, int, int, str, int]:
    model = _loaded()
    return model.sha256, model.name, model.symbols.n_vocab, model.max_context, model.environment, os.getpid()


def _encode(chunk: bytes, options: CompressOptions) -> CodedFrame:
    return encode_chunk(chunk, _loaded(), options)


def _decode(header: Header, symbols: int, payload: bytes) -> bytes:
    return decode_neural(header, symbols, payload, _loaded(), None)


# --- in the calling process -------------------------------------------------------


@dataclass(frozen=True)
class _Identity:
    """The workers' model as check_model sees it."""

    sha256: bytes
    name: str
    n_vocab: int
    max_context: int
    environment: str

    @property
    def symbols(self) -> _Identity:  # check_model reads model.symbols.n_vocab
        return self


class Workers:
    """A pool of worker processes coding neural frames (container.FrameWorkers).

    Frames go to the worker with the fewest waiting. Use as a context manager,
    or call close(): the processes hold a model and contexts each.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, plans: Sequence[WorkerPlan] = ()) -> None:
        self.plans = list(plans) or plan_workers()
        path = str(resolve_model_path(model))
        # spawn, not fork: a fresh interpreter in which llama.cpp (and CUDA) load
        # after CUDA_VISIBLE_DEVICES is set, never a copy of a parent's threads.
        context = multiprocessing.get_context("spawn")
        self._pools = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=(path, plan))
            for plan in self.plans
        ]
        self._waiting: list[list[Future[object]]] = [[] for _ in self._pools]
        try:
            loading = [pool.submit(_identity) for pool in self._pools]  # all load at once
            identities = [future.result() for future in loading]
        except BrokenProcessPool:
            self.close()
            raise WorkerError("a worker process died while loading the model") from None
        except BaseException:
            self.close()
            raise
        environments = {env for *_, env, _ in identities}
        if len(environments) > 1:
            self.close()
            raise WorkerError(f"workers run different llama.cpp builds: {', '.join(sorted(environments))}")
        sha256, name, n_vocab, max_context, environment, _ = identities[0]
        self.model = _Identity(sha256, name, n_vocab, max_context, environment)
        self.environment = environment
        self.pids = [pid for *_, pid in identities]

    @property
    def depth(self) -> int:
        return len(self._pools) * (1 + QUEUED_PER_WORKER)

    def check(self, header: Header) -> None:
        check_model(header, self.model)  # type: ignore[arg-type]

    def encode(self, chunk: bytes, options: CompressOptions) -> Future[CodedFrame]:
        return self._submit(_encode, chunk, options)  # type: ignore[return-value]

    def decode(self, header: Header, symbols: int, payload: bytes) -> Future[bytes]:
        return self._submit(_decode, header, symbols, payload)  # type: ignore[return-value]

    def _submit(self, fn: object, *args: object) -> Future[object]:
        for waiting in self._waiting:
            waiting[:] = [f for f in waiting if not f.done()]
        index = min(range(len(self._pools)), key=lambda i: len(self._waiting[i]))
        try:
            inner = self._pools[index].submit(fn, *args)  # type: ignore[arg-type]
        except BrokenProcessPool:
            raise WorkerError(f"worker {index + 1} has died") from None
        self._waiting[index].append(inner)
        return _named_failures(inner, index)

    def close(self) -> None:
        """Stop the workers at once, even mid-frame (after an error or Ctrl-C the
        frames in flight are of no use, and waiting for them could take minutes)."""
        for pool in self._pools:
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=10)
        self._pools = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named_failures(inner: Future[object], index: int) -> Future[object]:
    """inner's result, with a dead worker reported as WorkerError rather than
    concurrent.futures' BrokenProcessPool."""
    outer: Future[object] = Future()

    def done(f: Future[object]) -> None:
        if f.cancelled():
            outer.cancel()
            return
        exc = f.exception()
        if isinstance(exc, BrokenProcessPool):
            outer.set_exception(WorkerError(f"worker {index + 1} died while coding a frame"))
        elif exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(f.result())

    inner.add_done_callback(done)
    return outer
