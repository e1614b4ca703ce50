"""Token n-gram model, orders min_order..max_order (C: csrc/ngram.c).

Each order counts the tokens that followed each context in a hash table of
bounded size; slots carry a check of their context hash, so collisions are
detected rather than mixed. Its predictions are PPM method C estimates whose
escape mass goes to the language model, not to 49k unseen tokens.
"""

from __future__ import annotations

from nacrith._native import ffi, lib
from nacrith.format import EnsembleSettings
from nacrith.models.cheap import SparsePrediction, new_sparse

__all__ = ["NgramModel", "ngram_params"]


def ngram_params(settings: EnsembleSettings) -> object:
    p = ffi.new("nc_ngram_params *")
    p.min_order = settings.ngram_min_order
    p.max_order = settings.ngram_max_order
    p.table_bits = settings.ngram_table_bits
    p.candidates = settings.ngram_candidates
    p.count_limit = settings.ngram_count_limit
    return p


class NgramModel:
    def __init__(self, settings: EnsembleSettings | None = None) -> None:
        settings = settings or EnsembleSettings()
        self.orders = range(settings.ngram_min_order, settings.ngram_max_order + 1)
        self._c = ffi.gc(lib.nc_ngram_new(ngram_params(settings)), lib.nc_ngram_free)
        if self._c == ffi.NULL:
            raise MemoryError("cannot allocate the n-gram tables")
        self._out = new_sparse(len(self.orders))

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
