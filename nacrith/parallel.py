"""Worker processes that code whole neural frames, one model and one set of
llama.cpp contexts each, on the CPU or pinned to one GPU.

What runs where never changes a file: the split of the input into frames and
of a frame into streams (its lanes) depends only on the input and the file's
settings, and each worker codes a frame exactly as a single process would. The
writer and the reader hand frames out and write or yield them back in file order.

Workers are processes, not threads: a llama.cpp context is not thread-safe,
and a GPU is chosen through ``CUDA_VISIBLE_DEVICES``, which the CUDA runtime
reads once, when llama.cpp first loads in the process. Each worker is its own
single-process pool, so that each can get its own device.

(Longer than most modules, on purpose: the two sides of a worker, what runs in
it and the pool that feeds it, with its restarts, cancellation and signals,
only make sense read together.)
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from nacrith.crash import death_text
from nacrith.engine import Progress
from nacrith.errors import JobCancelled, WorkerError
from nacrith.format import Header
from nacrith.framecodec import CodedFrame, decode_text, encode_text
from nacrith.frameparams import FrameParams
from nacrith.identity import ModelIdentity, check_model
from nacrith.models.llm import (
    LanguageModel,
    default_threads,
    open_model,
    resolve_model_path,
    threads_from_env,
)

__all__ = ["FramePool", "WorkerJob", "WorkerPlan", "Workers", "plan_workers"]

T = TypeVar("T")

#: Frames queued per worker beyond the one it codes: it never waits for the next.
QUEUED_PER_WORKER = 1
#: Jobs whose cancellation the workers can still see. A cancelled job's frames
#: that had not started are dropped in this process; only the one or two per
#: worker already handed to the process look here, within seconds, so the 256
#: most recent cancellations are plenty.
CANCEL_BOARD_SIZE = 256


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
#: Shared with the calling process: tickets of cancelled jobs (0: no entry).
_BOARD: Any = None


def _start(model_path: str, plan: WorkerPlan, board: Any, pids: Any, index: int) -> None:
    """Say which process this worker is (pids[index]); on a GPU, hide every
    other device from CUDA before anything loads it. The model itself is
    loaded by the first task, so that a failure to load it reaches the caller
    as that task's error, not as a broken pool."""
    global _PLAN, _BOARD
    _leave_interrupts_to_the_caller()
    pids[index] = os.getpid()
    if plan.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = plan.gpu
    _PLAN = (model_path, plan)
    _BOARD = board


def _leave_interrupts_to_the_caller() -> None:
    """Ignore SIGINT from now on. A terminal's Ctrl-C goes to the whole process
    group, workers included; the process that started them decides what an
    interrupt means and stops them (Workers.close()), so a worker that took it
    too would only print a KeyboardInterrupt traceback of its own. The signal
    was held blocked since the process was spawned (_interrupts_held), so one
    that came while this interpreter started is dropped here, not raised."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _loaded() -> LanguageModel:
    global _MODEL
    if _MODEL is None:
        if _PLAN is None:  # pragma: no cover - the initializer always runs first
            raise RuntimeError("worker was not started")
        path, plan = _PLAN
        _MODEL = open_model(path, plan.threads, gpu=plan.gpu is not None)
    return _MODEL


def _identity() -> tuple[ModelIdentity, int]:
    return ModelIdentity.of(_loaded()), os.getpid()


def _watch(ticket: int) -> Progress | None:
    """A progress callback that stops the frame once its job is cancelled
    (the engine calls it every few dozen symbols, so within about a second)."""
    if not ticket:
        return None

    def check(_symbols: int, _bits: float) -> None:
        if ticket in _BOARD[:]:
            raise JobCancelled(f"job {ticket} was cancelled")

    return check


def _encode(chunk: bytes, params: FrameParams, ticket: int = 0) -> CodedFrame:
    watch = _watch(ticket)
    return encode_text(chunk, _loaded(), params, None if watch is None else lambda _n: watch)


def _decode(params: FrameParams, symbols: int, payload: bytes, ticket: int = 0) -> bytes:
    return decode_text(params, symbols, payload, _loaded(), _watch(ticket))


# --- in the calling process -------------------------------------------------------


class FramePool(Protocol):
    """Processes that run the model and code whole frames, shared by several
    files at once (each through a ``job()``): parallel.Workers on this
    machine, server.ray_backend.RayPool on a Ray cluster. Both hand out
    frames whole, so a file never depends on which of them coded it."""

    #: ENVIRONMENT of the files the pool writes (llama.cpp build and backend).
    environment: str
    #: The model the workers run.
    model: ModelIdentity
    #: Frames of cancelled jobs that were dropped or stopped before they were done.
    frames_stopped: int

    @property
    def depth(self) -> int:
        """Frames to keep in flight so that every worker stays busy."""
        ...

    def check(self, header: Header) -> None:
        """Raise ModelMismatchError unless the pool's model is the file's."""
        ...

    def encode(self, chunk: bytes, params: FrameParams, ticket: int = 0) -> Future[CodedFrame]:
        """Code a frame's bytes as the job ``ticket``'s (0: no job)."""
        ...

    def decode(self, params: FrameParams, symbols: int, payload: bytes, ticket: int = 0) -> Future[bytes]:
        """Decode a neural frame as the job ``ticket``'s (0: no job)."""
        ...

    def cancel(self, ticket: int) -> None:
        """Stop the job's frames, waiting or running."""
        ...

    def job(self) -> WorkerJob:
        """A view of the pool for one file, whose frames cancel() stops."""
        ...

    def frames_waiting(self) -> int:
        """Frames given to the workers and not done yet, all jobs together."""
        ...

    def describe(self) -> list[dict[str, Any]]:
        """One entry per worker or replica, for /v1/info."""
        ...

    def frames_by_worker(self) -> dict[str, int]:
        """Frames each worker or replica has been given so far, for /v1/info."""
        ...

    def close(self) -> None: ...


