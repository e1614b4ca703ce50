"""The models this machine knows, found by fingerprint.

A version-2 file names its model by the first bytes of the model's SHA-256
only (docs/format.md, Model_Id); ``info`` shows the model's name and full hash
by finding a known model with that prefix: the bundled one, $NACRITH_MODEL,
and any the user names. Nothing here loads a model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nacrith.errors import ModelError
from nacrith.files import file_sha256
from nacrith.models.llm import MODEL_ENV, bundled_model_path

__all__ = ["KnownModel", "find_model", "known_model_paths"]


@dataclass(frozen=True)
class KnownModel:
    path: Path
    sha256: bytes


def known_model_paths(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The models named (``extra``), then $NACRITH_MODEL, then the bundled one, each once."""
    paths = [Path(p) for p in extra]
    if os.environ.get(MODEL_ENV):
        paths.append(Path(os.environ[MODEL_ENV]))
    with contextlib.suppress(ModelError):  # not installed: the others may still name the file's model
        paths.append(bundled_model_path())
    seen: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            seen.setdefault(path.resolve(), None)
    return list(seen)


def find_model(model_id: bytes, extra: Iterable[str | os.PathLike[str]] = ()) -> KnownModel | None:
    """The known model whose SHA-256 starts with model_id, or None."""
    for path in known_model_paths(extra):
        digest = file_sha256(path)
        if digest.startswith(model_id):
            return KnownModel(path, digest)
    return None
