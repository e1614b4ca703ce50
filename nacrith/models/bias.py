"""Online bias head (C: csrc/bias.c): a per-document correction of the
language model in log space, base = softmax(scale * logits / T + b), one
gradient step on -log base(token) per token (the scale is learned only with
scale_lr > 0, else it stays 1)."""

from __future__ import annotations

import numpy as np

from nacrith._native import check, ffi, lib

__all__ = ["BiasHead", "softmax"]


def softmax(logits: np.ndarray, temperature: float = 1.0, bias: BiasHead | None = None) -> np.ndarray:
    """softmax(scale * logits / temperature + bias) exactly as the coder computes it (float64)."""
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
    def __init__(self, n_vocab: int, lr: float, limit: float, scale_lr: float = 0.0) -> None:
        self.n_vocab = n_vocab
        self._c = ffi.gc(lib.nc_bias_new(n_vocab, lr, limit, scale_lr), lib.nc_bias_free)
        if self._c == ffi.NULL:
            raise ValueError(
                f"cannot make a bias head of {n_vocab} entries (lr {lr}, limit {limit}, scale lr {scale_lr})"
            )

    def reset(self) -> None:
        lib.nc_bias_reset(self._c)

    @property
    def values(self) -> np.ndarray:
        raw = ffi.buffer(lib.nc_bias_values(self._c), 8 * self.n_vocab)
        return np.frombuffer(raw, dtype=np.float64).copy()

    @property
    def scale(self) -> float:
        """The learned scale of the logits (1 unless learned)."""
        return float(lib.nc_bias_scale(self._c))

    def predict(self, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """The corrected distribution of the next token."""
        return softmax(logits, temperature, self)

    def update(self, base: np.ndarray, token: int, logits: np.ndarray, temperature: float = 1.0) -> None:
        """One step towards token, given the distribution predict(logits, temperature) gave."""
        base = np.ascontiguousarray(base, dtype=np.float64)
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        if base.size != self.n_vocab or logits.size != self.n_vocab:
            raise ValueError("base and logits must have one entry per vocabulary token")
        base_c, logits_c = ffi.from_buffer("double[]", base), ffi.from_buffer("float[]", logits)
        status = lib.nc_bias_update(self._c, base_c, logits_c, 1.0 / temperature, token)
        check(status, "updating the bias head")
