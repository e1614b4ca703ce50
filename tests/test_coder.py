"""The C arithmetic coder and the CDF builder, through nacrith.support.coder.

The coder is the one component whose output must never change between
versions or machines: a file written today has to decode with any later
build. Hence the golden vectors at the end, next to the property tests.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nacrith._native import lib
from nacrith.errors import CoderError
from nacrith.support.coder import CDF_TOTAL, MAX_SYMBOLS, Decoder, Encoder, ScoreCDF, cdf_from_scores

# --- helpers ------------------------------------------------------------------


def cdf_of(freqs) -> np.ndarray:
    """The CDF (n + 1 entries) of a frequency vector that sums to CDF_TOTAL."""
    freqs = np.asarray(freqs, dtype=np.int64)
    assert freqs.min() >= 1 and freqs.sum() == CDF_TOTAL
    return np.concatenate([[0], np.cumsum(freqs)]).astype(np.uint32)


def random_freqs(rng: np.random.Generator, n: int, skew: float) -> np.ndarray:
    """n frequencies >= 1 summing to CDF_TOTAL; a larger skew concentrates the mass on few symbols."""
    w = rng.random(n) ** skew + 1e-300
    freqs = 1 + np.floor(w / w.sum() * (CDF_TOTAL - n)).astype(np.int64)
    freqs[rng.integers(n)] += CDF_TOTAL - freqs.sum()
    return freqs


def symbol_at(cdf: np.ndarray, u) -> np.ndarray:
    """The symbol whose interval holds u (0 <= u < CDF_TOTAL): sampling by the CDF's own probabilities."""
    return np.searchsorted(cdf, u, side="right") - 1


def encode_all(cdfs, steps) -> bytes:
    """Encode steps [(cdf index, symbol)] with cdfs and return the coded bytes."""
    enc = Encoder()
    for k, sym in steps:
        enc.encode(cdfs[k], sym)
    return enc.finish()


def decode_all(data: bytes, cdfs, indices) -> list[int]:
    """Decode one symbol per CDF index, then insist the payload was consumed exactly."""
    dec = Decoder(data)
    out = [dec.decode(cdfs[k]) for k in indices]
    dec.check_end()
    return out


def ideal_bits(cdfs, steps) -> float:
    """Sum of -log2(freq / 2^24): the length an ideal coder would produce."""
    return sum(-math.log2((int(cdfs[k][s + 1]) - int(cdfs[k][s])) / CDF_TOTAL) for k, s in steps)


