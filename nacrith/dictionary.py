"""Dictionaries: what a model and its ensemble know of a domain before a file starts.

A dictionary holds a priming text, which every neural frame's window starts
with, and the ensemble's learned state (n-gram counts, match history, bias
head, mixer, APM) after coding sample messages of the domain, which every
frame starts from instead of a cold ensemble. A short message then costs
about what it would cost after those samples. ``nacrith dict build``
(dictbuild.py) makes one; docs/dictionary.md specifies the file.

A file made with a dictionary names it by its fingerprint (the first bytes of
the SHA-256 of the dictionary file) and decodes only with the same one:
decoding without it is an error naming the fingerprint needed, the one
given and where it looked, never wrong bytes.
"""

from __future__ import annotations

import contextlib
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

from nacrith.dictstate import pack_state, rebuild_state
from nacrith.errors import DictionaryError
from nacrith.files import cache_dir, search_path
from nacrith.format import (
    DICT_ID_SIZE,
    MODEL_ID_SIZE,
    V2_NO_ENSEMBLE,
    _Cursor,
    pack_ensemble,
    pack_varint,
    unpack_ensemble,
)
from nacrith.frameparams import Primer
from nacrith.models.primecache import PrimedStateCache
from nacrith.settings import ARITHMETICS, EnsembleSettings

__all__ = [
    "DICTS_ENV",
    "VERSION",
    "VERSIONS",
    "Dictionary",
    "dictionary_dirs",
    "find_dictionary",
    "search_text",
]

MAGIC = b"\x89NCD"
#: The version new dictionaries are written in: 2 stores the samples the
#: n-gram, match and unigram models counted instead of their tables
#: (dictstate.py). Version 1, the whole state, is still read.
VERSION = 2
VERSIONS = (1, 2)
#: Directories searched for a file's dictionary, besides the default one.
DICTS_ENV = "NACRITH_DICTS"
#: A learned state larger than this is not ours (the default ensemble's is about 70 MB).
MAX_STATE = 1 << 31
#: Where rebuilt learned states are kept (beside the primed windows: one bound for both).
LEARNED_CACHE = "primed"


@dataclass(frozen=True)
class Dictionary:
    """A dictionary as its file holds it (docs/dictionary.md). ``learned``
    unpacks the learned state, once."""

    model_id: bytes
    vocab_size: int
    arith: int
    ensemble: EnsembleSettings | None
    tokens: tuple[int, ...]
    state_size: int = 0
    #: Version 1: the learned state, one Zstandard frame. Version 2: its
    #: difference from the replayed samples (dictstate.py), one Zstandard frame.
    packed_state: bytes = b""
    version: int = VERSION
    #: Version 2: the samples the n-gram, match and unigram models counted, packed
    #: (dictstate.pack_samples), and the CRC32 of the learned state.
    packed_samples: bytes = b""
    state_check: int = 0
    #: Where it was read from ("--dict NAME" of a message), if from a file.
    source: str | None = field(default=None, compare=False, repr=False)
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
            self._cache["learned"] = _learned_state(self)
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
        counted: Sequence[Sequence[int]] = (),
        version: int = VERSION,
    ) -> Dictionary:
        """A dictionary of this priming text and learned state. ``counted``: the
        token sequences the state's n-gram, match and unigram models counted,
        in the order they were, from a fresh ensemble (version 2 stores them
        instead of those models' tables: the more of the state they explain,
        the smaller the file)."""
        if version not in VERSIONS:
            raise ValueError(f"dictionary version {version}; this nacrith writes {VERSIONS}")
        model_id = model_sha256[:MODEL_ID_SIZE]
        if not state or ensemble is None:
            return cls(model_id, vocab_size, arith, ensemble, tuple(tokens), version=version)
        if version == 1:
            packed = zstandard.ZstdCompressor(level=9).compress(state)
            return cls(model_id, vocab_size, arith, ensemble, tuple(tokens), len(state), packed, version=1)
        samples, difference, check = pack_state(state, counted, vocab_size, arith, ensemble)
        made = cls(
            model_id, vocab_size, arith, ensemble, tuple(tokens), len(state), difference, 2, samples, check
        )
        made._cache["learned"] = state
        return made

    def parts(self) -> list[tuple[str, int]]:
        """Bytes of each part of its file, in file order (docs/dictionary.md),
        for a listing such as ``nacrith info``."""
        checksums = 8 if self.state_size and self.version == 2 else 4  # the state's CRC32 and the file's
        settings = len(self.pack()) - sum(size for _, size in self._data_parts()) - checksums
        return [("header and settings", settings), *self._data_parts(), ("checksums", checksums)]

    def _data_parts(self) -> list[tuple[str, int]]:
        tokens = sum(len(pack_varint(t)) for t in self.tokens)
        parts = [("priming text", tokens)]
        if self.state_size and self.version == 1:
            parts.append(("learned state", len(self.packed_state)))
        elif self.state_size:
            parts += [
                ("counted samples", len(self.packed_samples)),
                ("learned state", len(self.packed_state)),
            ]
        return parts

    def pack(self) -> bytes:
        if "packed" not in self._cache:
            self._cache["packed"] = self._pack()
        return self._cache["packed"]

    def _pack(self) -> bytes:
        ensemble = V2_NO_ENSEMBLE if self.ensemble is None else pack_ensemble(self.ensemble)
        out = bytearray(MAGIC + bytes([self.version]) + self.model_id)
        out += pack_varint(self.vocab_size) + pack_varint(self.arith)
        out += pack_varint(len(ensemble)) + ensemble
        out += pack_varint(len(self.tokens)) + b"".join(pack_varint(t) for t in self.tokens)
        out += pack_varint(self.state_size)
        if self.state_size and self.version == 2:
            out += pack_varint(len(self.packed_samples)) + self.packed_samples
            out += pack_varint(len(self.packed_state)) + self.packed_state
            out += struct.pack("<I", self.state_check)
        elif self.state_size:
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
            return _parse(data, None if isinstance(source, bytes) else name)
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


