"""Hooks that only tests turn on, through environment variables.

Each acts on a frame whose bytes hold its marker, so a test picks the one
request or frame it means, and everything else in the same process runs as
usual. Unset, each costs one environment lookup per frame.

- ``inject_fault``: the process dies from a signal, as llama.cpp can
  (crash.py says what happens then).
- ``paced``: the model takes a given time per call, so that a test can
  rely on a frame still being coded (queue full, a client leaving, a worker
  killed mid-frame) without depending on how fast the machine is. Decoding
  has no bytes to look at beforehand: its own variable paces every frame.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, TypeVar

__all__ = [
    "FAULT_ENV",
    "FAULT_MARKER",
    "PACE_DECODING_ENV",
    "PACE_ENV",
    "PACE_MARKER",
    "inject_fault",
    "paced",
]

#: A signal name (e.g. SIGILL): a process that codes a text frame holding
#: FAULT_MARKER with the model, or has just decoded one, kills itself with that
#: signal, as llama.cpp would.
FAULT_ENV = "NACRITH_TEST_FAULT"
FAULT_MARKER = b"NACRITH-TEST-FAULT"

#: Seconds (a decimal number): every call that feeds the model tokens of a
#: frame holding PACE_MARKER first sleeps that long, while encoding.
PACE_ENV = "NACRITH_TEST_PACE"
PACE_MARKER = b"NACRITH-TEST-PACE"
#: Set (to anything): decoding paces every neural frame the same way, since a
#: decoder knows a frame's bytes only once it has decoded them.
PACE_DECODING_ENV = "NACRITH_TEST_PACE_DECODING"


def inject_fault(data: bytes) -> None:
    """Die from $NACRITH_TEST_FAULT's signal when data holds FAULT_MARKER."""
    name = os.environ.get(FAULT_ENV)
    if name and FAULT_MARKER in data:
        signal.raise_signal(signal.Signals[name])


P = TypeVar("P")


def paced(predictor: P, data: bytes | None) -> P:
    """The predictor, slowed to $NACRITH_TEST_PACE seconds per evaluation when
    encoding data that holds PACE_MARKER, or when decoding (data None) with
    $NACRITH_TEST_PACE_DECODING set."""
    seconds = os.environ.get(PACE_ENV)
    wanted = PACE_MARKER in data if data is not None else bool(os.environ.get(PACE_DECODING_ENV))
    if not seconds or not wanted:
        return predictor
    return _Paced(predictor, float(seconds))  # type: ignore[return-value]  # same methods, by delegation


class _Paced:
    """Delegates to an engine.Predictor, sleeping before each evaluation."""

    def __init__(self, predictor: Any, seconds: float) -> None:
        self._predictor = predictor
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)

    def evaluate(self, n_tokens: int) -> int:
        time.sleep(self._seconds)
        return int(self._predictor.evaluate(n_tokens))
