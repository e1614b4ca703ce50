"""The ensemble's parts in C, checked against plain Python and against what
they promise: n-gram counts, match finding and its learned confidence, the
bias head's gradient step, the mixer's recovery, and lossless coding for
every switch combination. Logits here are synthetic (a fixed random table
indexed by the previous token), so thousands of symbols code in a second;
tests/test_roundtrip.py runs the same ensemble on the real model."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import pytest
from ensemble_cases import all_switch_combinations, combination_id
from hypothesis import given
from hypothesis import strategies as st
from reference_models import BiasHead, Ensemble, MatchModel, NgramModel, softmax

from nacrith._native import lib
from nacrith.engine import count_samples
from nacrith.errors import CoderError
from nacrith.settings import ARITHMETICS, Arithmetic, Coding, EnsembleSettings
from nacrith.support.coder import CDF_TOTAL, Decoder, Encoder, ScoreCDF

V = 600
EXTRA = 256


class TableLogits:
    """Deterministic stand-in for a language model: logits from the previous token."""

    def __init__(self, seed: int = 0, scale: float = 3.0) -> None:
        rng = np.random.default_rng(seed)
        self.table = (rng.standard_normal((V, V)) * scale).astype(np.float32)

    def __call__(self, prev: int) -> np.ndarray:
        return self.table[prev]


def code(
    settings: EnsembleSettings, symbols: list[int], logits: TableLogits, arith: int = Arithmetic.EXACT_DOUBLE
) -> tuple[bytes, list[float], int]:
    """Encode; returns the payload, the bits of each symbol and how many skipped the model."""
    ens = Ensemble(settings, V, EXTRA, 1.0, arith)
    enc = Encoder()
    prev, bits, skipped = 0, [], 0
    for s in symbols:
        use = ens.needs_llm()
        skipped += not use
        freq, _ = ens.encode(enc, logits(prev) if use else None, s)
        bits.append(-math.log2(freq / CDF_TOTAL))
        if s < V:
            prev = s
    return enc.finish(), bits, skipped


def decode(
    settings: EnsembleSettings,
    payload: bytes,
    n: int,
    logits: TableLogits,
    arith: int = Arithmetic.EXACT_DOUBLE,
) -> list[int]:
    ens = Ensemble(settings, V, EXTRA, 1.0, arith)
    dec = Decoder(payload)
    prev, out = 0, []
    for _ in range(n):
        s, _ = ens.decode(dec, logits(prev) if ens.needs_llm() else None)
        out.append(s)
        if s < V:
            prev = s
    dec.check_end()
    return out


def llm_only_bits(symbols: list[int], logits: TableLogits) -> list[float]:
    space = ScoreCDF(V, EXTRA)
    enc = Encoder()
    prev, bits = 0, []
    for s in symbols:
        freq, _ = enc.encode_scores(space, logits(prev), s)
        bits.append(-math.log2(freq / CDF_TOTAL))
        if s < V:
            prev = s
    return bits


def repetitive(seed: int = 1, n: int = 1500) -> list[int]:
    """A text-like stream: phrases drawn from a small set, with noise tokens between."""
    rng = random.Random(seed)
    phrases = [[rng.randrange(V) for _ in range(rng.randrange(3, 12))] for _ in range(25)]
    out: list[int] = []
    while len(out) < n:
        out += rng.choice(phrases)
        if rng.random() < 0.3:
            out.append(rng.randrange(V))
    return out[:n]


# --- n-gram ------------------------------------------------------------------


def reference_ngram(tokens: list[int], order: int) -> list[dict[int, int] | None]:
    """The continuation counts of each position's order-k context, before it is counted."""
    counts: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
    seen = []
    for i, t in enumerate(tokens):
        ctx = tuple(tokens[i - order : i]) if i >= order else None
        seen.append(dict(counts[ctx]) if ctx is not None and ctx in counts else None)
        if ctx is not None:
            counts[ctx][t] += 1
    return seen


