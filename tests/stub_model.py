"""The stub tier: a model for the container without llama.cpp.

``StubModel`` satisfies ``frames.CodecModel``, the container's protocol, with a
vocabulary of a few hundred tokens (printable ASCII, a few control bytes and
common English pairs; no UTF-8 beyond ASCII, so such bytes are escapes) and
logits looked up in fixed random tables. A symbol costs microseconds, so
format, container, segmenter and fuzz tests code and decode whole files in
milliseconds.

Its logits depend on the whole window, not just the last token: a sliding
window or lane bug changes them, and the round trip fails, as it would with a
real model. The window follows llama.cpp's rules in models/llm.py: the start
token stays at position 0; when ``context`` cells are full, ``slide`` cells
after it go.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np

from nacrith.tokens import SymbolCodec

__all__ = ["StubModel"]

_CONTROL = b"\t\n\r"
_PAIRS = [
    b"th", b"he", b"in", b"er", b"an", b"re", b"on", b"at", b"en", b"nd", b"ti", b"es", b"or",
    b"te", b"of", b"ed", b"is", b"it", b"al", b"ar", b"st", b"to", b"nt", b"ng", b"se", b"ha",
    b" t", b" a", b" o", b" s", b" w", b" i", b" b", b" c", b"e ", b"s ", b"d ", b"t ",
    b"the", b" the", b"ing", b"and", b" and", b"ion", b" of", b" to", b"ent", b"The",
]  # fmt: skip
#: Windows hashed into this many buckets, each with its own logit offsets.
_BUCKETS = 64


class _Window:
    """One stream's tokens as llama.cpp's KV cache would hold them."""

    def __init__(self, model: StubModel, context: int, slide: int, start_token: int) -> None:
        self._model = model
        self.context = context
        self.slide = slide
        self.tokens = [start_token]

    def feed(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            if len(self.tokens) == self.context:
                del self.tokens[1 : 1 + self.slide]
            self.tokens.append(token)

    def scores(self) -> np.ndarray:
        bucket = (sum(self.tokens) * 31 + len(self.tokens)) % _BUCKETS
        return self._model.last_table[self.tokens[-1]] + self._model.window_table[bucket]


class StubPredictor:
    """engine.Predictor over a _Window."""

    def __init__(self, model: StubModel, context: int, slide: int, start_token: int, batch: int) -> None:
        self._model = model
        self.n_vocab = model.symbols.n_vocab
        self.context, self.slide, self.start_token, self.batch = context, slide, start_token, batch
        self._window: _Window | None = None
        self._scores: np.ndarray | None = None

    def reset(self) -> None:
        self._window = _Window(self._model, self.context, self.slide, self.start_token)
        self._scores = self._window.scores()

    def scores(self) -> np.ndarray:
        if self._scores is None:
            raise RuntimeError("no logits: reset() or feed(..., logits=True) must come first")
        return self._scores

    def advance(self, token: int) -> None:
        self.feed((token,))

    def feed(self, tokens: Sequence[int], logits: bool = True) -> None:
        if not 0 < len(tokens) <= self.batch:
            raise ValueError(f"feed takes 1..{self.batch} tokens, not {len(tokens)}")
        assert self._window is not None
        self._window.feed(tokens)
        self._scores = self._window.scores() if logits else None


class StubLanes:
    """engine.LanesPredictor: one _Window per lane."""

    def __init__(self, model: StubModel, lanes: int, context: int, slide: int, start_token: int) -> None:
        self._model = model
        self.n_vocab = model.symbols.n_vocab
        self.lanes, self.context, self.slide, self.start_token = lanes, context, slide, start_token
        self._windows: list[_Window] = []
        self._scores: list[np.ndarray | None] = []

    def reset(self, count: int) -> None:
        if not 0 < count <= self.lanes:
            raise ValueError(f"reset takes 1..{self.lanes} lanes, not {count}")
        self._windows = [
            _Window(self._model, self.context, self.slide, self.start_token) for _ in range(count)
        ]
        self._scores = [w.scores() for w in self._windows]

    def scores(self, lane: int) -> np.ndarray:
        scores = self._scores[lane]
        if scores is None:
            raise RuntimeError(f"no logits for lane {lane}")
        return scores

    def feed(self, requests: Sequence[tuple[int, Sequence[int], bool]]) -> None:
        lanes = [lane for lane, _, _ in requests]
        if lanes != sorted(set(lanes)):
            raise ValueError("requests must name each lane once, in increasing order")
        for lane, tokens, logits in requests:
            self._windows[lane].feed(tokens)
            self._scores[lane] = self._windows[lane].scores() if logits else None


class StubModel:
    """frames.CodecModel without llama.cpp: a small vocabulary, table logits."""

    def __init__(self, seed: int = 0, name: str = "stub-model.gguf") -> None:
        singles = [bytes([b]) for b in (*_CONTROL, *range(0x20, 0x7F))]
        #: Token 0 is the start token, a control token that text never produces.
        self._token_bytes: list[bytes | None] = [None, *singles, *_PAIRS]
        self._ids = {tb: i for i, tb in enumerate(self._token_bytes) if tb is not None}
        self._longest = max(len(tb) for tb in self._ids)
        self.symbols = SymbolCodec(self._token_bytes, self._tokenize)
        self.name = name
        self.sha256 = hashlib.sha256(f"nacrith test stub model {seed}".encode()).digest()
        self.environment = "stub cpu 00000000 avx2"
        self.max_context = 8192
        self.start_token = 0
        # What Codec.from_model reads: no file behind it, one "thread".
        self.path = None
        self.threads = 1
        rng = np.random.default_rng(seed)
        n = self.symbols.n_vocab
        # A bigram table counted on a little English (this module's docstring),
        # so that English codes in fewer bits than zstd needs for short texts,
        # and neural frames are chosen as with a real model; plus noise.
        counts = np.full((n, n), 0.05)
        training = self._tokenize((__doc__ or "").encode() + b" The quick brown fox jumps over the lazy dog.")
        for a, b in itertools.pairwise(training):
            counts[a, b] += 1.0
        counts /= counts.sum(axis=1, keepdims=True)
        noise = rng.standard_normal((n, n)) * 0.5
        self.last_table = (np.log(counts) + noise).astype(np.float32)
        self.window_table = (rng.standard_normal((_BUCKETS, n)) * 0.5).astype(np.float32)

    def _tokenize(self, text: bytes) -> list[int]:
        """Greedy longest match; the SymbolCodec escapes what no token carries."""
        out, i = [], 0
        while i < len(text):
            for size in range(min(self._longest, len(text) - i), 0, -1):
                token = self._ids.get(text[i : i + size])
                if token is not None:
                    out.append(token)
                    i += size
                    break
            else:
                raise ValueError(f"no token for byte {text[i]:#x}")
        return out

    def predictor(self, context: int, slide: int, start_token: int, batch: int = 1) -> StubPredictor:
        return StubPredictor(self, context, slide, start_token, batch)

    def lanes_predictor(
        self, lanes: int, context: int, slide: int, start_token: int, batch: int = 1
    ) -> StubLanes:
        return StubLanes(self, lanes, context, slide, start_token)
