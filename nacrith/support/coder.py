"""Arithmetic Encoder/Decoder over integer CDFs (total 2^24): symbols in, bytes out.

The coder is a queue: symbols decode in the order they were encoded. It knows
nothing of models; callers pass either a ready CDF or a float score vector
that the C side turns into a CDF (``encode_scores``/``decode_scores``), so
Python crosses into C once per symbol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nacrith._native import CDF_BITS, CDF_TOTAL, MAX_SYMBOLS, check, ffi, lib
from nacrith.errors import CoderError
from nacrith.settings import check_temperature

__all__ = ["CDF_BITS", "CDF_TOTAL", "MAX_SYMBOLS", "Decoder", "Encoder", "ScoreCDF", "cdf_from_scores"]


def _u32_array(cdf: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(cdf, dtype=np.uint32)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError("a CDF needs at least two entries")
    return arr


class ScoreCDF:
    """Scratch space and settings for turning score vectors into CDFs.

    ``scores`` is a C ``float *`` of ``n_scores`` entries (for example the
    logits pointer of llama.cpp, used in place without a copy); the alphabet
    is those symbols plus ``n_extra`` symbols of frequency 1.
    """

    def __init__(self, n_scores: int, n_extra: int = 0, temperature: float = 1.0) -> None:
        if n_scores < 0 or n_extra < 0 or not 0 < n_scores + n_extra <= MAX_SYMBOLS:
            raise ValueError(f"alphabet of {n_scores}+{n_extra} symbols is out of range")
        check_temperature(temperature)
        self.n_scores = n_scores
        self.n_extra = n_extra
        self.n_symbols = n_scores + n_extra
        self.inv_temp = 1.0 / float(temperature)
        self.cdf = ffi.new("uint32_t[]", self.n_symbols + 1)
        self._freq = ffi.new("uint32_t *")
        self._prob = ffi.new("double *")
        self._sym = ffi.new("uint32_t *")


def scores_pointer(scores: object) -> object:
    """Accept a cffi float pointer, an integer address or a float32 numpy array."""
    if isinstance(scores, int):
        return ffi.cast("float *", scores)
    if isinstance(scores, np.ndarray):
        if scores.dtype != np.float32 or not scores.flags.c_contiguous:
            raise TypeError("scores must be a C-contiguous float32 array")
        return ffi.from_buffer("float[]", scores)
    return scores


def cdf_from_scores(scores: np.ndarray, n_extra: int = 0, temperature: float = 1.0) -> np.ndarray:
    """The integer CDF (n + n_extra + 1 entries) that the coder uses for these scores."""
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    space = ScoreCDF(scores.size, n_extra, temperature)
    status = lib.nc_cdf_from_logits(
        scores_pointer(scores), space.n_scores, n_extra, space.inv_temp, space.cdf, -1, ffi.NULL
    )
    check(status, "building a CDF")
    return np.frombuffer(ffi.buffer(space.cdf), dtype=np.uint32).copy()


class Encoder:
    """Encodes symbols; ``finish()`` returns the coded bytes."""

    def __init__(self) -> None:
        self._enc = ffi.gc(lib.nc_encoder_new(), lib.nc_encoder_free)
        if self._enc == ffi.NULL:
            raise MemoryError("cannot allocate an encoder")
        self._finished = False

    @property
    def c_encoder(self) -> object:
        """The C encoder, for code that drives it directly (the ensemble)."""
        return self._enc

    def encode(self, cdf: Sequence[int] | np.ndarray, symbol: int) -> None:
        arr = _u32_array(cdf)
        check(
            lib.nc_encoder_encode(self._enc, ffi.from_buffer("uint32_t[]", arr), arr.size - 1, symbol),
            "encoding a symbol",
        )

    def encode_scores(self, space: ScoreCDF, scores: object, symbol: int) -> tuple[int, float]:
        """Encode ``symbol`` under the CDF of ``scores``; returns (frequency, unquantised probability)."""
        status = lib.nc_encode_logits(
            self._enc,
            scores_pointer(scores),
            space.n_scores,
            space.n_extra,
            space.inv_temp,
            space.cdf,
            symbol,
            space._freq,
            space._prob,
        )
        check(status, "encoding a symbol")
        return space._freq[0], space._prob[0]

    def finish(self) -> bytes:
        if self._finished:
            raise CoderError("encoder already finished")
        check(lib.nc_encoder_finish(self._enc), "finishing the coded stream")
        self._finished = True
        return bytes(ffi.buffer(lib.nc_encoder_data(self._enc), lib.nc_encoder_size(self._enc)))


class Decoder:
    """Decodes symbols from bytes made by ``Encoder``, given the same CDFs in the same order."""

    def __init__(self, data: bytes) -> None:
        self._dec = ffi.gc(lib.nc_decoder_new(data, len(data)), lib.nc_decoder_free)
        if self._dec == ffi.NULL:
            raise MemoryError("cannot allocate a decoder")
        self._sym = ffi.new("uint32_t *")
        self._freq = ffi.new("uint32_t *")

    @property
    def c_decoder(self) -> object:
        """The C decoder, for code that drives it directly (the ensemble)."""
        return self._dec

    def decode(self, cdf: Sequence[int] | np.ndarray) -> int:
        arr = _u32_array(cdf)
        status = lib.nc_decoder_decode(self._dec, ffi.from_buffer("uint32_t[]", arr), arr.size - 1, self._sym)
        check(status, "decoding a symbol")
        return int(self._sym[0])

    def decode_scores(self, space: ScoreCDF, scores: object) -> tuple[int, int]:
        """Decode one symbol under the CDF of ``scores``; returns (symbol, frequency)."""
        status = lib.nc_decode_logits(
            self._dec,
            scores_pointer(scores),
            space.n_scores,
            space.n_extra,
            space.inv_temp,
            space.cdf,
            self._sym,
            self._freq,
        )
        check(status, "decoding a symbol")
        return int(self._sym[0]), int(self._freq[0])

    def check_end(self) -> None:
        """Raise CoderError unless the coded bytes were consumed exactly."""
        check(lib.nc_decoder_check_end(self._dec), "checking the end of the coded stream")
