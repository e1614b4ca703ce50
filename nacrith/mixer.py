"""The ensemble's parameters for C (csrc/mix.h): the language model,
corrected by the bias head, mixed with the n-gram and match models, refined
by an APM stage and turned into the coder's CDF. The engine runs it
(csrc/lanes.h), one C call per step for all the streams of a frame.

Every field is filled from the hyperparameters' table
(settings.HYPERPARAMETERS, each row naming its C field), and the switches
from their bits in the header (settings.SWITCHES, whose bit i is C's
NC_ENS_* flag 1 << i): nothing here names a setting.
"""

from __future__ import annotations

from typing import Any

from nacrith._native import ffi
from nacrith.settings import HYPERPARAMETERS, SWITCHES, EnsembleSettings

__all__ = ["ensemble_params", "part_params"]


def ensemble_params(settings: EnsembleSettings) -> Any:
    """The C parameters (nc_ens_params) of these settings."""
    p = ffi.new("nc_ens_params *")
    p.flags = sum(1 << bit for bit, name in enumerate(SWITCHES) if getattr(settings, name))
    for row in HYPERPARAMETERS:
        if row.c_field is not None:
            *parts, name = row.c_field.split(".")
            owner = p
            for part in parts:  # a part's own struct, such as nc_ngram_params
                owner = getattr(owner, part)
            setattr(owner, name, getattr(settings, row.name))
    return p


def part_params(settings: EnsembleSettings, part: str) -> Any:
    """The C parameters of one part alone (nc_<part>_params: "ngram", "match"),
    for a model made on its own."""
    p = ffi.new(f"nc_{part}_params *")
    prefix = part + "."
    for row in HYPERPARAMETERS:
        if row.c_field is not None and row.c_field.startswith(prefix):
            setattr(p, row.c_field.removeprefix(prefix), getattr(settings, row.name))
    return p
