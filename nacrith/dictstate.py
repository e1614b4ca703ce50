"""A dictionary's learned state: its parts, and how a dictionary file of
version 2 packs it (docs/dictionary.md, "Learned state").

Most of the state is what the n-gram, match and unigram models counted of
the samples: tens of megabytes of hash tables, and 90% of a version-1 file,
which stores the state whole. Those tables are a function of the samples'
tokens, and counting tokens (nc_ens_observe) changes them exactly as coding
them does, so version 2 stores the tokens (a tenth of the tables' size) and
counts them again when the dictionary is loaded: the **replayed** state.
What only coding teaches (the bias head, mixer, APM, the match model's hit
rates) is stored as its difference from the replayed state (XOR, so the
counted parts are zeros), and a CRC32 of the whole state tells whether the
replay rebuilt it: a nacrith that counts differently refuses the dictionary
rather than code with another state.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from typing import cast

import numpy as np
import zstandard

from nacrith._native import ffi, lib
from nacrith.engine import count_samples
from nacrith.errors import DictionaryError
from nacrith.format import ESCAPE_SYMBOLS, _Cursor, pack_varint
from nacrith.mixer import ensemble_params
from nacrith.settings import Arithmetic, Coding, EnsembleSettings

__all__ = [
    "pack_samples",
    "pack_state",
    "rebuild_state",
    "replayed_state",
    "state_difference",
    "state_regions",
    "unpack_samples",
]

#: Compression level of a dictionary's parts: built once, read often.
LEVEL = 19
#: Most bytes of samples a dictionary may carry (a reader's bound on a damaged file).
MAX_SAMPLES = 1 << 31


def state_regions(vocab_size: int, arith: int, ensemble: EnsembleSettings) -> list[tuple[str, int]]:
    """The learned state's regions in order, each named and sized, as the
    reference ensemble (csrc/mix.c, nc_ens_regions) lays them out."""
    raw = lib.nc_ens_new_lanes(ensemble_params(ensemble), vocab_size, ESCAPE_SYMBOLS, 1.0, 1, arith)
    if raw == ffi.NULL:
        raise MemoryError("cannot allocate an ensemble (settings out of range or out of memory)")
    ens = ffi.gc(raw, lib.nc_ens_free)
    count = lib.nc_ens_regions(ens, ffi.NULL, 0)
    regions = ffi.new("nc_region[]", count)
    lib.nc_ens_regions(ens, regions, count)
    sizes = [int(regions[i].size) for i in range(count)]
    names = _region_names(ensemble)
    extra = len(sizes) - len(names)  # the context heads come last, two regions each
    if extra < 0 or extra % 2:
        names = [f"region {i}" for i in range(len(sizes))]  # a layout this list does not know
    else:
        names += [f"context head {h} {part}" for h in range(extra // 2) for part in ("values", "gradients")]
    return list(zip(names, sizes, strict=True))


def _region_names(e: EnsembleSettings) -> list[str]:
    """nc_ens_regions' order, context heads aside (they come last)."""
    names: list[str] = []
    if e.ngram:
        for order in range(e.ngram_min_order, e.ngram_max_order + 1):
            names += [f"n-gram order {order} {part}" for part in ("checks", "counts", "tokens")]
    if e.match:
        names += [
            "match index",
            "match hit rates",
            "match event counts",
            "match history",
            "match history length",
        ]
    if e.bias:
        for arith in Arithmetic:
            names += [
                f"bias values (arithmetic {int(arith)})",
                f"bias gradients (arithmetic {int(arith)})",
                f"bias scale (arithmetic {int(arith)})",
                f"bias scale gradient (arithmetic {int(arith)})",
            ]
    names += ["mixer weights", "APM tables"]
    if e.skip:
        names.append("fallback unigram counts")
    names.append("tokens seen")
    return names


def replayed_state(
    vocab_size: int, arith: int, ensemble: EnsembleSettings, samples: Sequence[Sequence[int] | np.ndarray]
) -> bytes:
    """A fresh ensemble's state after counting ``samples`` in this order."""
    # count_samples takes each sample as numpy takes it: a list or an array of tokens.
    as_lists = cast(Sequence[Sequence[int]], samples)
    return count_samples(vocab_size, ESCAPE_SYMBOLS, ensemble, Coding(arith=arith), as_lists)


