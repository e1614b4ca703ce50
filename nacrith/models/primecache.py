"""Primed sequences kept on disk, so that a dictionary's priming text is
evaluated once per machine, not once per command.

A dictionary's frames start from a window holding its priming text (about a
thousand tokens, several seconds of llama.cpp on one core). A process keeps
the evaluated window in memory (``LlamaPredictor.prime``); this cache keeps
it between processes, so that ``nacrith compress --dict`` on a short message
costs the message's own tokens.

An entry is llama.cpp's saved state of one sequence (llama_state_seq_get_data),
which restores the same cells bit for bit, under a header that names its key
and checksums it::

    magic "\\x89NCP" | version (1 byte) | key (32 bytes) | size (8 bytes, LE)
    | CRC32 of the state (4 bytes, LE) | the state

The key (``LlamaPredictor._priming_key``) is a SHA-256 over everything the
saved cells depend on: model, llama.cpp build, context parameters, the
priming tokens. An entry whose header does not match its key, size or
checksum is ignored (and then rewritten), never restored: a restored state
that differed from an evaluated one would make files their decoder cannot
replay. Entries are written to a temporary file and renamed, so a reader
never sees half of one, and the least recently used go once the cache
passes ``MAX_BYTES``. The cache is never a reason for a command to fail: an
unreadable or unwritable one costs the priming's time, nothing else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import time
import zlib
from pathlib import Path

__all__ = ["MAX_BYTES", "PrimedStateCache"]

MAGIC = b"\x89NCP"
VERSION = 1
_HEADER = struct.Struct("<4sB32sQI")
SUFFIX = ".primed"
#: Most bytes the cache holds: about ten primings of 1,024 tokens of SmolLM2-135M (23 MB each).
MAX_BYTES = 256 << 20
#: A temporary file older than this was left by a process that died while writing it.
STALE_TEMP_SECONDS = 3600.0


class PrimedStateCache:
    """Saved primed sequences in ``directory``, one file per key, at most ``max_bytes`` in all."""

    def __init__(self, directory: Path, max_bytes: int = MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def path(self, key: bytes) -> Path:
        return self.directory / (key.hex() + SUFFIX)

    def load(self, key: bytes) -> bytearray | None:
        """The state saved under ``key``, or None when there is none or it fails its checks."""
        path = self.path(key)
        try:
            with path.open("rb") as f:
                head = f.read(_HEADER.size)
                if len(head) != _HEADER.size:
                    return None
                magic, version, found_key, size, crc = _HEADER.unpack(head)
                if (magic, version, found_key) != (MAGIC, VERSION, key):
                    return None
                if size != os.fstat(f.fileno()).st_size - _HEADER.size:
                    return None
                state = bytearray(size)
                if f.readinto(state) != size or zlib.crc32(state) != crc:
                    return None
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: evicted last
            return state
        except (OSError, MemoryError):
            return None

    def store(self, key: bytes, state: memoryview | bytes | bytearray) -> None:
        """Save ``state`` under ``key``, replacing what was there; quietly nothing on any error."""
        data = memoryview(state).cast("B")
        if _HEADER.size + len(data) > self.max_bytes:
            return
        header = _HEADER.pack(MAGIC, VERSION, key, len(data), zlib.crc32(data))
        tmp = self.directory / f".{key.hex()}.{secrets.token_hex(4)}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tmp.open("xb") as f:
                f.write(header)
                f.write(data)
            # Two processes may store the same key at once: each renames a
            # whole file of the same bytes into place.
            os.replace(tmp, self.path(key))
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self.evict(keep=self.path(key))

    def evict(self, keep: Path | None = None) -> None:
        """Remove the least recently used entries until the cache fits ``max_bytes``,
        and temporary files that dying processes left; never ``keep``."""
        try:
            entries: list[tuple[float, int, Path]] = []
            now = time.time()
            for path in self.directory.iterdir():
                name = path.name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    if name.endswith(SUFFIX) and not name.startswith("."):
                        entries.append((st.st_mtime, st.st_size, path))
                    elif (
                        name.startswith(".")
                        and name.endswith(".tmp")
                        and now - st.st_mtime > STALE_TEMP_SECONDS
                    ):
                        path.unlink()
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: (e[0], e[2].name)):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
