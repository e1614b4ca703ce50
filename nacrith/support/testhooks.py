"""Hooks that only tests turn on, through environment variables: a model
wrapper, put around the model by the model factory (models/llm.open_model)
when a test asks for it, so that nothing of it runs inside the codec.

Each acts on a frame whose bytes hold its marker, so a test picks the one
request or frame it means, and everything else in the same process runs as
usual:

- ``FAULT_ENV``: the process dies from a signal, as llama.cpp can (crash.py
  says what happens then), when it tokenizes a frame holding FAULT_MARKER to
  code it, or has just decoded one.
- ``PACE_ENV``: the model takes a given time per call, so that a test can
  rely on a frame still being coded (queue full, a client leaving, a worker
  killed mid-frame) without depending on how fast the machine is: encoding a
  frame holding PACE_MARKER, or, with ``PACE_DECODING_ENV`` set, decoding
  any frame (a decoder knows a frame's bytes only once it has decoded them).

The wrapper knows a frame's bytes from the tokenizer, which the frame codec
calls with them before it asks for the frame's predictor when encoding, and
after the predictor has run when decoding.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "FAULT_ENV",
    "FAULT_MARKER",
    "HOOKS_PREFIX",
    "PACE_DECODING_ENV",
    "PACE_ENV",
    "PACE_MARKER",
    "HookedModel",
]

#: Every variable of these hooks starts so: the model factory looks for this prefix alone.
HOOKS_PREFIX = "NACRITH_TEST_"
#: A signal name (e.g. SIGILL): a process that codes a text frame holding
#: FAULT_MARKER with the model, or has just decoded one, kills itself with that
#: signal, as llama.cpp would.
FAULT_ENV = "NACRITH_TEST_FAULT"
FAULT_MARKER = b"NACRITH-TEST-FAULT"
#: Seconds (a decimal number): every call that feeds the model tokens of a
#: frame holding PACE_MARKER first sleeps that long, while encoding.
PACE_ENV = "NACRITH_TEST_PACE"
PACE_MARKER = b"NACRITH-TEST-PACE"
#: Set (to anything): decoding paces every neural frame the same way.
PACE_DECODING_ENV = "NACRITH_TEST_PACE_DECODING"


def _fault_if_marked(data: bytes) -> None:
    """Die from $NACRITH_TEST_FAULT's signal when data holds FAULT_MARKER."""
    name = os.environ.get(FAULT_ENV)
    if name and FAULT_MARKER in data:
        signal.raise_signal(signal.Signals[name])


class HookedModel:
    """A language model (models/llm.LanguageModel) with the hooks above: its
    tokenizer sees each frame's bytes, its predictor may be slowed down.
    Everything else is the model's own, by delegation."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.symbols = _HookedSymbols(model.symbols, self)
        #: Whether the frame being encoded holds PACE_MARKER; None while decoding.
        self._pacing_encode: bool | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __enter__(self) -> HookedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self._model.close()

    def predictor(self, params: Any, streams: int = 1) -> Any:
        encoding, self._pacing_encode = self._pacing_encode, None
        paced = encoding if encoding is not None else bool(os.environ.get(PACE_DECODING_ENV))
        predictor = self._model.predictor(params, streams)
        seconds = os.environ.get(PACE_ENV)
        return _Paced(predictor, float(seconds)) if paced and seconds else predictor


class _HookedSymbols:
    """The model's tokenizer, telling the hooks each frame's bytes."""

    def __init__(self, symbols: Any, owner: HookedModel) -> None:
        self._symbols = symbols
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._symbols, name)

    def encode(self, data: bytes) -> list[int]:
        _fault_if_marked(data)
        self._owner._pacing_encode = PACE_MARKER in data
        return list(self._symbols.encode(data))

    def decode(self, symbols: Sequence[int]) -> bytes:
        data = bytes(self._symbols.decode(symbols))
        _fault_if_marked(data)
        return data


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
