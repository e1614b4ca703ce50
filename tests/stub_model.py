"""The stub tier: a model for the container without llama.cpp.

``StubModel`` satisfies ``framecodec.CodecModel``, the container's protocol, with a
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

import ctypes
import hashlib
import itertools

import numpy as np

from nacrith.errors import ModelError
from nacrith.frameparams import FrameParams
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


def _scores(model: StubModel, window: list[int]) -> np.ndarray:
    """The logits after a window of tokens (start token first), as llama.cpp's KV cache would hold it."""
    bucket = (sum(window) * 31 + len(window)) % _BUCKETS
    return model.last_table[window[-1]] + model.window_table[bucket]


class StubPredictor:
    """engine.Predictor over one window per lane, reading the batch the engine
    writes as llama.cpp would: every sequence's window starts empty; a token at
    a position the window does not end at is an error (ModelError, as a failed
    llama_decode), so a missing or wrong slide fails."""

    def __init__(self, model: StubModel, lanes: int, context: int, slide: int, batch: int) -> None:
        self._model = model
        self.n_vocab = model.symbols.n_vocab
        self.lanes, self.context, self.slide, self.batch = lanes, context, slide, batch
        size = lanes * batch
        self._token = (ctypes.c_int32 * size)()
        self._pos = (ctypes.c_int32 * size)()
        self._n_seq_id = (ctypes.c_int32 * size)()
        self._seq_cells = [(ctypes.c_int32 * 1)() for _ in range(size)]
        self._seq_id = (ctypes.POINTER(ctypes.c_int32) * size)(
            *(ctypes.cast(cell, ctypes.POINTER(ctypes.c_int32)) for cell in self._seq_cells)
        )
        self._logits = (ctypes.c_int8 * size)()
        self._windows: list[list[int]] = [[] for _ in range(lanes)]
        self._outputs = np.zeros((size, self.n_vocab), dtype=np.float32)

    def batch_arrays(self) -> tuple[int, int, int, int, int]:
        return tuple(  # type: ignore[return-value]
            ctypes.addressof(a) for a in (self._token, self._pos, self._n_seq_id, self._seq_id, self._logits)
        )

    def clear(self) -> None:
        self._windows = [[] for _ in range(self.lanes)]

    def slide_lane(self, lane: int) -> None:
        del self._windows[lane][1 : 1 + self.slide]

    def evaluate(self, n_tokens: int) -> int:
        rows = 0
        for i in range(n_tokens):
            lane = self._seq_cells[i][0]
            window = self._windows[lane]
            if self._pos[i] != len(window) or len(window) >= self.context:
                # What llama_decode refuses, and LlamaPredictor.evaluate reports so.
                raise ModelError(f"lane {lane}: position {self._pos[i]} with {len(window)} cells")
            window.append(self._token[i])
            if self._logits[i]:
                self._outputs[rows] = _scores(self._model, window)
                rows += 1
        return int(self._outputs.ctypes.data)


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

    def predictor(self, params: FrameParams, streams: int = 1) -> StubPredictor:
        return self.windows(params.context, params.slide, params.batch, streams, params.primer is not None)

    def windows(
        self, context: int, slide: int, batch: int = 1, lanes: int = 1, primed: bool = False
    ) -> StubPredictor:
        if primed:  # dictionaries are tested on the tiny model, through real llama.cpp
            raise NotImplementedError("the stub model cannot start from a dictionary")
        return StubPredictor(self, lanes, context, slide, batch)