def _parse(data: bytes, source: str | None = None) -> Dictionary:
    if len(data) < len(MAGIC) + 1 or data[: len(MAGIC)] != MAGIC:
        raise DictionaryError("not a Nacrith dictionary")
    version = data[len(MAGIC)]
    if version not in VERSIONS:
        raise DictionaryError(
            f"dictionary version {version}; this nacrith reads versions {', '.join(map(str, VERSIONS))}"
        )
    if len(data) < len(MAGIC) + 5 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise DictionaryError("the dictionary is truncated or corrupt (checksum mismatch)")
    cur = _Cursor(io.BytesIO(data[len(MAGIC) + 1 : -4]), "dictionary")
    samples, check = b"", 0
    try:
        model_id = cur.take(MODEL_ID_SIZE)
        vocab_size, arith = cur.varint(), cur.varint()
        ensemble_value = cur.take(cur.varint())
        count = cur.varint()
        if count > len(data):
            raise DictionaryError("corrupt dictionary: more tokens than bytes")
        tokens = tuple(cur.varint() for _ in range(count))
        state_size = cur.varint()
        if state_size and version == 2:
            samples = cur.take(cur.varint())
        packed = cur.take(cur.varint()) if state_size else b""
        if state_size and version == 2:
            check = struct.unpack("<I", cur.take(4))[0]
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
    parsed = Dictionary(
        model_id, vocab_size, arith, ensemble, tokens, state_size, packed, version, samples, check, source
    )
    parsed._cache["packed"] = data  # its fingerprint is that of these bytes, whatever a writer would write
    return parsed


def _learned_state(d: Dictionary) -> bytes:
    """A dictionary's learned state: unpacked (version 1), or rebuilt from its
    samples (version 2), which takes a fraction of a second for a large one,
    so the rebuilt state is kept in the user's cache, checked as a primed
    window is (models/primecache.py), and used only when its CRC32 is the
    dictionary's."""
    assert d.ensemble is not None  # _parse and make see to it
    if d.version == 1:
        try:
            return zstandard.ZstdDecompressor().decompress(d.packed_state, d.state_size)
        except zstandard.ZstdError as exc:
            raise DictionaryError(f"corrupt dictionary: its learned state: {exc}") from None
    cache = PrimedStateCache(cache_dir(LEARNED_CACHE))
    key = hashlib.sha256(b"nacrith learned state 1; dictionary " + hashlib.sha256(d.pack()).digest()).digest()
    kept = cache.load(key)
    if kept is not None:
        with contextlib.suppress(zstandard.ZstdError):
            state = zstandard.ZstdDecompressor().decompress(bytes(kept), d.state_size)
            if len(state) == d.state_size and zlib.crc32(state) == d.state_check:
                return state
    try:
        state = rebuild_state(
            d.vocab_size, d.arith, d.ensemble, d.packed_samples, d.packed_state, d.state_size, d.state_check
        )
    except DictionaryError as exc:
        raise DictionaryError(f"{d.source or 'dictionary ' + d.fingerprint.hex()}: {exc}") from None
    cache.store(key, zstandard.ZstdCompressor(level=1).compress(state))
    return state


def dictionary_dirs() -> list[Path]:
    """Where a file's dictionary is looked for: $NACRITH_DICTS (directories
    separated by the path separator), then ~/.cache/nacrith/dicts."""
    return search_path(DICTS_ENV, "dicts")


def find_dictionary(fingerprint: bytes, known: Iterable[Dictionary] = ()) -> Dictionary:
    """The dictionary of this fingerprint: one of ``known``, else a ``*.ncd`` file
    in dictionary_dirs(). DictionaryError when there is none, naming the
    fingerprint needed, those of ``known`` (where they came from), and where it looked."""
    known = list(known)
    for d in known:
        if d.fingerprint == fingerprint:
            return d
    for directory in dictionary_dirs():
        for path in sorted(directory.glob("*.ncd")) if directory.is_dir() else ():
            if _file_fingerprint(path, path.stat().st_mtime_ns) == fingerprint:
                return Dictionary.read(path)
    given = "".join(f", not {d.fingerprint.hex()} ({d.source or 'the dictionary given'})" for d in known)
    raise DictionaryError(
        f"file needs dictionary {fingerprint.hex()}{given}, and no *.ncd file in {search_text()} is it: "
        "give it with --dict FILE"
    )


def search_text() -> str:
    """Where dictionaries are looked for, as a user reads it:
    "$NACRITH_DICTS (/a:/b), /home/u/.cache/nacrith/dicts"."""
    value = os.environ.get(DICTS_ENV, "")
    return f"${DICTS_ENV} ({value or 'not set'}), {cache_dir('dicts')}"


@functools.lru_cache(maxsize=256)
def _file_fingerprint(path: Path, mtime_ns: int) -> bytes:
    """A dictionary file's fingerprint, hashed once per version of the file."""
    del mtime_ns  # part of the cache key only
    return _fingerprint(path.read_bytes())
