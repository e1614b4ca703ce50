"""Dictionaries: what a model and its ensemble know of a domain before a file starts.

A dictionary holds a priming text, which every neural frame's window starts
with, and the ensemble's learned state (n-gram counts, match history, bias
head, mixer, APM) after coding sample messages of the domain, which every
frame starts from instead of a cold ensemble. A short message then costs
about what it would cost after those samples. ``nacrith dict build``
(dictbuild.py) makes one; docs/dictionary.md specifies the file.

A file made with a dictionary names it by its fingerprint (the first bytes of
the SHA-256 of the dictionary file) and decodes only with the same one:
decoding without it is an error naming the fingerprint, never wrong bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from nacrith.engine import Primer
from nacrith.errors import DictionaryError
from nacrith.files import search_path
from nacrith.format import (
    DICT_ID_SIZE,
    MODEL_ID_SIZE,
    V2_NO_ENSEMBLE,
    _Cursor,
    pack_ensemble,
    pack_varint,
    unpack_ensemble,
)
from nacrith.settings import ARITHMETICS, EnsembleSettings

__all__ = ["DICTS_ENV", "Dictionary", "dictionary_dirs", "find_dictionary"]

MAGIC = b"\x89NCD"
VERSION = 1
#: Directories searched for a file's dictionary, besides the default one.
DICTS_ENV = "NACRITH_DICTS"
#: A learned state larger than this is not ours (the default ensemble's is about 70 MB).
MAX_STATE = 1 << 31


@dataclass(frozen=True)
class Dictionary:
    """A dictionary as its file holds it. ``state`` is the learned state's
    bytes as zstd compressed them (``learned`` unpacks them once)."""

    model_id: bytes
    vocab_size: int
    arith: int
    ensemble: EnsembleSettings | None
    tokens: tuple[int, ...]
    state_size: int = 0
    packed_state: bytes = b""
    #: The file's bytes, fingerprint and unpacked state, each made once.
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def fingerprint(self) -> bytes:
        """What a file made with it records (Dict_Id)."""
        if "fingerprint" not in self._cache:
            self._cache["fingerprint"] = _fingerprint(self.pack())
        return self._cache["fingerprint"]

    @property
    def learned(self) -> bytes | None:
        """The ensemble's learned state, unpacked on first use and kept."""
        if not self.state_size:
            return None
        if "learned" not in self._cache:
            self._cache["learned"] = zstandard.ZstdDecompressor().decompress(
                self.packed_state, self.state_size
            )
        return self._cache["learned"]

    def __reduce__(self) -> tuple[object, tuple[bytes, bytes]]:
        # Sent to a worker with every frame: the worker keeps one copy per
        # dictionary (_interned), whose state it unpacks once.
        return _interned, (self.fingerprint, self.pack())

    def primer(self) -> Primer:
        return Primer(self.tokens, self.learned)

    @classmethod
    def make(
        cls,
        model_sha256: bytes,
        vocab_size: int,
        arith: int,
        ensemble: EnsembleSettings | None,
        tokens: Sequence[int],
        state: bytes | None,
    ) -> Dictionary:
        packed = zstandard.ZstdCompressor(level=9).compress(state) if state else b""
        size = len(state or b"")
        return cls(model_sha256[:MODEL_ID_SIZE], vocab_size, arith, ensemble, tuple(tokens), size, packed)

    def pack(self) -> bytes:
        if "packed" not in self._cache:
            self._cache["packed"] = self._pack()
        return self._cache["packed"]

    def _pack(self) -> bytes:
        ensemble = V2_NO_ENSEMBLE if self.ensemble is None else pack_ensemble(self.ensemble)
        out = bytearray(MAGIC + bytes([VERSION]) + self.model_id)
        out += pack_varint(self.vocab_size) + pack_varint(self.arith)
        out += pack_varint(len(ensemble)) + ensemble
        out += pack_varint(len(self.tokens)) + b"".join(pack_varint(t) for t in self.tokens)
        out += pack_varint(self.state_size)
        if self.state_size:
            out += pack_varint(len(self.packed_state)) + self.packed_state
        return bytes(out) + struct.pack("<I", zlib.crc32(out))

    @classmethod
    def read(cls, source: str | os.PathLike[str] | bytes) -> Dictionary:
        """A dictionary from its file (or the file's bytes); DictionaryError when it is not one."""
        if isinstance(source, bytes):
            data, name = source, "dictionary"
        else:
            name = str(source)
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise DictionaryError(f"{name}: cannot read the dictionary: {exc.strerror}") from None
        try:
            return _parse(data)
        except DictionaryError as exc:
            raise DictionaryError(f"{name}: {exc}") from None

    def check_model(self, sha256: bytes, vocab_size: int) -> None:
        if not sha256.startswith(self.model_id) or vocab_size != self.vocab_size:
            raise DictionaryError(
                f"dictionary {self.fingerprint.hex()} was built for model {self.model_id.hex()}, "
                f"not for {sha256[:MODEL_ID_SIZE].hex()}"
            )


