"""When the process running the model dies from a signal.

llama.cpp is native code. An instruction the CPU lacks (SIGILL), a bad memory
access (SIGSEGV, SIGBUS) or a failed check (SIGABRT) ends the process below
Python, with no exception to catch. Whoever ran the model must still say
what happened rather than die silently or wait forever:

- the CLI runs the model in its own process: ``install_guard`` makes such a
  death one line on stderr and exit status 1, and removes the temporary
  output files registered through ``remove_on_crash``;
- callers of worker processes name the signal with ``death_text``;
- benchmarks run each measurement with ``run_in_child``, which reports a
  dead child as WorkerError instead of waiting for an answer that never comes.

``testhooks.inject_fault`` is the test hook that kills the process on purpose.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from nacrith.errors import WorkerError

__all__ = [
    "death_text",
    "install_guard",
    "remove_on_crash",
    "run_in_child",
    "signal_text",
]

T = TypeVar("T")

#: What each fatal signal means, and what a user can do about it.
_FATAL: dict[signal.Signals, tuple[str, str]] = {
    signal.SIGILL: (
        "illegal instruction",
        "this llama-cpp-python build uses an instruction this CPU cannot run; reinstall it "
        "with the pinned build profile (README, Quick start) and run the command again",
    ),
    signal.SIGSEGV: (
        "invalid memory access",
        "a llama.cpp bug or a damaged model file; check the model with sha256sum and report "
        "the input with 'nacrith --version'",
    ),
    signal.SIGBUS: (
        "bus error",
        "the model file, which is memory-mapped, may have been changed or truncated while in use; "
        "check it with sha256sum and run the command again",
    ),
    signal.SIGFPE: (
        "arithmetic fault",
        "a llama.cpp bug; report the input with 'nacrith --version'",
    ),
    signal.SIGABRT: (
        "abort",
        "llama.cpp stopped on a failed check, often for lack of memory; retry with a smaller "
        "--context or fewer --lanes, and report it with 'nacrith --version' if it persists",
    ),
}


def signal_text(signum: int) -> str:
    """ "SIGILL (illegal instruction)" for a fatal signal, else the signal's name."""
    try:
        sig = signal.Signals(signum)
    except ValueError:
        return f"signal {signum}"
    meaning = _FATAL.get(sig)
    return f"{sig.name} ({meaning[0]})" if meaning else sig.name


def death_text(exitcode: int | None) -> str:
    """How a child process ended, from multiprocessing's exitcode (-N: signal N)."""
    if exitcode is None:
        return "died"
    if exitcode < 0:
        return f"died from {signal_text(-exitcode)}"
    return f"exited with status {exitcode}"


# --- the CLI's guard ------------------------------------------------------------

_guarded = False
_lock = threading.Lock()


def install_guard(prog: str = "nacrith") -> None:
    """From now on, a fatal signal in this process prints one line naming it
    and what to do, removes the files given to ``remove_on_crash`` and exits
    with status 1. For programs only: a library must not take its host's signals.

    Why a handler rather than running the model in a child process: the model
    loads once, the data never crosses a pipe, and small files, the common
    case, pay no second interpreter start. The handler does only what is safe
    in a signal handler (csrc/crash.h)."""
    global _guarded
    from nacrith._native import lib

    for sig, (meaning, advice) in _FATAL.items():
        line = f"{prog}: crashed with {sig.name} ({meaning}) while running the model: {advice}\n"
        if lib.nc_crash_guard(sig, line.encode()) != 0:
            raise RuntimeError(f"cannot guard against {sig.name}")
    # llama.cpp's abort would otherwise attach a debugger to print a backtrace first.
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    _guarded = True


@contextlib.contextmanager
def remove_on_crash(path: str | os.PathLike[str]) -> Iterator[None]:
    """Have the guard, if installed, delete ``path`` should the process crash
    while the block runs (a temporary output file, before its rename)."""
    if not _guarded:
        yield
        return
    from nacrith._native import lib

    with _lock:
        slot = lib.nc_crash_remove_on_crash(os.fsencode(os.path.abspath(path)))
    try:
        yield
    finally:
        with _lock:
            lib.nc_crash_forget(slot)


# --- children -------------------------------------------------------------------


def _child_main(connection: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        answer: tuple[str, object] = ("value", fn(*args))
    except BaseException as exc:  # handed to the parent, which raises it
        answer = ("raised", exc)
    try:
        connection.send(answer)
    except Exception as exc:  # an unpicklable value or exception
        connection.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    connection.close()


def run_in_child(fn: Callable[..., T], *args: object) -> T:
    """fn(*args) in a fresh process (so that its peak memory is its own), with
    its exception re-raised here. A child that dies without answering (a
    signal, os._exit) raises WorkerError naming how it died."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Not daemonic: the child may start processes of its own (a measurement with
    # --workers), which a daemonic process may not. It is joined below either way.
    process = context.Process(target=_child_main, args=(sender, fn, args))
    process.start()
    sender.close()
    try:
        # Read before the join, since a large answer blocks the child's send.
        # A child that dies closes its end of the pipe: EOF, never a hang.
        try:
            kind, value = receiver.recv()
        except EOFError:
            process.join()
            raise WorkerError(f"the child process {death_text(process.exitcode)}") from None
    finally:
        receiver.close()
        process.join()
    if kind == "raised":
        raise value
    return value
