"""Token n-gram model, orders min_order..max_order (C: csrc/ngram.c).

Each order counts the tokens that followed each context in a hash table of
bounded size; slots carry a check of their context hash, so collisions are
detected rather than mixed. Its predictions are PPM method C estimates whose
escape mass goes to the language model, not to 49k unseen tokens. The
ensemble (mixer.py) drives it in C; tests/reference_models.py wraps it alone.
"""

from __future__ import annotations

from typing import Any

from nacrith.mixer import part_params
from nacrith.settings import EnsembleSettings

__all__ = ["ngram_params"]


def ngram_params(settings: EnsembleSettings) -> Any:
    """The model's nc_ngram_params, from the ensemble's settings (their table's ngram.* rows)."""
    return part_params(settings, "ngram")