@pytest.mark.parametrize("order", [1, 2, 4])
def test_ngram_counts_match_a_dictionary(order):
    tokens = repetitive(seed=order, n=800)
    settings = EnsembleSettings(ngram_min_order=order, ngram_max_order=order, ngram_candidates=16)
    model = NgramModel(settings)
    for t, expected in zip(tokens, reference_ngram(tokens, order), strict=True):
        (pred,) = model.predict()
        if expected is None or len(expected) > 16:
            # unseen context, or one with more continuations than a slot keeps
            assert expected is not None or (pred.candidates == {} and pred.escape == 1.0)
        else:
            total, distinct = sum(expected.values()), len(expected)
            want = {tok: c / (total + distinct) for tok, c in expected.items()}
            assert pred.candidates == pytest.approx(want)
            assert pred.escape == pytest.approx(distinct / (total + distinct))
        model.update(t)


def test_ngram_tables_are_bounded_and_collisions_do_not_leak():
    """A 256-slot table under 20,000 distinct contexts: slots are recycled, and a
    context never inherits the continuations of another (the check tells them apart)."""
    settings = EnsembleSettings(ngram_min_order=2, ngram_max_order=2, ngram_table_bits=8)
    model = NgramModel(settings)
    rng = random.Random(3)
    tokens = [rng.randrange(V) for _ in range(20000)]
    followers: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, t in enumerate(tokens):
        (pred,) = model.predict()
        if i >= 2:
            assert set(pred.candidates) <= followers[(tokens[i - 2], tokens[i - 1])]
            followers[(tokens[i - 2], tokens[i - 1])].add(t)
        model.update(t)


def test_ngram_keeps_the_frequent_continuations_when_a_slot_is_full():
    settings = EnsembleSettings(ngram_min_order=1, ngram_max_order=1, ngram_candidates=2)
    model = NgramModel(settings)
    for t in [7, 1, 7, 1, 7, 1, 7, 2, 7, 3, 7]:
        model.predict()
        model.update(t)
    (pred,) = model.predict()  # after 7: 1 (seen 3 times) stays, 2 (once) gave way to 3
    assert set(pred.candidates) == {1, 3}
    assert pred.candidates[1] > pred.candidates[3]


def test_ngram_halves_counts_at_the_limit():
    settings = EnsembleSettings(ngram_min_order=1, ngram_max_order=1, ngram_count_limit=4)
    model = NgramModel(settings)
    for t in [5, 9, 5, 9, 5, 9, 5, 8, 5, 9, 5]:
        model.predict()
        model.update(t)
    (pred,) = model.predict()
    # after 5: 9 reached the limit of 4 with 8 at 1: halved, rounding up, to 2 and 1
    assert pred.candidates == pytest.approx({9: 2 / 5, 8: 1 / 5})


# --- match model --------------------------------------------------------------


def test_match_model_predicts_a_repeat_older_than_any_window():
    rng = random.Random(5)
    phrase = [rng.randrange(V) for _ in range(40)]
    filler = [rng.randrange(V) for _ in range(5000)]
    model = MatchModel(EnsembleSettings(match_min_len=4))
    for t in phrase + filler + phrase[:4]:
        model.predict()
        model.update(t)
    for expected in phrase[4:]:
        (pred,) = model.predict()
        assert list(pred.candidates) == [expected]
        model.update(expected)
    assert model.length >= 40


def test_match_confidence_is_learned_from_hits():
    model = MatchModel(EnsembleSettings(match_min_len=2))
    seq = [1, 2, 3, 4, 5, 6, 7, 8] * 60
    confidences = []
    for t in seq:
        (pred,) = model.predict()
        if pred.candidates:
            confidences.append(pred.candidates.get(t, -1.0))
        model.update(t)
    assert min(confidences) >= 0  # every prediction of a pure cycle is right
    assert confidences[-1] > 0.99 > confidences[0]


def test_match_misses_lower_the_confidence():
    model = MatchModel(EnsembleSettings(match_min_len=2))
    rng = random.Random(9)
    # the same 2-token context followed by a different token each time
    for _ in range(300):
        for t in (1, 2, rng.randrange(10, V)):
            model.predict()
            model.update(t)
    model.predict()
    model.update(1)
    model.update(2)
    (pred,) = model.predict()
    assert pred.candidates and max(pred.candidates.values()) < 0.1


# --- bias head ---------------------------------------------------------------