def _fingerprint(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:DICT_ID_SIZE]


#: Dictionaries this process has been sent, by fingerprint (a few at most).
_INTERNED: dict[bytes, Dictionary] = {}
_INTERNED_MAX = 8


def _interned(fingerprint: bytes, data: bytes) -> Dictionary:
    """The process's copy of a dictionary; its bytes are parsed (and their
    fingerprint checked) only the first time."""
    found = _INTERNED.get(fingerprint)
    if found is None:
        if _fingerprint(data) != fingerprint:
            raise DictionaryError(f"dictionary {fingerprint.hex()} arrived damaged")
        while len(_INTERNED) >= _INTERNED_MAX:
            _INTERNED.pop(next(iter(_INTERNED)))
        found = _INTERNED[fingerprint] = _parse(data)
    return found


def _parse(data: bytes) -> Dictionary:
    if len(data) < len(MAGIC) + 1 or data[: len(MAGIC)] != MAGIC:
        raise DictionaryError("not a Nacrith dictionary")
    if data[len(MAGIC)] != VERSION:
        raise DictionaryError(f"dictionary version {data[len(MAGIC)]}; this nacrith reads version {VERSION}")
    if len(data) < len(MAGIC) + 5 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise DictionaryError("the dictionary is truncated or corrupt (checksum mismatch)")
    cur = _Cursor(io.BytesIO(data[len(MAGIC) + 1 : -4]), "dictionary")
    try:
        model_id = cur.take(MODEL_ID_SIZE)
        vocab_size, arith = cur.varint(), cur.varint()
        ensemble_value = cur.take(cur.varint())
        count = cur.varint()
        if count > len(data):
            raise DictionaryError("corrupt dictionary: more tokens than bytes")
        tokens = tuple(cur.varint() for _ in range(count))
        state_size = cur.varint()
        packed = cur.take(cur.varint()) if state_size else b""
    except Exception as exc:  # FormatError, TruncatedError: the checksum matched, so the writer erred
        if isinstance(exc, DictionaryError):
            raise
        raise DictionaryError(f"corrupt dictionary: {exc}") from None
    if len(cur.seen) != len(data) - len(MAGIC) - 5:
        raise DictionaryError("corrupt dictionary: bytes after its fields")
    in_range = arith in ARITHMETICS and all(t < vocab_size for t in tokens) and state_size <= MAX_STATE
    if not tokens or not in_range:
        raise DictionaryError("corrupt dictionary: a field out of range")
    try:
        ensemble = None if ensemble_value == V2_NO_ENSEMBLE else unpack_ensemble(ensemble_value)
    except Exception as exc:
        raise DictionaryError(f"dictionary's ensemble settings: {exc}") from None
    if state_size and ensemble is None:
        raise DictionaryError("corrupt dictionary: a learned state without an ensemble")
    return Dictionary(model_id, vocab_size, arith, ensemble, tokens, state_size, packed)


def dictionary_dirs() -> list[Path]:
    """Where a file's dictionary is looked for: $NACRITH_DICTS (directories
    separated by the path separator), then ~/.cache/nacrith/dicts."""
    return search_path(DICTS_ENV, "dicts")


def find_dictionary(fingerprint: bytes, known: Iterable[Dictionary] = ()) -> Dictionary:
    """The dictionary of this fingerprint: one of ``known``, else a ``*.ncd`` file
    in dictionary_dirs(). DictionaryError naming the fingerprint when there is none."""
    for d in known:
        if d.fingerprint == fingerprint:
            return d
    for directory in dictionary_dirs():
        for path in sorted(directory.glob("*.ncd")) if directory.is_dir() else ():
            if _file_fingerprint(path, path.stat().st_mtime_ns) == fingerprint:
                return Dictionary.read(path)
    places = ", ".join(str(d) for d in dictionary_dirs())
    raise DictionaryError(
        f"file needs dictionary {fingerprint.hex()}: give it with --dict FILE, or put it in {places}"
    )


@functools.lru_cache(maxsize=256)
def _file_fingerprint(path: Path, mtime_ns: int) -> bytes:
    """A dictionary file's fingerprint, hashed once per version of the file."""
    del mtime_ns  # part of the cache key only
    return _fingerprint(path.read_bytes())
