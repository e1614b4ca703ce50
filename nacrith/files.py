"""File helpers: output files that appear whole or not at all, and cached file hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from nacrith.crash import remove_on_crash
from nacrith.errors import OutputError

__all__ = ["atomic_output", "cache_dir", "file_sha256", "same_file", "search_path"]


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


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats are of one file: one inode, however many names or links lead to it."""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _output_stat(target: Path) -> os.stat_result | None:
    """What ``target`` names, symbolic links followed; None if nothing is there yet."""
    try:
        return target.stat()
    except FileNotFoundError:
        return None


class _Output(io.BufferedWriter):
    """The output file, whose errors name the user's path rather than a temporary
    file's (or none, as write errors do); seekable only when it is a regular file,
    so a writer never rewinds a device or a pipe."""

    def __init__(self, fd: int, shown: str, regular: bool) -> None:
        super().__init__(io.FileIO(fd, "wb", closefd=True))
        self._shown = shown
        self._regular = regular

    def seekable(self) -> bool:
        return self._regular and super().seekable()

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise _naming(exc, self._shown) from None

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            raise _naming(exc, self._shown) from None


def _naming(exc: OSError, shown: str) -> OSError:
    """The same error, naming the user's path."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, shown)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    like: str | os.PathLike[str] | None = None,
    source: os.stat_result | None = None,
) -> Iterator[BinaryIO]:
    """Write an output file whole or not at all, and never harm what is at ``path``.

    - Nothing there (or a link to nothing): written to a temporary file beside
      it, which is linked into place only on success.
    - A regular file (through any links): replaced the same way, only with
      ``overwrite``; a symbolic link stays a link to the new file.
    - A FIFO or a character device (/dev/null, a terminal): written through, as
      a shell's redirection does; it is never replaced, and nothing is needed
      to write to it.
    - Anything else (a directory, a block device, a socket): OutputError.
    - The input itself (``source``, by device and inode, so through hard and
      symbolic links too): OutputError, with or without ``overwrite``.

    On any error, KeyboardInterrupt and the CLI's termination signals included,
    the temporary file is removed and ``path`` is left as it was; so it is on a
    crash, under the CLI's crash guard. With ``like``, a new file gets that
    file's mode and times, as gzip does. Errors name ``path``, not the
    temporary file.
    """
    shown = os.fspath(path)
    # Through symbolic links: the file they lead to is what is written, and they stay.
    target = Path(os.path.realpath(path))
    st = _output_stat(target)
    if st is not None and source is not None and same_file(st, source):
        raise OutputError(shown, "refusing to write the output over its own input")
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        try:
            fd = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _naming(exc, shown) from None
        with _Output(fd, shown, regular=False) as f:
            yield f
        return
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = (
            "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file, a FIFO or a character device"
        )
        raise OutputError(shown, f"{what}; refusing to write there")
    if st is not None and not overwrite:
        raise FileExistsError(errno.EEXIST, "already exists (use -f to overwrite)", shown)
    try:
        fd, tmp = _create_beside(target)
    except OSError as exc:
        raise _naming(exc, shown) from None
    # A crash below Python (llama.cpp dying from a signal) skips the except
    # clause; the CLI's crash guard removes the temporary file then.
    with remove_on_crash(tmp):
        try:
            with _Output(fd, shown, regular=True) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if like is not None:
                shutil.copystat(like, tmp)
            if st is not None:
                os.replace(tmp, target)
            else:
                os.link(tmp, target)  # fails if a file appeared meanwhile: never clobber
                tmp.unlink()
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.filename in (str(tmp), str(target)):
                raise _naming(exc, shown) from None
            raise