class Workers:
    """A pool of worker processes coding neural frames (frames.FrameWorkers).

    Frames go to the worker with the fewest waiting. Use as a context manager,
    or call close(): the processes hold a model and contexts each.

    Several threads may share one pool, each coding its own file through a
    ``job()``, which can be cancelled; a worker that died is started afresh
    for the next frame given to it.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, plans: Sequence[WorkerPlan] = ()) -> None:
        self.plans = list(plans) or plan_workers()
        self._path = str(resolve_model_path(model))
        # spawn, not fork: a fresh interpreter in which llama.cpp (and CUDA) load
        # after CUDA_VISIBLE_DEVICES is set, never a copy of a parent's threads.
        self._context = multiprocessing.get_context("spawn")
        self._board = self._context.RawArray(ctypes.c_int64, CANCEL_BOARD_SIZE)
        self._board_next = 0
        #: Per worker, the process id its process wrote when it started (0: none yet).
        self._pids = self._context.RawArray(ctypes.c_int64, len(self.plans))
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()
        #: Frames stopped by cancel() before they were done, started or not.
        self.frames_stopped = 0
        # Its own lock: cancel() holds _lock while the futures' callbacks count here.
        self._stopped_lock = threading.Lock()
        self._pools = [self._new_pool(index) for index in range(len(self.plans))]
        #: Per worker, its frames not yet done, with their job's ticket.
        self._waiting: list[list[tuple[Future[Any], int]]] = [[] for _ in self._pools]
        self._given = [0] * len(self._pools)
        try:
            with _interrupts_held():
                loading = [pool.submit(_identity) for pool in self._pools]  # all load at once
            identities = [future.result() for future in loading]
        except BrokenProcessPool:
            self.close()
            raise WorkerError("a worker process died while loading the model") from None
        except BaseException:
            self.close()
            raise
        environments = {identity.environment for identity, _ in identities}
        if len(environments) > 1:
            self.close()
            raise WorkerError(f"workers run different llama.cpp builds: {', '.join(sorted(environments))}")
        self.model = identities[0][0]
        self.environment = self.model.environment
        self.pids = [pid for _, pid in identities]

    def _new_pool(self, index: int) -> ProcessPoolExecutor:
        self._pids[index] = 0  # until the new process says which it is
        return ProcessPoolExecutor(
            1,
            mp_context=self._context,
            initializer=_start,
            initargs=(self._path, self.plans[index], self._board, self._pids, index),
        )

    @property
    def depth(self) -> int:
        return len(self._pools) * (1 + QUEUED_PER_WORKER)

    def check(self, header: Header) -> None:
        check_model(header, self.model)

    def encode(self, chunk: bytes, params: FrameParams, ticket: int = 0) -> Future[CodedFrame]:
        return self._submit(ticket, _encode, chunk, params, ticket)

    def decode(self, params: FrameParams, symbols: int, payload: bytes, ticket: int = 0) -> Future[bytes]:
        return self._submit(ticket, _decode, params, symbols, payload, ticket)

    def job(self) -> WorkerJob:
        """A view of the pool for one file, whose frames cancel() stops."""
        with self._lock:
            return WorkerJob(self, next(self._tickets))

    def frames_waiting(self) -> int:
        """Frames given to the workers and not done yet, all jobs together."""
        with self._lock:
            return sum(1 for waiting in self._waiting for f, _ in waiting if not f.done())

    def frames_by_worker(self) -> dict[str, int]:
        """Frames given to each worker so far, by worker number."""
        with self._lock:
            return {str(i + 1): n for i, n in enumerate(self._given) if n}

    def describe(self) -> list[dict[str, Any]]:
        """Each worker as plain data: its GPU (None: the CPU) and its threads."""
        return [{"gpu": plan.gpu, "threads": plan.threads} for plan in self.plans]

    def cancel(self, ticket: int) -> None:
        """Drop the job's frames that have not started; the workers stop its
        running ones at their next progress check."""
        with self._lock:
            self._board[self._board_next] = ticket
            self._board_next = (self._board_next + 1) % CANCEL_BOARD_SIZE
            for waiting in self._waiting:
                for future, owner in waiting:
                    if owner == ticket:
                        future.cancel()

    def _submit(self, ticket: int, fn: Callable[..., T], *args: object) -> Future[T]:
        with self._lock:
            if not self._pools:
                raise WorkerError("the workers have been stopped")
            for waiting in self._waiting:
                waiting[:] = [(f, t) for f, t in waiting if not f.done()]
            index = min(range(len(self._pools)), key=lambda i: len(self._waiting[i]))
            try:
                with _interrupts_held():
                    inner = self._pools[index].submit(fn, *args)
            except BrokenProcessPool:
                # The worker died (killed, out of memory) since its last frame,
                # whose caller was told. Start it afresh rather than lose it for good.
                self._pools[index].shutdown(wait=False, cancel_futures=True)
                self._pools[index] = self._new_pool(index)
                with _interrupts_held():
                    inner = self._pools[index].submit(fn, *args)
            self._waiting[index].append((inner, ticket))
            self._given[index] += 1
            pid = self._pids[index]
        if ticket:
            inner.add_done_callback(self._count_stopped)
        return _named_failures(inner, index, lambda: pid or self._pids[index])

    def _count_stopped(self, future: Future[Any]) -> None:
        if future.cancelled() or isinstance(future.exception(), JobCancelled):
            with self._stopped_lock:
                self.frames_stopped += 1

    def close(self) -> None:
        """Stop the workers at once, even mid-frame (after an error or Ctrl-C the
        frames in flight are of no use, and waiting for them could take minutes)."""
        with self._lock:
            pools, self._pools = self._pools, []
        pids = [self._pids[index] for index in range(len(pools))]
        for pool, pid in zip(pools, pids, strict=True):
            pool.shutdown(wait=False, cancel_futures=True)
            if pid and _still_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for pid in pids:
            if pid:
                _wait_gone(pid, timeout=10)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkerJob:
    """The pool as one file's coder sees it (frames.FrameWorkers), with the
    file's frames tagged so that cancel() can stop them and no others."""

    def __init__(self, pool: FramePool, ticket: int) -> None:
        self.pool = pool
        self.ticket = ticket
        self.environment = pool.environment
        self.cancelled = False

    @property
    def depth(self) -> int:
        return self.pool.depth

    def check(self, header: Header) -> None:
        self.pool.check(header)

    @property
    def model(self) -> ModelIdentity:
        return self.pool.model

    def encode(self, chunk: bytes, params: FrameParams) -> Future[CodedFrame]:
        self._refuse_if_cancelled()
        return self.pool.encode(chunk, params, self.ticket)

    def decode(self, params: FrameParams, symbols: int, payload: bytes) -> Future[bytes]:
        self._refuse_if_cancelled()
        return self.pool.decode(params, symbols, payload, self.ticket)

    def cancel(self) -> None:
        self.cancelled = True
        self.pool.cancel(self.ticket)

    def _refuse_if_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled(f"job {self.ticket} was cancelled")


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT blocked in this thread while a worker process may be spawned
    (ProcessPoolExecutor starts one on a submit): the new process inherits the
    mask, so a Ctrl-C that comes while its interpreter starts stays pending
    until _start ignores it, rather than raising KeyboardInterrupt in an import.
    This process is not deaf meanwhile: the kernel gives the signal to a thread
    that does not block it, or delivers it here once the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _named_failures(inner: Future[T], index: int, pid: Callable[[], int]) -> Future[T]:
    """inner's result, with a dead worker (process ``pid()``) reported as
    WorkerError naming the signal that killed it, rather than concurrent.futures'
    BrokenProcessPool."""
    outer: Future[T] = Future()

    def done(f: Future[T]) -> None:
        if f.cancelled():  # by Workers.cancel() or close()
            outer.set_exception(JobCancelled("the frame's job was cancelled"))
            return
        exc = f.exception()
        if isinstance(exc, BrokenProcessPool):
            how = death_text(_dead_exitcode(pid()))
            outer.set_exception(WorkerError(f"worker {index + 1} {how} while coding a frame"))
        elif exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(f.result())

    inner.add_done_callback(done)
    return outer


def _dead_exitcode(pid: int) -> int | None:
    """The exit code of a worker process that ended (-N: killed by signal N),
    as multiprocessing reports it; None if it cannot be told.

    The process is the pool's child and not yet reaped: the pool's manager
    thread, which runs this callback, reaps it only afterwards. WNOWAIT
    leaves it to be reaped there."""
    if not pid:
        return None
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except (ChildProcessError, OSError):
        return None
    if info is None:
        return None
    if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return -info.si_status
    return info.si_status


def _still_ours(pid: int) -> bool:
    """Whether pid is still our child, running or not yet reaped (so not a
    reused number that now names another process)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except (ChildProcessError, OSError):
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until process pid has ended (reaped or a zombie), at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except (ChildProcessError, OSError):
            return  # reaped already, or not ours
        if info is not None:
            return
        time.sleep(0.01)
