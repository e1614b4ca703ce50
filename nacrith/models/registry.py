"""The models this machine knows, found by fingerprint.

Known models are the ones the user names (``--model``), $NACRITH_MODEL, the
bundled one, and every ``*.gguf`` in the models directories ($NACRITH_MODELS,
directories separated by the path separator, then ~/.cache/nacrith/models).
``nacrith models`` lists them; a version-2 file names its model by the first
bytes of the model's SHA-256 only (docs/format.md, Model_Id), and ``info``
shows the model's name and full hash by finding a known model with that
prefix. Nothing here loads a model's weights.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nacrith.errors import ModelError
from nacrith.files import file_sha256, search_path
from nacrith.models.llm import MODEL_ENV, bundled_model_path

__all__ = ["MODELS_ENV", "KnownModel", "find_model", "known_models", "model_dirs"]

#: Directories of models, besides ~/.cache/nacrith/models.
MODELS_ENV = "NACRITH_MODELS"


@dataclass(frozen=True)
class KnownModel:
    path: Path
    #: Where it was found: "--model", "$NACRITH_MODEL", "bundled" or its directory.
    source: str

    @property
    def sha256(self) -> bytes:
        return file_sha256(self.path)


def model_dirs() -> list[Path]:
    """$NACRITH_MODELS's directories, then ~/.cache/nacrith/models."""
    return search_path(MODELS_ENV, "models")


def known_models(extra: Iterable[str | os.PathLike[str]] = ()) -> list[KnownModel]:
    """Every model known here, each file once, in the order above."""
    found = [KnownModel(Path(p), "--model") for p in extra]
    if os.environ.get(MODEL_ENV):
        found.append(KnownModel(Path(os.environ[MODEL_ENV]), f"${MODEL_ENV}"))
    with contextlib.suppress(ModelError):  # not installed: the others may still be there
        found.append(KnownModel(bundled_model_path(), "bundled"))
    for directory in model_dirs():
        if directory.is_dir():
            found += [KnownModel(p, str(directory)) for p in sorted(directory.glob("*.gguf"))]
    seen: dict[Path, KnownModel] = {}
    for model in found:
        if model.path.is_file():
            seen.setdefault(model.path.resolve(), model)
    return list(seen.values())


def find_model(model_id: bytes, extra: Iterable[str | os.PathLike[str]] = ()) -> KnownModel | None:
    """The known model whose SHA-256 starts with model_id, or None."""
    for model in known_models(extra):
        if model.sha256.startswith(model_id):
            return model
    return None
