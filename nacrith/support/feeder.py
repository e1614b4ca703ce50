"""Feeding chosen tokens straight to the model's windows, for checks and
benchmarks of the model itself (kernels, thread counts, speed). The coder does
not use it: the engine writes its batches from C (csrc/lanes.h)."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["Feeder", "Windows"]


class Windows(Protocol):
    """What a Feeder feeds: an engine.Predictor together with the shape of its
    windows, as LanguageModel.windows makes them."""

    n_vocab: int
    lanes: int
    batch: int
    context: int
    slide: int

    def batch_arrays(self) -> tuple[int, int, int, int, int]: ...

    def clear(self) -> None: ...

    def slide_lane(self, lane: int) -> None: ...

    def evaluate(self, n_tokens: int) -> int: ...


class Feeder:
    """Evaluates (lane, tokens, logits) requests through the model's windows,
    keeping each lane's position and a copy of its last logits; every lane
    starts from ``start_token``."""

    def __init__(self, predictor: Windows, start_token: int) -> None:
        self.predictor = predictor
        self.start_token = start_token
        self.n_vocab = predictor.n_vocab
        size = predictor.lanes * predictor.batch
        token, pos, n_seq_id, seq_id, logits = predictor.batch_arrays()
        self._token = (ctypes.c_int32 * size).from_address(token)
        self._pos = (ctypes.c_int32 * size).from_address(pos)
        self._n_seq_id = (ctypes.c_int32 * size).from_address(n_seq_id)
        self._seq_id = (ctypes.POINTER(ctypes.c_int32) * size).from_address(seq_id)
        self._logits = (ctypes.c_int8 * size).from_address(logits)
        self._positions = [0] * predictor.lanes
        self._rows: dict[int, np.ndarray] = {}

    def reset(self, count: int = 1) -> None:
        """Empty every window and start lanes 0 … count - 1 from the start token, in one evaluation."""
        self.predictor.clear()
        self._positions = [0] * self.predictor.lanes
        self._rows = {}
        self.feed([(lane, (self.start_token,), True) for lane in range(count)])

    def feed(self, requests: Sequence[tuple[int, Sequence[int], bool]]) -> None:
        """One evaluation of every request, lanes in increasing order."""
        p = self.predictor
        n = 0
        wanted = []
        for lane, tokens, logits in requests:
            if not 0 < len(tokens) <= p.batch:
                raise ValueError(f"a lane feeds 1..{p.batch} tokens at once, not {len(tokens)}")
            if self._positions[lane] + len(tokens) > p.context:
                p.slide_lane(lane)
                self._positions[lane] -= p.slide
            for token in tokens:
                self._token[n], self._pos[n], self._n_seq_id[n] = token, self._positions[lane], 1
                self._seq_id[n][0] = lane
                self._logits[n] = 0
                self._positions[lane] += 1
                n += 1
            if logits:
                self._logits[n - 1] = 1
                wanted.append(lane)
            else:
                self._rows.pop(lane, None)
        address = p.evaluate(n)
        rows = np.ctypeslib.as_array((ctypes.c_float * (len(wanted) * self.n_vocab)).from_address(address))
        for i, lane in enumerate(wanted):
            self._rows[lane] = rows[i * self.n_vocab : (i + 1) * self.n_vocab].copy()

    def advance(self, token: int, lane: int = 0) -> None:
        self.feed([(lane, (token,), True)])

    def scores(self, lane: int = 0) -> np.ndarray:
        """The lane's logits after its last feed that asked for them."""
        if lane not in self._rows:
            raise RuntimeError(f"no logits for lane {lane}: its last feed asked for none")
        return self._rows[lane]