def state_difference(state: bytes, replayed: bytes) -> bytes:
    """``state`` XOR ``replayed``: zeros where the replay rebuilds the state. Its own inverse."""
    if len(state) != len(replayed):
        raise DictionaryError("corrupt dictionary: a learned state not of its ensemble's size")
    kind = np.uint64 if len(state) % 8 == 0 else np.uint8
    return np.bitwise_xor(np.frombuffer(state, kind), np.frombuffer(replayed, kind)).tobytes()


def pack_state(
    state: bytes, samples: Sequence[Sequence[int]], vocab_size: int, arith: int, ensemble: EnsembleSettings
) -> tuple[bytes, bytes, int]:
    """Version 2's parts of a learned state that counting ``samples`` (in this
    order, from a fresh ensemble) went into: the packed samples, the packed
    difference from their replay, and the state's CRC32."""
    replayed = replayed_state(vocab_size, arith, ensemble, samples)
    difference = zstandard.ZstdCompressor(level=LEVEL).compress(state_difference(state, replayed))
    return pack_samples(samples, vocab_size), difference, zlib.crc32(state)


def rebuild_state(
    vocab_size: int,
    arith: int,
    ensemble: EnsembleSettings,
    packed_samples: bytes,
    packed_difference: bytes,
    state_size: int,
    check: int,
) -> bytes:
    """A version-2 dictionary's learned state: its samples counted again, and
    the stored difference applied; DictionaryError unless its CRC32 is ``check``."""
    samples = unpack_samples(packed_samples, vocab_size)
    difference = _decompress(packed_difference, state_size, "learned state")
    state = state_difference(difference, replayed_state(vocab_size, arith, ensemble, samples))
    if zlib.crc32(state) != check:
        raise DictionaryError(
            "the dictionary's learned state does not rebuild here (counted by another version of nacrith?)"
        )
    return state


def _token_width(vocab_size: int) -> int:
    return 2 if vocab_size <= 1 << 16 else 4


def pack_samples(samples: Sequence[Sequence[int]], vocab_size: int) -> bytes:
    """Token sequences, one Zstandard frame: varint count, a varint length per
    sequence, then every token as a little-endian integer of 2 bytes (4 when
    the vocabulary has more than 65,536 tokens). Tokens outside the vocabulary
    (escapes) are left out: counting skips them."""
    kept = [np.asarray([t for t in s if t < vocab_size], dtype=np.uint32) for s in samples]
    width = np.dtype("<u2") if _token_width(vocab_size) == 2 else np.dtype("<u4")
    out = bytearray(pack_varint(len(kept)))
    for tokens in kept:
        out += pack_varint(len(tokens))
    for tokens in kept:
        out += tokens.astype(width).tobytes()
    return zstandard.ZstdCompressor(level=LEVEL).compress(bytes(out))


def unpack_samples(packed: bytes, vocab_size: int) -> list[np.ndarray]:
    data = _decompress(packed, None, "samples")
    cur = _Cursor(io.BytesIO(data), "dictionary samples")
    try:
        lengths = [cur.varint() for _ in range(min(cur.varint(), len(data)))]
    except Exception as exc:
        raise DictionaryError(f"corrupt dictionary: {exc}") from None
    width = _token_width(vocab_size)
    start = len(cur.seen)
    if start + width * sum(lengths) != len(data):
        raise DictionaryError("corrupt dictionary: its samples are not as long as they say")
    tokens = np.frombuffer(data, np.dtype("<u2") if width == 2 else np.dtype("<u4"), offset=start)
    tokens = tokens.astype(np.uint32)
    if len(tokens) and int(tokens.max()) >= vocab_size:
        raise DictionaryError("corrupt dictionary: a sample's token out of the vocabulary")
    bounds = np.cumsum([0, *lengths])
    return [tokens[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]


def _decompress(packed: bytes, size: int | None, what: str) -> bytes:
    try:
        data = zstandard.ZstdDecompressor().decompress(packed, max_output_size=size or MAX_SAMPLES)
    except zstandard.ZstdError as exc:
        raise DictionaryError(f"corrupt dictionary: its {what}: {exc}") from None
    if size is not None and len(data) != size:
        raise DictionaryError(f"corrupt dictionary: its {what} is not of the size it says")
    return data
