"""Termination signals as exceptions, so that a command stopped by one cleans up
as it does on Ctrl-C.

Python turns SIGINT into KeyboardInterrupt, and every ``finally`` and
``except BaseException`` on the way out runs: temporary output files are
removed, worker processes are stopped. SIGTERM (``kill``, ``timeout``,
systemd), SIGHUP (the terminal closed) and SIGQUIT (Ctrl-\\) kill the process
outright by default, which leaves those files behind. ``terminating_signals``
makes each of them raise ``Terminated`` instead, which unwinds the same way.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["TERMINATING", "Terminated", "terminating_signals"]

#: The signals that ask a command to stop, besides SIGINT.
TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Terminated(BaseException):
    """The process was asked to stop by a signal. A BaseException, as
    KeyboardInterrupt is, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """What a shell reports for a process the signal killed: 128 + its number."""
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    # Once is enough: a second signal while cleaning up must not cut the clean-up short.
    for sig in TERMINATING:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def terminating_signals() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM, SIGHUP and SIGQUIT
    raise Terminated. A signal the process was started with ignored (as
    ``nohup`` ignores SIGHUP) stays ignored."""
    previous = {}
    for sig in TERMINATING:
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
