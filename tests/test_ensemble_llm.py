"""The ensemble on a model through llama.cpp (the tiny test model): every switch combination
decodes, repeats cost almost nothing, and the confidence skip keeps the
model's context whole."""

from __future__ import annotations

import ctypes
import io
from dataclasses import replace

import pytest
from ensemble_cases import all_switch_combinations, combination_id
from tiny_model import tiny_text

from nacrith.engine import encode_streams
from nacrith.format import ESCAPE_SYMBOLS, FrameType, Header
from nacrith.frameparams import FrameParams
from nacrith.reader import read_info
from nacrith.settings import Coding, EnsembleSettings

pytestmark = pytest.mark.llm

#: The model's mechanics are tested on fixed-size frames (segment=False): for
#: inputs this short, segmentation would write zstd alone, without the model.
TEXT = (
    b"The ensemble mixes the model with what it learns from this very text. "
    b"<|endoftext|> stays plain text, \x04 and \xff\xfe are escaped, CRLF\r\nstays.\n"
)


@pytest.mark.parametrize("settings", all_switch_combinations(), ids=combination_id)
def test_every_switch_combination_round_trips(codec, settings):
    data = TEXT + TEXT[:60]
    blob = codec.compress(data, ensemble=settings, segment=False)
    # A text this short is coded without the context heads (frames.CONTEXT_HEADS_MIN_INPUT).
    assert Header.read(io.BytesIO(blob)).ensemble == replace(settings, bias_contexts=0)
    assert codec.decompress(blob) == data


def test_ensemble_is_deterministic(codec):
    data = TEXT * 3
    assert codec.compress(data, segment=False) == codec.compress(data, segment=False)


def test_a_repeat_older_than_the_window_costs_almost_nothing(codec, model):
    """A text several times longer than a 64-token window, then the same text
    again: the match model finds it where the language model no longer can."""
    text = b"".join(
        f"Entry {i}: {w} was seen {i * 7 % 13} times, filed under {w[::-1]}.\n".encode()
        for i, w in enumerate(["apple", "birch", "cedar", "dune", "elm", "fjord", "gale", "heath"] * 3)
    )
    assert len(model.symbols.encode(text)) > 6 * 64
    once = len(codec.compress(text, context=64, slide=16, segment=False))
    twice = codec.compress(text + text, context=64, slide=16, segment=False)
    assert codec.decompress(twice) == text + text
    assert len(twice) - once < 0.05 * once


def test_skip_codes_repeats_without_the_model_and_decodes(codec):
    line = b"2026-11-29 12:00:01 INFO worker-3 request served in 12 ms status=200 path=/api/v1/items\n"
    lines = b"".join(line.replace(b"12 ms", f"{i % 9 + 10} ms".encode()) for i in range(40))
    # After text the model codes well: the tiny test model alone loses to zstd on these lines.
    data = tiny_text(500, seed=4) + lines
    settings = EnsembleSettings(skip_warmup=0, skip_min_len=8, skip_confidence=0.9)
    summary_blob = io.BytesIO()
    summary = codec.compress_stream(io.BytesIO(data), summary_blob, ensemble=settings, segment=False)
    blob = summary_blob.getvalue()
    assert [e.type for e in read_info(io.BytesIO(blob)).trailer.entries] == [FrameType.NEURAL]
    assert summary.stats.skipped > summary.stats.symbols // 3
    assert codec.decompress(blob) == data


class RecordingPredictor:
    """The real predictor, with a log of every batch it evaluates (lane 0's tokens)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        size = inner.lanes * inner.batch
        token = inner.batch_arrays()[0]
        self._token = (ctypes.c_int32 * size).from_address(token)
        self.batches: list[list[int]] = []
        self.clears = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def clear(self) -> None:
        self.clears += 1
        self.inner.clear()

    def evaluate(self, n_tokens: int) -> int:
        self.batches.append(list(self._token[:n_tokens]))
        return self.inner.evaluate(n_tokens)


def test_skipped_tokens_reach_the_model_once_in_batches(model):
    """Every token reaches the model exactly once and in order, skipped ones in
    batches of at most skip_batch: the KV cache is never stale and never re-filled."""
    data = b"alpha beta gamma delta epsilon zeta eta theta. " * 12
    symbols = model.symbols.encode(data)
    settings = EnsembleSettings(
        skip_warmup=0, skip_min_len=6, skip_confidence=0.6, skip_batch=8, skip_agree=0.5
    )
    params = FrameParams(512, 64, 1.0, settings, Coding(), 1, 0, model.start_token)
    predictor = RecordingPredictor(model.predictor(params))
    _, stats = encode_streams(predictor, params, [symbols], ESCAPE_SYMBOLS)
    assert stats.skipped > 50
    assert predictor.clears == 1
    assert predictor.batches[0] == [model.start_token]
    assert [t for batch in predictor.batches[1:] for t in batch] == symbols[:-1]
    assert max(len(b) for b in predictor.batches) == 8
