"""File helpers: output files that appear whole or not at all, and cached file hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nacrith.crash import remove_on_crash

__all__ = ["atomic_output", "cache_dir", "file_sha256", "search_path"]


def cache_dir(name: str) -> Path:
    """~/.cache/nacrith/NAME ($XDG_CACHE_HOME honoured): where nacrith keeps
    corpora, models and dictionaries of the user's."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nacrith" / name


def search_path(env: str, name: str) -> list[Path]:
    """The directories of $ENV (separated by the path separator), then cache_dir(name)."""
    return [*(Path(d) for d in os.environ.get(env, "").split(os.pathsep) if d), cache_dir(name)]


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


def _create_beside(target: Path) -> tuple[int, Path]:
    """A new temporary file beside target, with the mode open() gives a new file
    (0666 less the umask), not mkstemp's owner-only one: the output is a new file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = (target.parent or Path(".")) / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {target}")


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
    fd, tmp = _create_beside(target)
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
