"""The nacrith configurations a run can measure side by side (--ablation,
--variants), by short name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nacrith.settings import EnsembleSettings

NACRITH = "nacrith"


def nacrith_variants() -> dict[str, EnsembleSettings | None]:
    """Every nacrith configuration the bench knows, by short name: the language
    model alone, each part of the ensemble added alone, the full ensemble
    without its confidence skip (what the skip costs and saves), and in full."""
    full = EnsembleSettings()
    none = full.without("ngram", "match", "bias", "skip", "apm")
    return {
        "llm-only": None,
        "+ngram": replace(none, ngram=True),
        "+match": replace(none, match=True),
        "+bias": replace(none, bias=True),
        "+apm": replace(none, apm=True),
        "+match+skip": replace(none, match=True, skip=True),
        "full-skip": full.without("skip"),
        "full": full,
    }


#: What ``--ablation`` runs: the model alone, each part alone, the full ensemble.
ABLATION = ("llm-only", "+ngram", "+match", "+bias", "+apm", "+match+skip", "full")


def variant_label(name: str) -> str:
    """The compressor column of a variant; the full ensemble is plain "nacrith"."""
    return NACRITH if name == "full" else f"{NACRITH} {name}"


def named_variants(names: Sequence[str] = ABLATION) -> dict[str, EnsembleSettings | None]:
    """The named variants (see nacrith_variants), labelled for the report."""
    catalogue = nacrith_variants()
    if unknown := [n for n in names if n not in catalogue]:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(catalogue)}")
    return {variant_label(n): catalogue[n] for n in dict.fromkeys(names)}
