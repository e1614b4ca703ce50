"""Match model, LZP style (C: csrc/match.c).

Finds the latest earlier occurrence of the last ``min_len`` tokens anywhere in
the frame (within a ring of 2^history_bits tokens) and predicts the token that
followed it. Candidates are verified against the history, so a hash collision
is never taken for a match; the confidence is the hit rate learned per
match-length bucket. The ensemble (mixer.py) drives it in C;
tests/reference_models.py wraps it alone.
"""

from __future__ import annotations

from typing import Any

from nacrith.mixer import part_params
from nacrith.settings import EnsembleSettings

__all__ = ["match_params"]


def match_params(settings: EnsembleSettings) -> Any:
    """The model's nc_match_params, from the ensemble's settings (their table's match.* rows)."""
    return part_params(settings, "match")
