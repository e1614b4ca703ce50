"""What the cheap models share: their prediction, and the protocol they follow.

A cheap model names a few candidate tokens with probabilities and leaves the
rest of the mass (``escape``) to the base distribution (the language model),
so it is a full distribution over the vocabulary without touching each entry:
``p(t) = candidates.get(t, 0) + escape * base(t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nacrith._native import ffi

__all__ = ["CheapModel", "SparsePrediction"]


@dataclass(frozen=True)
class SparsePrediction:
    candidates: dict[int, float]
    escape: float

    def prob(self, token: int, base: float) -> float:
        """p(token) given the base distribution's probability of it."""
        return self.candidates.get(token, 0.0) + self.escape * base

    @classmethod
    def from_c(cls, sparse: object) -> SparsePrediction:
        s = sparse  # an nc_sparse *
        return cls({int(s.tok[i]): float(s.p[i]) for i in range(s.n)}, float(s.escape))


def new_sparse(count: int) -> object:
    return ffi.new("nc_sparse[]", count)


class CheapModel(Protocol):
    """The protocol of the n-gram and match models (the ensemble drives the C side directly)."""

    def reset(self) -> None:
        """Forget the stream: a new frame."""

    def predict(self) -> list[SparsePrediction]:
        """Predictions for the next token."""

    def update(self, token: int) -> None:
        """Learn the token that came, and append it to the context."""
