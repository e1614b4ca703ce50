"""Which model a file needs, and whether the one at hand is it.

A file names its model (a version-2 or 3 file by the first bytes of its
SHA-256); a model here, or the model of workers in other processes or on other
machines, is described by its ModelIdentity, and ``check_model`` refuses the
wrong one before any frame is decoded, naming the model the file needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nacrith.errors import ModelMismatchError, NacrithWarning
from nacrith.format import Header, environment_backend

if TYPE_CHECKING:
    from nacrith.framecodec import CodecModel

__all__ = ["ModelIdentity", "check_model"]


@dataclass(frozen=True)
class ModelIdentity:
    """What check_model compares with a file: a model here, or the model of
    workers in other processes or on other machines."""

    sha256: bytes
    name: str
    n_vocab: int
    max_context: int
    environment: str
    #: The token its frames start from when a file leaves it out (compact headers).
    start_token: int

    @classmethod
    def of(cls, model: CodecModel) -> ModelIdentity:
        symbols = model.symbols
        return cls(
            model.sha256, model.name, symbols.n_vocab, model.max_context, model.environment, model.start_token
        )


def _model_whereabouts(header: Header) -> str:
    """Where the model a file needs is, if this machine knows it: what a
    user needs to decode it, rather than a bare fingerprint."""
    from nacrith.models.registry import find_model  # on this error's path only: it hashes models

    assert header.model_id is not None
    found = find_model(header.model_id)
    if found is not None:
        return f" ({found.path.name}, found as {found.source}: decode with --model {found.path})"
    named = f" ({header.model_name})" if header.model_name else ""
    return f"{named}, which is not among the models found here (nacrith models lists them)"


def check_model(header: Header, model: ModelIdentity) -> None:
    """Refuse a model that is not the one the file was made with; warn on a different build."""
    if header.model_id is None:
        return  # a file without a model decodes with any
    if not header.uses_model(model.sha256):
        raise ModelMismatchError(
            f"file needs model {header.model_id.hex()[:16]}{_model_whereabouts(header)}; "
            f"the loaded model is {model.sha256.hex()[:16]} ({model.name})"
        )
    if header.vocab_size is not None and header.vocab_size != model.n_vocab:
        raise ModelMismatchError(
            f"file needs a vocabulary of {header.vocab_size} tokens, the model has {model.n_vocab}"
        )
    written, here = environment_backend(header.environment), environment_backend(model.environment)
    if written and here and written != here:
        warnings.warn(
            f"file was made on the {written.upper()} backend, decoding on the {here.upper()}: "
            "CPU and GPU arithmetic differ, so decoding is expected to fail its checksums",
            NacrithWarning,
            stacklevel=3,
        )
    elif header.environment and header.environment != model.environment:
        warnings.warn(
            f"file was made with {header.environment!r}, decoding with {model.environment!r}: "
            "decoding is guaranteed only on the same build and backend",
            NacrithWarning,
            stacklevel=3,
        )
