"""File helpers: output files that appear whole or not at all, and cached file hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nacrith.crash import remove_on_crash

__all__ = ["atomic_output", "file_sha256"]

_SHA_CACHE: dict[tuple[str, int, int], bytes] = {}


def file_sha256(path: str | os.PathLike[str]) -> bytes:
    """SHA-256 of a file, cached by (path, size, mtime) for this process: models and
    corpora are hashed once, however often they are looked up."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with p.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _SHA_CACHE[key] = h.digest()
    return _SHA_CACHE[key]


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    like: str | os.PathLike[str] | None = None,
) -> Iterator[BinaryIO]:
    """Write to a temporary file beside ``path``; rename it into place only on success.

    On any error, KeyboardInterrupt included, the temporary file is removed
    and ``path`` is left as it was; so it is on a crash, under the CLI's crash
    guard. An existing ``path`` is replaced only with ``overwrite``. With
    ``like``, the new file gets that file's mode and times, as gzip does.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (use -f to overwrite)")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    tmp = Path(tmp_name)
    # A crash below Python (llama.cpp dying from a signal) skips the except
    # clause; the CLI's crash guard removes the temporary file then.
    with remove_on_crash(tmp):
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if like is not None:
                shutil.copystat(like, tmp)
            if overwrite:
                os.replace(tmp, target)
            else:
                os.link(tmp, target)  # fails if a file appeared meanwhile: never clobber
                tmp.unlink()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