def np_softmax(z: np.ndarray) -> np.ndarray:
    """Reference: terms below e^-32 of the top one are 0, as in the coder."""
    want = np.exp(z - z.max())
    want[z - z.max() < -32] = 0
    return want / want.sum()


def test_softmax_matches_numpy():
    logits = np.random.default_rng(2).standard_normal(V).astype(np.float32) * 4
    for temp in (0.5, 1.0, 1.7):
        np.testing.assert_allclose(
            softmax(logits, temp), np_softmax(logits.astype(np.float64) / temp), rtol=1e-12, atol=0
        )


def test_bias_head_learns_a_documents_favourite_token():
    logits = np.zeros(V, dtype=np.float32)
    head = BiasHead(V, lr=0.5, limit=8.0)
    before = head.predict(logits)[42]
    for _ in range(200):
        p = head.predict(logits)
        head.update(p, 42, logits)
    after = head.predict(logits)
    assert before == pytest.approx(1 / V)
    assert after[42] > 0.5
    assert np.all(head.values <= 8.0) and np.all(head.values >= -8.0)


def test_bias_head_steps_are_adagrad():
    """b -= lr * g / sqrt(1 + sum of g^2), g = p - onehot(token), per entry."""
    logits = np.random.default_rng(8).standard_normal(V).astype(np.float32)
    head = BiasHead(V, lr=0.5, limit=8.0)
    b = np.zeros(V)
    g2 = np.zeros(V)
    for token in (3, 3, 17):
        p = head.predict(logits)
        np.testing.assert_allclose(p, np_softmax(logits.astype(np.float64) + b), rtol=1e-12)
        head.update(p, token, logits)
        g = p.copy()
        g[token] -= 1
        g2 += g * g
        b -= 0.5 * g / np.sqrt(1 + g2)
        np.testing.assert_allclose(head.values, b, rtol=0, atol=1e-14)
    assert head.scale == 1.0  # not learned without a scale learning rate


def test_bias_head_scale_steps_follow_the_gradient():
    """scale -= lr * g / sqrt(1 + sum of g^2), g = E_p[z] - z[token], z = logits / T."""
    rng = np.random.default_rng(9)
    head = BiasHead(V, lr=0.5, limit=8.0, scale_lr=0.1)
    scale, g2, b, b_g2, temp = 1.0, 0.0, np.zeros(V), np.zeros(V), 1.25
    for token in (5, 9, 5, 599):
        logits = (rng.standard_normal(V) * 3).astype(np.float32)
        z = logits.astype(np.float64) / temp
        p = head.predict(logits, temp)
        np.testing.assert_allclose(p, np_softmax(z * scale + b), rtol=1e-11)
        head.update(p, token, logits, temp)
        g = float(p @ z - z[token])
        g2 += g * g
        scale -= 0.1 * g / np.sqrt(1 + g2)
        gb = p.copy()
        gb[token] -= 1
        b_g2 += gb * gb
        b -= 0.5 * gb / np.sqrt(1 + b_g2)
        assert head.scale == pytest.approx(scale, rel=1e-12)


def test_bias_head_scale_cools_an_over_confident_model():
    """Logits twice as sharp as the truth: the learned scale moves towards 1/2."""
    rng = np.random.default_rng(10)
    head = BiasHead(V, lr=0.01, limit=8.0, scale_lr=0.5)
    for _ in range(400):
        truth = rng.standard_normal(V) * 2
        p_true = np_softmax(truth)
        token = int(rng.choice(V, p=p_true))
        logits = (2 * truth).astype(np.float32)
        head.update(head.predict(logits), token, logits)
    assert 0.4 < head.scale < 0.7, head.scale


# --- the ensemble --------------------------------------------------------------


@pytest.mark.parametrize("arith", list(Arithmetic))
@pytest.mark.parametrize("settings", all_switch_combinations(), ids=combination_id)
def test_every_switch_combination_round_trips(settings, arith):
    logits = TableLogits()
    symbols = repetitive()
    symbols[100:100] = [V + 3, V + 255, V]  # escapes in the middle
    payload, _, skipped = code(settings, symbols, logits, arith)
    assert decode(settings, payload, len(symbols), logits, arith) == symbols
    if settings.skip:
        assert skipped > 0


