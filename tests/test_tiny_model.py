"""The stand-in models are fair: the tiny GGUF has the real vocabulary, and
both it and the stub predict from their whole context, so that a round trip
with a context bug (a wrong KV slide, lanes mixed up) fails instead of
passing by luck, as it would with logits that ignore the context."""

from __future__ import annotations

import ctypes
import io

import numpy as np
import pytest
from tiny_model import tiny_text

from nacrith.errors import NacrithError
from nacrith.format import FrameType
from nacrith.reader import read_info
from nacrith.support.feeder import Feeder

#: English for the stub model, whose bigrams come from English (tests/stub_model.py).
STUB_TEXT = b" ".join(
    b"The %d quick brown foxes jump over the lazy dog, and then the dog sleeps in the sun." % i
    for i in range(20)
)


def next_token_distribution(model, tokens: list[int]) -> np.ndarray:
    feeder = Feeder(model.windows(256, 64), model.start_token)
    feeder.reset()
    for token in tokens:
        feeder.advance(token)
    logits = feeder.scores().astype(np.float64)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def test_the_tiny_model_has_the_real_vocabulary(model, real_model):
    assert model.symbols.token_bytes == real_model.symbols.token_bytes
    assert model.start_token == real_model.start_token
    text = "Tokenized alike: <|endoftext|>, café, 東京, \x04 and CRLF\r\n".encode() + tiny_text(300, seed=1)
    assert model.symbols.encode(text) == real_model.symbols.encode(text)
    assert model.max_context == real_model.max_context


@pytest.mark.parametrize("which", ["model", "stub_model"])
def test_the_next_token_depends_on_more_than_the_last_one(which, request):
    """The same last token after two different histories: clearly different predictions."""
    model = request.getfixturevalue(which)
    one = model.symbols.encode(b"Alice was beginning to get very tired of the")
    other = model.symbols.encode(b"Once upon a time in a land far away lived the")
    assert one[-1] == other[-1]
    p, q = next_token_distribution(model, one), next_token_distribution(model, other)
    assert 0.5 * np.abs(p - q).sum() > 0.1  # total variation distance


class ContextBlind:
    """A predictor with a context bug: every evaluation forgets all it read before."""

    def __init__(self, inner) -> None:
        self.inner = inner
        size = inner.lanes * inner.batch
        _, pos, _, seq_id, _ = inner.batch_arrays()
        self._pos = (ctypes.c_int32 * size).from_address(pos)
        self._seq_id = (ctypes.POINTER(ctypes.c_int32) * size).from_address(seq_id)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def slide_lane(self, lane: int) -> None:
        pass  # nothing is kept to slide

    def evaluate(self, n_tokens: int) -> int:
        self.inner.clear()
        seen: dict[int, int] = {}
        for i in range(n_tokens):
            lane = self._seq_id[i][0]
            self._pos[i] = seen.get(lane, 0)
            seen[lane] = self._pos[i] + 1
        return self.inner.evaluate(n_tokens)


class WrongSlide:
    """A predictor with a sliding bug: its window drops one token more than the file says."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.n_vocab = inner.n_vocab
        inner.slide += 1

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.mark.parametrize("bug", [ContextBlind, WrongSlide], ids=["context-blind", "wrong-slide"])
@pytest.mark.parametrize("which", ["codec", "stub_codec"])
def test_a_context_bug_fails_the_round_trip(which, bug, request, monkeypatch):
    """A file made right, decoded by a predictor with the bug: the decoder
    gets other predictions, so decoding fails its checks; never the input back."""
    codec = request.getfixturevalue(which)
    model = codec.model
    data = tiny_text(1200, seed=7) if which == "codec" else STUB_TEXT
    blob = codec.compress(data, context=64, slide=16, segment=False)
    assert [e.type for e in read_info(io.BytesIO(blob)).trailer.entries] == [FrameType.NEURAL]
    assert codec.decompress(blob) == data
    right = model.predictor
    monkeypatch.setattr(model, "predictor", lambda *args, **kwargs: bug(right(*args, **kwargs)))
    with pytest.raises(NacrithError):
        codec.decompress(blob)
