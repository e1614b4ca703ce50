"""Online bias head (C: csrc/bias.c): a per-document correction of the
language model in log space, base = softmax(logits / T + b), one gradient
step on -log base(token) per token."""

from __future__ import annotations

import numpy as np

from nacrith._native import check, ffi, lib

__all__ = ["BiasHead", "softmax"]


def softmax(logits: np.ndarray, temperature: float = 1.0, bias: BiasHead | None = None) -> np.ndarray:
    """softmax(logits / temperature + bias) exactly as the coder computes it (float64)."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    out = np.empty(logits.size, dtype=np.float64)
    status = lib.nc_softmax(
        ffi.from_buffer("float[]", logits),
        logits.size,
        1.0 / temperature,
        bias._c if bias is not None else ffi.NULL,
        ffi.from_buffer("double[]", out),
        ffi.NULL,
    )
    check(status, "computing a softmax")
    return out


class BiasHead:
    def __init__(self, n_vocab: int, lr: float, limit: float) -> None:
        self.n_vocab = n_vocab
        self._c = ffi.gc(lib.nc_bias_new(n_vocab, lr, limit), lib.nc_bias_free)
        if self._c == ffi.NULL:
            raise ValueError(f"cannot make a bias head of {n_vocab} entries (lr {lr}, limit {limit})")

    def reset(self) -> None:
        lib.nc_bias_reset(self._c)

    @property
    def values(self) -> np.ndarray:
        raw = ffi.buffer(lib.nc_bias_values(self._c), 8 * self.n_vocab)
        return np.frombuffer(raw, dtype=np.float64).copy()

    def predict(self, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """The corrected distribution of the next token."""
        return softmax(logits, temperature, self)

    def update(self, base: np.ndarray, token: int) -> None:
        base = np.ascontiguousarray(base, dtype=np.float64)
        if base.size != self.n_vocab:
            raise ValueError("base must have one entry per vocabulary token")
        check(lib.nc_bias_update(self._c, ffi.from_buffer("double[]", base), token), "updating the bias head")