def softmax64(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Reference softmax in float64, with non-finite scores at probability 0."""
    s = scores.astype(np.float64)
    finite = np.isfinite(s)
    p = np.zeros_like(s)
    p[finite] = np.exp((s[finite] - s[finite].max()) / temperature)
    return p / p.sum()


# --- strategies -----------------------------------------------------------------


@st.composite
def small_cdfs(draw) -> np.ndarray:
    """Any CDF of up to 40 symbols: distinct cut points in (0, 2^24), fully shrinkable."""
    cuts = draw(st.sets(st.integers(1, CDF_TOTAL - 1), max_size=39))
    return np.array([0, *sorted(cuts), CDF_TOTAL], dtype=np.uint32)


@st.composite
def large_cdfs(draw) -> np.ndarray:
    """Random CDFs of up to ~2000 symbols, from flat to very skewed."""
    n = draw(st.integers(1, 2000))
    skew = draw(st.sampled_from([0.0, 1.0, 4.0, 30.0, 200.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return cdf_of(random_freqs(np.random.default_rng(seed), n, skew))


@st.composite
def coding_jobs(draw):
    """A pool of CDFs and a sequence of (cdf index, symbol) steps that switch between them.

    Most symbols follow the CDF's own distribution, as a model's would; some
    are chosen uniformly so rare (frequency 1) symbols are coded too.
    """
    cdfs = draw(st.lists(st.one_of(small_cdfs(), large_cdfs()), min_size=1, max_size=4))
    raw = draw(
        st.lists(
            st.tuples(st.integers(0, len(cdfs) - 1), st.integers(0, CDF_TOTAL - 1), st.booleans()),
            max_size=300,
        )
    )
    steps = []
    for k, u, uniform in raw:
        n = len(cdfs[k]) - 1
        steps.append((k, u % n if uniform else int(symbol_at(cdfs[k], u))))
    return cdfs, steps


# --- round trips ----------------------------------------------------------------


@given(coding_jobs())
def test_round_trip_random_cdfs(job):
    """Any valid CDFs and symbols decode back exactly, and the decoder ends where the encoder did."""
    cdfs, steps = job
    data = encode_all(cdfs, steps)
    assert decode_all(data, cdfs, [k for k, _ in steps]) == [s for _, s in steps]


@given(coding_jobs(), st.integers(1, 8))
def test_truncated_or_extended_payload_is_detected(job, cut):
    """Dropping or appending bytes never decodes silently to the original symbols.

    Appended bytes leave the symbols intact (the final point lies in the last
    interval whatever follows it), so it is check_end that must reject them.
    Truncated data may decode other symbols; what it must not do is give back
    the original ones and pass check_end.
    """
    cdfs, steps = job
    data = encode_all(cdfs, steps)
    indices = [k for k, _ in steps]
    symbols = [s for _, s in steps]

    # Zeros are what the decoder reads past the end anyway; other bytes change its input bits.
    for extra in (bytes(cut), bytes(range(1, cut + 1))):
        dec = Decoder(data + extra)
        assert [dec.decode(cdfs[k]) for k in indices] == symbols
        with pytest.raises(CoderError, match="coded data is corrupt"):
            dec.check_end()

    try:
        decoded = decode_all(data[:-cut], cdfs, indices)
    except CoderError:
        return
    assert decoded != symbols


def test_empty_sequence_round_trips():
    """No symbols at all: the encoder still writes its final bits, and check_end accepts them."""
    data = Encoder().finish()
    assert len(data) == 1
    Decoder(data).check_end()
    with pytest.raises(CoderError):
        Decoder(b"").check_end()


def test_one_symbol_alphabet():
    """A symbol of probability 1 costs nothing: thousands of them fit in the one final byte."""
    cdf = np.array([0, CDF_TOTAL], dtype=np.uint32)
    data = encode_all([cdf], [(0, 0)] * 5000)
    assert data == Encoder().finish()
    assert decode_all(data, [cdf], [0] * 5000) == [0] * 5000


def test_dominant_symbol_with_rare_escapes():
    """One symbol at 1 - (n-1)/2^24, the others at frequency 1 (the coder's most extreme CDF).

    Thousands of dominant symbols cost almost nothing; each rare one costs ~24 bits.
    """
    n = 257
    cdf = cdf_of([CDF_TOTAL - (n - 1)] + [1] * (n - 1))
    rng = np.random.default_rng(7)
    steps = [(0, 0)] * 20_000
    for pos in rng.choice(len(steps), size=40, replace=False):
        steps[pos] = (0, int(rng.integers(1, n)))
    steps += [(0, n - 1), (0, 1)]  # rare symbols at both ends of the alphabet, right before the end
    data = encode_all([cdf], steps)
    assert decode_all(data, [cdf], [0] * len(steps)) == [s for _, s in steps]
    ideal = ideal_bits([cdf], steps)
    assert 8 * len(data) <= ideal * 1.001 + 16


def test_only_rare_symbols():
    """The worst case for the coder's precision: every symbol coded has frequency 1."""
    cdf = cdf_of([CDF_TOTAL - 2, 1, 1])
    steps = [(0, 1 + i % 2) for i in range(3000)]
    data = encode_all([cdf], steps)
    assert decode_all(data, [cdf], [0] * len(steps)) == [s for _, s in steps]
    assert 8 * len(data) <= ideal_bits([cdf], steps) * 1.001 + 16


def test_flat_alphabet_of_2_17_symbols():
    """A flat 2^17-symbol alphabet: exactly 17 bits a symbol."""
    n = 1 << 17
    cdf = (np.arange(n + 1, dtype=np.uint64) * (CDF_TOTAL // n)).astype(np.uint32)
    rng = np.random.default_rng(3)
    symbols = [int(s) for s in rng.integers(0, n, size=3000)] + [0, n - 1]
    data = encode_all([cdf], [(0, s) for s in symbols])
    assert decode_all(data, [cdf], [0] * len(symbols)) == symbols
    assert abs(8 * len(data) - 17 * len(symbols)) <= 16


def test_coding_efficiency_long_sequence():
    """Over a long sequence the output is within 0.1% + 16 bits of sum(-log2 p), and not below it.

    Symbols are drawn from each CDF's own distribution, from several CDFs of
    different shapes, so this measures the coder's loss on realistic input.
    """
    rng = np.random.default_rng(12345)
    shapes = [(2, 1.0), (16, 4.0), (300, 10.0), (2000, 1.0), (50_000, 40.0), (256, 0.0)]
    cdfs = [cdf_of(random_freqs(rng, n, skew)) for n, skew in shapes]
    which = rng.integers(0, len(cdfs), size=30_000)
    u = rng.integers(0, CDF_TOTAL, size=len(which))
    steps = [(int(k), int(symbol_at(cdfs[k], x))) for k, x in zip(which, u, strict=True)]

    data = encode_all(cdfs, steps)
    ideal = ideal_bits(cdfs, steps)
    bits = 8 * len(data)
    assert ideal > 50_000  # the sequence carries real information
    assert ideal - 8 <= bits <= ideal * 1.001 + 16
    assert decode_all(data, cdfs, which.tolist()) == [s for _, s in steps]


# --- misuse ---------------------------------------------------------------------


def test_encoder_rejects_invalid_arguments():
    """Broken preconditions raise CoderError (or ValueError for a malformed array) and code nothing."""
    cdf = cdf_of([CDF_TOTAL // 2, CDF_TOTAL // 2])
    enc = Encoder()
    with pytest.raises(CoderError, match="invalid argument"):
        enc.encode(cdf, 2)  # symbol outside the alphabet
    with pytest.raises(CoderError, match="invalid argument"):
        enc.encode(np.array([0, 10, CDF_TOTAL - 1], dtype=np.uint32), 0)  # total is not 2^24
    with pytest.raises(CoderError, match="invalid argument"):
        enc.encode(np.array([0, 10, 10, CDF_TOTAL], dtype=np.uint32), 1)  # zero-frequency symbol
    with pytest.raises(ValueError, match="at least two entries"):
        enc.encode([0], 0)
    # The failed calls left the encoder usable.
    enc.encode(cdf, 1)
    assert decode_all(enc.finish(), [cdf], [0]) == [1]


def test_encoder_used_after_finish():
    enc = Encoder()
    enc.finish()
    with pytest.raises(CoderError, match="already finished"):
        enc.finish()
    with pytest.raises(CoderError, match="out of order"):
        enc.encode([0, CDF_TOTAL], 0)


def test_decoder_rejects_invalid_cdf():
    dec = Decoder(b"\x00" * 8)
    with pytest.raises(CoderError, match="invalid argument"):
        dec.decode(np.array([0, 5, CDF_TOTAL - 1], dtype=np.uint32))
    with pytest.raises(CoderError, match="invalid argument"):
        dec.decode(np.array([1, 5, CDF_TOTAL], dtype=np.uint32))


# --- garbage input --------------------------------------------------------------


@given(st.binary(max_size=64), st.lists(st.one_of(small_cdfs(), large_cdfs()), min_size=1, max_size=3))
def test_decoder_on_garbage_never_crashes(data, cdfs):
    """Random bytes decode to in-range symbols until the decoder reports corruption; never worse."""
    dec = Decoder(data)
    for i in range(200):
        cdf = cdfs[i % len(cdfs)]
        try:
            sym = dec.decode(cdf)
        except CoderError as exc:
            assert "corrupt" in str(exc)
            break
        assert 0 <= sym < len(cdf) - 1
    try:
        dec.check_end()
    except CoderError as exc:
        assert "corrupt" in str(exc)


def test_decoder_stops_after_reading_past_the_end():
    """A decoder fed fewer bytes than its symbols need reports corruption instead of running on zeros."""
    n = 1 << 16
    flat = (np.arange(n + 1, dtype=np.uint64) * (CDF_TOTAL // n)).astype(np.uint32)
    dec = Decoder(b"\xff\x00\xff")
    with pytest.raises(CoderError, match="corrupt"):
        for _ in range(10):  # 16 bits a symbol: 24 bits of input run out after two symbols
            dec.decode(flat)


# --- CDFs from scores -----------------------------------------------------------


def assert_valid_cdf(cdf: np.ndarray, n_symbols: int) -> np.ndarray:
    """The invariants the coder relies on; returns the frequencies."""
    assert cdf.dtype == np.uint32
    assert len(cdf) == n_symbols + 1
    assert cdf[0] == 0 and cdf[-1] == CDF_TOTAL
    freqs = np.diff(cdf.astype(np.int64))
    assert freqs.min() >= 1  # every symbol codable, hence strictly increasing
    return freqs


score_arrays = hnp.arrays(
    np.float32,
    st.integers(1, 300),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
)


@given(score_arrays, st.integers(0, 300), st.sampled_from([0.05, 0.5, 1.0, 1.7, 20.0]))
def test_cdf_from_scores_invariants(scores, n_extra, temperature):
    """Total exactly 2^24, every symbol >= 1, extras at 1, floor quantisation, remainder to the argmax."""
    cdf = cdf_from_scores(scores, n_extra, temperature)
    n = len(scores)
    freqs = assert_valid_cdf(cdf, n + n_extra)
    finite = np.isfinite(scores)
    if not finite.any():
        # No usable score: equal mass for every symbol, the rounding remainder to symbol 0.
        assert freqs.max() - freqs.min() < n + n_extra
        assert freqs[0] == freqs.max()
        return
    assert (freqs[n:] == 1).all()  # escapes: frequency exactly 1
    assert (freqs[:n][~finite] == 1).all()  # NaN and +-inf: probability 0
    # Each symbol gets 1 + floor(p * (2^24 - nsym)); only the first top-scoring symbol gets more.
    top = int(np.flatnonzero(finite & (scores == scores[finite].max()))[0])
    expected = 1 + softmax64(scores, temperature) * (CDF_TOTAL - n - n_extra)
    excess = freqs[:n] - expected
    others = np.arange(n) != top
    assert (excess[others] > -1.001).all() and (excess[others] < 0.001).all()
    assert -1.001 < excess[top] < n + n_extra
    assert freqs[top] == freqs.max()


def test_cdf_from_scores_is_deterministic():
    """The same scores give the identical CDF, whatever the array's layout or dtype."""
    rng = np.random.default_rng(5)
    scores = (rng.standard_normal(50_000) * 4).astype(np.float32)
    first = cdf_from_scores(scores, 256)
    assert np.array_equal(first, cdf_from_scores(scores.copy(), 256))
    assert np.array_equal(first, cdf_from_scores(scores.astype(np.float64), 256))  # converted to float32
    strided = np.empty(2 * len(scores), dtype=np.float32)
    strided[::2] = scores
    assert np.array_equal(first, cdf_from_scores(strided[::2], 256))


def test_cdf_from_scores_non_finite():
    scores = np.array([np.nan, 1.0, np.inf, -np.inf, 2.0], dtype=np.float32)
    freqs = np.diff(cdf_from_scores(scores, 3).astype(np.int64))
    assert freqs[[0, 2, 3, 5, 6, 7]].tolist() == [1] * 6
    p = math.exp(1) / (math.exp(1) + math.exp(2))
    assert freqs[1] == 1 + math.floor(p * (CDF_TOTAL - 8))
    assert freqs[4] == CDF_TOTAL - freqs[:4].sum() - freqs[5:].sum()

    # Nothing finite: near-uniform over all symbols, escapes included.
    freqs = np.diff(
        cdf_from_scores(np.array([np.nan, -np.inf, np.inf], dtype=np.float32), 2).astype(np.int64)
    )
    assert freqs.tolist() == [CDF_TOTAL - 4 * (CDF_TOTAL // 5)] + [CDF_TOTAL // 5] * 4

    # No scores at all, only escapes: uniform too.
    assert np.diff(cdf_from_scores(np.zeros(0, dtype=np.float32), 4)).tolist() == [CDF_TOTAL // 4] * 4


def test_cdf_from_scores_temperature():
    """Temperature divides the scores: higher flattens, lower sharpens, T=2 equals halved scores."""
    scores = np.array([0.0, 1.0, 2.0, 3.0, -5.0], dtype=np.float32)
    top = [int(np.diff(cdf_from_scores(scores, 0, t))[3]) for t in (0.05, 0.5, 1.0, 2.0, 20.0)]
    assert top == sorted(top, reverse=True) and len(set(top)) == len(top)
    assert top[0] == CDF_TOTAL - 4  # near zero temperature the argmax takes everything
    assert np.array_equal(cdf_from_scores(scores, 0, 2.0), cdf_from_scores(scores / 2, 0, 1.0))


def test_cdf_from_scores_ties_and_huge_scores():
    """Tied top scores split the mass, the first one taking the remainder; extreme floats stay finite."""
    freqs = np.diff(cdf_from_scores(np.array([3.0, 1.0, 3.0], dtype=np.float32), 0, 1e-3))
    assert freqs.tolist() == [CDF_TOTAL // 2, 1, CDF_TOTAL // 2 - 1]
    big = np.finfo(np.float32).max
    freqs = np.diff(cdf_from_scores(np.array([-big, big, 0.0, big], dtype=np.float32)))
    assert freqs.tolist() == [1, CDF_TOTAL // 2 - 1, 1, CDF_TOTAL // 2 - 1]


def test_cdf_from_scores_large_alphabets():
    """Alphabets up to 2^18 scored symbols, and exactly MAX_SYMBOLS in all."""
    rng = np.random.default_rng(11)
    for n in (1, 2, 1000, 1 << 16, 1 << 18):
        scores = (rng.standard_normal(n) * 3).astype(np.float32)
        freqs = assert_valid_cdf(cdf_from_scores(scores, 256), n + 256)
        assert freqs[int(np.argmax(scores))] == freqs.max()
    freqs = assert_valid_cdf(cdf_from_scores(np.zeros(1, np.float32), MAX_SYMBOLS - 1), MAX_SYMBOLS)
    assert freqs[0] == CDF_TOTAL - (MAX_SYMBOLS - 1) and freqs[1:].max() == 1


def test_cdf_from_scores_errors():
    """Alphabet out of range or a temperature that is not a positive number: refused."""
    with pytest.raises(ValueError, match="out of range"):
        cdf_from_scores(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        cdf_from_scores(np.zeros(1, np.float32), MAX_SYMBOLS)
    with pytest.raises(ValueError, match="out of range"):
        cdf_from_scores(np.zeros(3, np.float32), -1)
    with pytest.raises(ValueError, match="out of range"):
        ScoreCDF(MAX_SYMBOLS + 1)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            cdf_from_scores(np.zeros(3, np.float32), 0, bad)
    # An infinite temperature (inverse 0) passes the Python check and is refused by the C side.
    with pytest.raises((ValueError, CoderError)):
        cdf_from_scores(np.zeros(3, np.float32), 0, float("inf"))


# --- nc_exp ---------------------------------------------------------------------


def test_nc_exp_accuracy():
    """The deterministic exp() is within 1e-15 relative of libm's on [-700, 0]."""
    rng = np.random.default_rng(2)
    xs = np.concatenate(
        [
            np.linspace(-700.0, 0.0, 70_001),
            -rng.random(20_000) * 700,
            -rng.random(20_000) * 2,
            [0.0, -0.0, -1e-300, -5e-324, -math.log(2) / 2, -math.log(2)],
        ]
    )
    worst = max(abs(lib.nc_exp(x) - math.exp(x)) / math.exp(x) for x in xs.tolist())
    assert worst < 1e-15
    assert lib.nc_exp(0.0) == 1.0


def test_nc_exp_extremes():
    """Below the double range and for NaN it returns exactly 0, never NaN or a negative."""
    for x in (-745.0, -800.0, -1e308, float("-inf"), float("nan")):
        assert lib.nc_exp(x) == 0.0
    assert 0.0 <= lib.nc_exp(-744.0) < 1e-300


# --- coding straight from scores --------------------------------------------------


def test_encode_scores_round_trip_and_matches_cdf():
    """encode_scores codes exactly what Encoder.encode does with cdf_from_scores' CDF.

    Symbols include escapes (the n_extra symbols after the scored ones) and
    the scores include NaN/inf, as a misbehaving model could return.
    """
    rng = np.random.default_rng(21)
    n, n_extra, temperature = 1000, 256, 0.8
    space = ScoreCDF(n, n_extra, temperature)
    steps = []
    for i in range(200):
        scores = (rng.standard_normal(n) * 5).astype(np.float32)
        if i % 17 == 0:
            scores[rng.integers(n, size=3)] = [np.nan, np.inf, -np.inf]
        sym = int(rng.integers(n, n + n_extra)) if i % 9 == 0 else int(np.argsort(scores)[-1 - i % 5])
        steps.append((scores, sym))

    by_scores, by_cdf = Encoder(), Encoder()
    for scores, sym in steps:
        cdf = cdf_from_scores(scores, n_extra, temperature)
        freq, prob = by_scores.encode_scores(space, scores, sym)
        assert freq == cdf[sym + 1] - cdf[sym]
        if sym >= n:
            assert prob == 0.0
        else:
            assert prob == pytest.approx(softmax64(scores, temperature)[sym], rel=1e-9)
        by_cdf.encode(cdf, sym)
    data = by_scores.finish()
    assert data == by_cdf.finish()

    dec = Decoder(data)
    for scores, sym in steps:
        cdf = cdf_from_scores(scores, n_extra, temperature)
        # The scores may also be given as a raw address, as the model passes them.
        assert dec.decode_scores(space, scores.ctypes.data) == (sym, int(cdf[sym + 1] - cdf[sym]))
    dec.check_end()


def test_encode_scores_rejects_bad_input():
    space = ScoreCDF(4, 2)
    enc = Encoder()
    with pytest.raises(TypeError, match="float32"):
        enc.encode_scores(space, np.zeros(4, dtype=np.float64), 0)
    with pytest.raises(CoderError, match="invalid argument"):
        enc.encode_scores(space, np.zeros(4, dtype=np.float32), 6)  # beyond the escapes
    with pytest.raises(ValueError, match="temperature"):
        ScoreCDF(4, 2, 0.0)


# --- golden vectors ---------------------------------------------------------------
# Any change to these bytes breaks every file already written: change them only
# together with a new format version.

GOLDEN_CDFS = [
    cdf_of([1 << 23, 1 << 22, (1 << 22) - 3, 1, 1, 1]),
    cdf_of([CDF_TOTAL - 2, 1, 1]),
    cdf_of([1 << 16] * 256),
]
GOLDEN_STEPS = [
    (0, 0), (0, 1), (0, 2), (0, 3), (0, 5), (1, 0), (1, 0), (1, 1), (2, 65), (2, 255),
    (0, 0), (0, 0), (1, 2), (2, 0), (0, 4), (1, 0), (2, 128), (0, 2), (0, 1), (1, 0),
]  # fmt: skip
GOLDEN_BYTES = bytes.fromhex("5fffff8fffffffffffd20ff9fffffe01fffffd01c0")


def test_golden_coder_output():
    data = encode_all(GOLDEN_CDFS, GOLDEN_STEPS)
    assert data.hex() == GOLDEN_BYTES.hex()
    assert decode_all(GOLDEN_BYTES, GOLDEN_CDFS, [k for k, _ in GOLDEN_STEPS]) == [s for _, s in GOLDEN_STEPS]


def golden_scores(i: int) -> np.ndarray:
    """Scores that are exact in float32 (no libm involved), so the vector is the same everywhere."""
    idx = np.arange(500, dtype=np.int64)
    return (((idx * 7919 + i * 104_729) % 1000).astype(np.float32) - 500) / np.float32(64)


GOLDEN_SCORE_SYMBOLS = [0, 499, 3, 250, 500, 755, 17, 42, 420, 100, 411, 420]
GOLDEN_SCORE_BYTES = bytes.fromhex("000000fffeff0000077989831273fffd2808697049d3d620")
GOLDEN_CDF_SHA256 = "4e4fc06325e494411333b876ffb59e81485f20bd29d4eaa243b11e6b05df4910"


def test_golden_score_coding():
    """The CDF built from fixed scores, and the bytes coded with it, are frozen too."""
    space = ScoreCDF(500, 256, 0.7)
    enc = Encoder()
    digest = hashlib.sha256()
    for i, sym in enumerate(GOLDEN_SCORE_SYMBOLS):
        scores = golden_scores(i)
        digest.update(cdf_from_scores(scores, 256, 0.7).tobytes())
        enc.encode_scores(space, scores, sym)
    assert digest.hexdigest() == GOLDEN_CDF_SHA256
    assert enc.finish().hex() == GOLDEN_SCORE_BYTES.hex()