def test_coding_is_deterministic():
    logits = TableLogits()
    symbols = repetitive()
    settings = EnsembleSettings(skip_warmup=0, skip_min_len=8)
    assert code(settings, symbols, logits)[0] == code(settings, symbols, logits)[0]


@given(
    st.lists(st.integers(0, V + EXTRA - 1), max_size=300),
    st.sampled_from(all_switch_combinations()),
    st.sampled_from(list(Arithmetic)),
)
def test_any_symbols_round_trip(symbols, settings, arith):
    logits = TableLogits(seed=4)
    payload, _, _ = code(settings, symbols, logits, arith)
    assert decode(settings, payload, len(symbols), logits, arith) == symbols


@pytest.mark.parametrize("arith", list(Arithmetic))
def test_cheap_models_beat_a_useless_language_model(arith):
    """With flat logits, a repetitive stream must cost far less than the model alone."""
    flat = TableLogits(scale=0.0)
    symbols = repetitive(n=3000)
    alone = sum(llm_only_bits(symbols, flat))
    mixed = sum(code(EnsembleSettings(skip=False), symbols, flat, arith)[1])
    assert mixed < 0.5 * alone


def test_the_two_arithmetics_cost_the_same_bits():
    """Arithmetic 2 computes in float what 1 computes in double: the coded
    size may differ by rounding, never by more than a fraction of a percent
    (without the context heads, which only arithmetic 2 has)."""
    logits = TableLogits()
    symbols = repetitive(n=3000)
    settings = EnsembleSettings(skip_warmup=0, skip_min_len=8, bias_contexts=0)
    one, two = (sum(code(settings, symbols, logits, arith)[1]) for arith in Arithmetic)
    assert abs(two - one) < 0.002 * one, (one, two)


def test_context_heads_learn_what_follows_each_token():
    """Each of 20 tokens is followed by its own partner. The bias head alone
    learns only how often each partner comes; the context heads, keyed on the
    previous token, learn which one comes next (the other parts are off, so
    nothing else can)."""
    rng = random.Random(5)
    partner = {a: V - 1 - a for a in range(20)}
    symbols: list[int] = []
    while len(symbols) < 4000:
        a = rng.randrange(20)
        symbols += [a, partner[a]]
    flat = TableLogits(scale=0.0)
    only_bias = EnsembleSettings(ngram=False, match=False, skip=False, apm=False)
    without = code(replace(only_bias, bias_contexts=0), symbols, flat, arith=Arithmetic.FLOAT32)
    with_heads = code(only_bias, symbols, flat, arith=Arithmetic.FLOAT32)
    assert only_bias.bias_contexts == 64
    assert sum(with_heads[1]) < 0.8 * sum(without[1])
    assert decode(only_bias, with_heads[0], len(symbols), flat, arith=Arithmetic.FLOAT32) == symbols


def test_the_arithmetics_are_the_c_ones_and_ints_name_them():
    """Arithmetic's values are the files' numbers and C's NC_ARITH_*; an int read
    from a file or given by a caller becomes the Arithmetic of that number."""
    assert (Arithmetic.EXACT_DOUBLE, Arithmetic.FLOAT32) == ARITHMETICS == (1, 2)
    assert lib.NC_ARITH_EXACT_DOUBLE == Arithmetic.EXACT_DOUBLE
    assert lib.NC_ARITH_FLOAT32 == Arithmetic.FLOAT32
    assert Coding(1).arith is Arithmetic.EXACT_DOUBLE and Coding().arith is Arithmetic.FLOAT32
    with pytest.raises(ValueError, match="arithmetic must be one of 1, 2, not 3"):
        Coding(3)


def test_context_heads_are_unused_in_arithmetic_1():
    logits = TableLogits()
    symbols = repetitive()
    heads = EnsembleSettings(skip_warmup=0, skip_min_len=8)
    assert heads.bias_contexts
    exact = Arithmetic.EXACT_DOUBLE
    without = replace(heads, bias_contexts=0)
    assert code(heads, symbols, logits, exact)[0] == code(without, symbols, logits, exact)[0]


