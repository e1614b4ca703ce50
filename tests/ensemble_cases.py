"""Ensemble settings shared by the tests."""

from __future__ import annotations

import itertools

from nacrith.settings import EnsembleSettings

SWITCHES = ("ngram", "match", "bias", "skip", "apm")


def all_switch_combinations() -> list[EnsembleSettings]:
    """Every on/off combination the format allows (the skip needs the match model),
    with a skip eager enough to fire on short test inputs."""
    out = []
    for bits in itertools.product((False, True), repeat=len(SWITCHES)):
        on = dict(zip(SWITCHES, bits, strict=True))
        if on["skip"] and not on["match"]:
            continue
        out.append(EnsembleSettings(**on, skip_warmup=0, skip_min_len=8, skip_confidence=0.5))
    return out


def combination_id(settings: EnsembleSettings) -> str:
    return "+".join(settings.enabled) or "mixer"
