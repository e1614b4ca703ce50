"""Match model, LZP style (C: csrc/match.c).

Finds the latest earlier occurrence of the last ``min_len`` tokens anywhere in
the frame (within a ring of 2^history_bits tokens) and predicts the token that
followed it. Candidates are verified against the history, so a hash collision
is never taken for a match; the confidence is the hit rate learned per
match-length bucket.
"""

from __future__ import annotations

from nacrith._native import ffi, lib
from nacrith.format import EnsembleSettings
from nacrith.models.cheap import SparsePrediction, new_sparse

__all__ = ["MatchModel", "match_params"]


def match_params(settings: EnsembleSettings) -> object:
    p = ffi.new("nc_match_params *")
    p.min_len = settings.match_min_len
    p.hash_bits = settings.match_hash_bits
    p.history_bits = settings.match_history_bits
    p.rate_limit = settings.match_rate_limit
    return p


class MatchModel:
    def __init__(self, settings: EnsembleSettings | None = None) -> None:
        settings = settings or EnsembleSettings()
        self._c = ffi.gc(lib.nc_match_new(match_params(settings)), lib.nc_match_free)
        if self._c == ffi.NULL:
            raise MemoryError("cannot allocate the match model")
        self._out = new_sparse(1)

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