@pytest.mark.parametrize(
    ("n_vocab", "asked", "heads"), [(600, 5, 5), (49152, 65535, 170), (300_000, 100, 27)]
)
def test_context_heads_take_at_most_64_mb(n_vocab, asked, heads):
    """min(bias_contexts, max(1, 2^23 / V)) heads, each V float values and V
    float gradient sums: what a dictionary's learned state holds of them."""
    settings = EnsembleSettings(ngram=False, match=False, skip=False, apm=False)

    def state_size(contexts: int) -> int:
        return len(count_samples(n_vocab, EXTRA, replace(settings, bias_contexts=contexts), Coding(), []))

    assert state_size(asked) - state_size(0) == heads * n_vocab * 8


def test_mixer_recovers_after_a_long_stretch_where_the_cheap_models_were_useless():
    """3,000 random tokens (cheap models useless, logits perfect), then a cycle the
    language model knows nothing of: the cheap models take over within tens of tokens,
    where a cumulative exponential-weights mixer would need thousands."""
    rng = random.Random(11)
    first = [rng.randrange(V) for _ in range(3000)]
    cycle = [rng.randrange(V) for _ in range(30)] * 20
    symbols = first + cycle

    def logits_for(i: int) -> np.ndarray:
        out = np.zeros(V, dtype=np.float32)
        if i < len(first):
            out[first[i]] = 12.0  # the language model is right during the first part
        return out

    ens = Ensemble(EnsembleSettings(skip=False), V, EXTRA, 1.0)
    enc = Encoder()
    bits = []
    for i, s in enumerate(symbols):
        freq, _ = ens.encode(enc, logits_for(i), s)
        bits.append(-math.log2(freq / CDF_TOTAL))
    second_cycle_on = bits[len(first) + 60 :]
    assert sum(second_cycle_on) / len(second_cycle_on) < 1.0  # bits per token, vs ~9.2 for uniform


def test_logits_must_be_given_exactly_when_needed():
    ens = Ensemble(EnsembleSettings(), V, EXTRA, 1.0)
    with pytest.raises(CoderError):
        ens.encode(Encoder(), None, 1)  # the first token always needs the model


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError):
        EnsembleSettings(ngram_max_order=9)
    with pytest.raises(ValueError):
        EnsembleSettings(match=False)  # the skip needs the match model
    assert EnsembleSettings().without("match").skip is False


@pytest.mark.parametrize(
    ("agree", "solo_min_len", "fires_before_ab"),
    [
        (0.0, 0, True),  # agreement not asked (layout 1's rule)
        (0.9, 0, False),  # the n-gram splits 50/50 before A and B: no skip there
        (0.9, 8, True),  # the match alone, long and never wrong, is enough
    ],
)
def test_skip_waits_for_the_ngram_to_agree_unless_the_match_alone_suffices(
    agree, solo_min_len, fires_before_ab
):
    """A stream where the last 4 tokens never tell A from B but the last 6 do: the
    match model is always right, the order-4 n-gram splits 50/50 before A and B.
    Asked to agree, the skip leaves exactly those tokens to the language model,
    unless the solo rule trusts the match model alone."""
    block = []
    for k in range(2):
        block += [10 + k, 1, 1, 1, 1, 20 + k]  # x_k 1 1 1 1 -> A or B
    symbols = block * 150
    logits = TableLogits()
    settings = EnsembleSettings(
        skip_warmup=0,
        skip_min_len=8,
        skip_confidence=0.9,
        skip_agree=agree,
        skip_solo_min_len=solo_min_len,
        skip_solo_confidence=0.95,
    )
    ens = Ensemble(settings, V, EXTRA, 1.0)
    enc = Encoder()
    skipped_at = Counter()
    for i, s in enumerate(symbols):
        use = ens.needs_llm()
        if not use and i >= 600:  # the second half: everything learned
            skipped_at["ab" if s >= 20 else "other"] += 1
        ens.encode(enc, logits(symbols[i - 1] if i else 0) if use else None, s)
    # Of the last 1,200 tokens, 200 are A or B; a match entering a longer
    # length bucket (a fresh hit rate) may cost a skip or two.
    assert skipped_at["other"] >= 990, skipped_at
    if fires_before_ab:
        assert skipped_at["ab"] >= 195, skipped_at
    else:
        assert skipped_at["ab"] == 0, skipped_at
    payload = enc.finish()
    assert decode(settings, payload, len(symbols), logits) == symbols
