"""The ensemble (C: csrc/mix.c): the language model, corrected by the bias
head, mixed with the n-gram and match models, refined by an APM stage and
turned into the coder's CDF, in one C call per symbol.

Also the confidence skip: ``needs_llm`` says, from decoded state only, whether
the next symbol is coded with the language model's logits or without them.
"""

from __future__ import annotations

from nacrith._native import check, ffi, lib
from nacrith.coder import Decoder, Encoder, scores_pointer
from nacrith.models.match import match_params
from nacrith.models.ngram import ngram_params
from nacrith.settings import EnsembleSettings, check_temperature

__all__ = ["Ensemble"]


def _params(settings: EnsembleSettings) -> object:
    p = ffi.new("nc_ens_params *")
    p.flags = (
        (lib.NC_ENS_NGRAM if settings.ngram else 0)
        | (lib.NC_ENS_MATCH if settings.match else 0)
        | (lib.NC_ENS_BIAS if settings.bias else 0)
        | (lib.NC_ENS_SKIP if settings.skip else 0)
        | (lib.NC_ENS_APM if settings.apm else 0)
    )
    p.ngram = ngram_params(settings)[0]
    p.match = match_params(settings)[0]
    p.bias_lr = settings.bias_lr
    p.bias_limit = settings.bias_limit
    p.mixer_lr = settings.mixer_lr
    p.mixer_limit = settings.mixer_limit
    p.apm_rate = settings.apm_rate
    p.skip_min_len = settings.skip_min_len
    p.skip_confidence = settings.skip_confidence
    p.skip_warmup = settings.skip_warmup
    p.skip_agree = settings.skip_agree
    p.skip_solo_min_len = settings.skip_solo_min_len
    p.skip_solo_confidence = settings.skip_solo_confidence
    p.bias_scale_lr = settings.bias_scale_lr
    return p


class Ensemble:
    """One stream's ensemble state; ``reset`` starts a new frame."""

    def __init__(self, settings: EnsembleSettings, n_vocab: int, n_extra: int, temperature: float) -> None:
        check_temperature(temperature)
        self.settings = settings
        self.n_vocab = n_vocab
        raw = lib.nc_ens_new(_params(settings), n_vocab, n_extra, 1.0 / temperature)
        self._c = ffi.gc(raw, lib.nc_ens_free)
        if self._c == ffi.NULL:
            raise MemoryError("cannot allocate the ensemble (settings out of range or out of memory)")
        self._sym = ffi.new("uint32_t *")
        self._freq = ffi.new("uint32_t *")
        self._prob = ffi.new("double *")

    def reset(self) -> None:
        lib.nc_ens_reset(self._c)

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
