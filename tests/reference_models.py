"""Python wrappers of the ensemble's C parts, for tests only.

The coder drives the C side through one call per symbol (nacrith/mixer.py);
these wrappers reach each part alone, so tests can check it against plain
Python: the n-gram model (csrc/ngram.c), the match model (csrc/match.c) and
the bias head (csrc/bias.c), and the whole ensemble one symbol at a time
(csrc/mix.c).

A cheap model names a few candidate tokens with probabilities and leaves the
rest of the mass (``escape``) to the base distribution (the language model),
so it is a full distribution over the vocabulary without touching each entry:
``p(t) = candidates.get(t, 0) + escape * base(t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nacrith._native import check, ffi, lib
from nacrith.mixer import ensemble_params
from nacrith.models.match import match_params
from nacrith.models.ngram import ngram_params
from nacrith.settings import Arithmetic, EnsembleSettings, check_temperature
from nacrith.support.coder import Decoder, Encoder, scores_pointer

__all__ = ["BiasHead", "Ensemble", "MatchModel", "NgramModel", "SparsePrediction", "softmax"]


@dataclass(frozen=True)
class SparsePrediction:
    candidates: dict[int, float]
    escape: float

    def prob(self, token: int, base: float) -> float:
        """p(token) given the base distribution's probability of it."""
        return self.candidates.get(token, 0.0) + self.escape * base

    @classmethod
    def from_c(cls, s: Any) -> SparsePrediction:
        """From an nc_sparse *."""
        return cls({int(s.tok[i]): float(s.p[i]) for i in range(s.n)}, float(s.escape))


class NgramModel:
    """Token n-gram model, orders min_order..max_order: PPM method C estimates
    whose escape mass goes to the language model."""

    def __init__(self, settings: EnsembleSettings | None = None) -> None:
        settings = settings or EnsembleSettings()
        self.orders = range(settings.ngram_min_order, settings.ngram_max_order + 1)
        self._c = ffi.gc(lib.nc_ngram_new(ngram_params(settings)), lib.nc_ngram_free)
        if self._c == ffi.NULL:
            raise MemoryError("cannot allocate the n-gram tables")
        self._out = ffi.new("nc_sparse[]", len(self.orders))

    def reset(self) -> None:
        lib.nc_ngram_reset(self._c)

    def predict(self) -> list[SparsePrediction]:
        """One prediction per order, lowest first; an unseen context predicts nothing."""
        lib.nc_ngram_predict(self._c, self._out)
        return [SparsePrediction.from_c(self._out[i]) for i in range(len(self.orders))]

    @property
    def found_order(self) -> int:
        """The highest order whose context was seen at the last predict (0: none)."""
        return int(lib.nc_ngram_found_order(self._c))

    def update(self, token: int) -> None:
        lib.nc_ngram_update(self._c, token)


class MatchModel:
    """Match model, LZP style: predicts the token that followed the latest
    earlier occurrence of the last ``min_len`` tokens."""

    def __init__(self, settings: EnsembleSettings | None = None) -> None:
        settings = settings or EnsembleSettings()
        self._c = ffi.gc(lib.nc_match_new(match_params(settings)), lib.nc_match_free)
        if self._c == ffi.NULL:
            raise MemoryError("cannot allocate the match model")
        self._out = ffi.new("nc_sparse[]", 1)

    def reset(self) -> None:
        lib.nc_match_reset(self._c)

    def predict(self) -> list[SparsePrediction]:
        lib.nc_match_predict(self._c, self._out)
        return [SparsePrediction.from_c(self._out[0])]

    @property
    def length(self) -> int:
        """Tokens the current match has been verified or right for (0: none)."""
        return int(lib.nc_match_length(self._c))

    def confidence(self) -> float:
        """The learned hit rate of the current length's bucket."""
        return float(lib.nc_match_confidence(self._c, lib.nc_match_bucket(self._c)))

    def update(self, token: int) -> None:
        lib.nc_match_update(self._c, token)


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
    """Online bias head: a per-document correction of the language model in log
    space, base = softmax(scale * logits / T + b), one gradient step on
    -log base(token) per token (the scale is learned only with scale_lr > 0)."""

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


class Ensemble:
    """The ensemble of ``lanes`` streams (csrc/mix.h), one symbol per call, in
    an Arithmetic; ``set_lane`` chooses the stream the next call codes."""

    def __init__(
        self,
        settings: EnsembleSettings,
        n_vocab: int,
        n_extra: int,
        temperature: float,
        arith: int = Arithmetic.EXACT_DOUBLE,
        lanes: int = 1,
    ) -> None:
        check_temperature(temperature)
        raw = lib.nc_ens_new_lanes(
            ensemble_params(settings), n_vocab, n_extra, 1.0 / temperature, lanes, arith
        )
        if raw == ffi.NULL:
            raise MemoryError("cannot allocate the ensemble (settings out of range or out of memory)")
        self._c = ffi.gc(raw, lib.nc_ens_free)
        self._sym = ffi.new("uint32_t *")
        self._freq = ffi.new("uint32_t *")
        self._prob = ffi.new("double *")

    def set_lane(self, lane: int) -> None:
        check(lib.nc_ens_set_lane(self._c, lane), "choosing a lane")

    def needs_llm(self) -> bool:
        return bool(lib.nc_ens_needs_llm(self._c))

    def encode(self, encoder: Encoder, logits: object | None, symbol: int) -> tuple[int, float]:
        """Code ``symbol``; returns (its frequency, its unquantised probability).
        ``logits`` must be given exactly when ``needs_llm()``."""
        status = lib.nc_ens_encode(
            self._c,
            encoder.c_encoder,
            scores_pointer(logits) if logits is not None else ffi.NULL,
            symbol,
            self._freq,
            self._prob,
        )
        check(status, "encoding a symbol")
        return self._freq[0], self._prob[0]

    def decode(self, decoder: Decoder, logits: object | None) -> tuple[int, int]:
        """Decode one symbol; returns (symbol, frequency)."""
        status = lib.nc_ens_decode(
            self._c,
            decoder.c_decoder,
            scores_pointer(logits) if logits is not None else ffi.NULL,
            self._sym,
            self._freq,
        )
        check(status, "decoding a symbol")
        return int(self._sym[0]), int(self._freq[0])
