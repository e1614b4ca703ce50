"""One frame: symbols <-> coded bytes, driving a predictor, the CDF and the coder.

No file I/O and no knowledge of the container. Encoder and decoder run the
same steps in the same order, which is what makes decoding possible:

    reset the predictor (fresh context) and the ensemble
    for each symbol:
        CDF <- scores of the predictor (+ escape symbols at frequency 1),
               mixed with the ensemble's cheap models when there is one
        code the symbol
        if it is a token: the predictor advances by it (escapes leave it as it is)

With the ensemble's confidence skip, a token the ensemble codes without the
language model is held back and reaches the model together with the others
of its run, in one batch, when the model is next needed (or when ``batch``
tokens are waiting): the KV cache never goes stale and is never re-filled
from scratch, and the decoder, which makes the same skip decisions from the
same decoded state, issues the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nacrith.coder import CDF_BITS, CDF_TOTAL, Decoder, Encoder, ScoreCDF
from nacrith.errors import CoderError
from nacrith.mixer import Ensemble
from nacrith.settings import EnsembleSettings, llm_batch

__all__ = [
    "FrameStats",
    "LanesPredictor",
    "Predictor",
    "decode_frame",
    "decode_lanes",
    "encode_frame",
    "encode_lanes",
]

#: Called every PROGRESS_EVERY symbols with (symbols done, bits coded so far; 0 when decoding).
Progress = Callable[[int, float], None]
PROGRESS_EVERY = 64


class Predictor(Protocol):
    """Next-token scores for one stream of tokens."""

    @property
    def n_vocab(self) -> int: ...

    def reset(self) -> None:
        """Forget all context; scores() then predicts the first token."""

    def scores(self) -> object:
        """The scores of the next token: a C float pointer (or address) of n_vocab entries."""

    def advance(self, token: int) -> None:
        """Append a token to the context."""

    def feed(self, tokens: Sequence[int], logits: bool = True) -> None:
        """Append several tokens at once (at most the predictor's batch size);
        scores() is valid afterwards only if ``logits``."""


@dataclass
class FrameStats:
    """What coding one frame cost, for reports and benchmarks."""

    symbols: int = 0
    escapes: int = 0
    payload_bytes: int = 0
    #: Sum of -log2 p over the model's unquantised probabilities.
    model_bits: float = 0.0
    #: Sum of -log2 p over the integer probabilities actually coded.
    coded_bits: float = 0.0
    #: Tokens coded without the language model (confidence skip).
    skipped: int = 0

    def add(self, other: FrameStats) -> None:
        self.symbols += other.symbols
        self.escapes += other.escapes
        self.payload_bytes += other.payload_bytes
        self.model_bits += other.model_bits
        self.coded_bits += other.coded_bits
        self.skipped += other.skipped


def encode_frame(
    predictor: Predictor,
    symbols: Sequence[int],
    n_extra: int,
    temperature: float,
    progress: Progress | None = None,
    ensemble: EnsembleSettings | None = None,
) -> tuple[bytes, FrameStats]:
    """Code symbols (token ids < n_vocab, escapes above) into a payload."""
    if ensemble is not None:
        return _encode_ensemble(predictor, symbols, n_extra, temperature, progress, ensemble)
    n_vocab = predictor.n_vocab
    space = ScoreCDF(n_vocab, n_extra, temperature)
    encoder = Encoder()
    stats = FrameStats(symbols=len(symbols))
    predictor.reset()
    log2 = math.log2
    for i, sym in enumerate(symbols):
        freq, prob = encoder.encode_scores(space, predictor.scores(), sym)
        stats.coded_bits -= log2(freq / CDF_TOTAL)
        # Escapes are outside the model: count them at the floor, as coded.
        stats.model_bits += -log2(prob) if prob > 0 else CDF_BITS
        if sym >= n_vocab:
            stats.escapes += 1
        elif i + 1 < len(symbols):  # the decoder never needs scores after the last symbol
            predictor.advance(sym)
        if progress is not None and i % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            progress(i + 1, stats.coded_bits)
    payload = encoder.finish()
    stats.payload_bytes = len(payload)
    return payload, stats


def decode_frame(
    predictor: Predictor,
    payload: bytes,
    n_symbols: int,
    n_extra: int,
    temperature: float,
    progress: Progress | None = None,
    ensemble: EnsembleSettings | None = None,
) -> list[int]:
    """The n_symbols symbols coded in payload. Raises CoderError on corrupt data."""
    if ensemble is not None:
        return _decode_ensemble(predictor, payload, n_symbols, n_extra, temperature, progress, ensemble)
    n_vocab = predictor.n_vocab
    space = ScoreCDF(n_vocab, n_extra, temperature)
    decoder = Decoder(payload)
    predictor.reset()
    out: list[int] = []
    for i in range(n_symbols):
        sym, _ = decoder.decode_scores(space, predictor.scores())
        out.append(sym)
        if sym < n_vocab and i + 1 < n_symbols:
            predictor.advance(sym)
        if progress is not None and i % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            progress(i + 1, 0.0)
    _check_end(decoder)
    return out


def _check_end(decoder: Decoder) -> None:
    try:
        decoder.check_end()
    except CoderError:
        raise CoderError("coded data is corrupt: payload length does not match its symbols") from None


class _Catchup:
    """Tokens coded without the model, waiting to be fed to it in one batch."""

    def __init__(self, predictor: Predictor, batch: int) -> None:
        self.predictor = predictor
        self.batch = batch
        self.pending: list[int] = []

    def after_token(self, token: int, needs_llm: bool) -> None:
        """The token was coded; the next symbol needs the model or not."""
        self.pending.append(token)
        if needs_llm:
            self.predictor.feed(self.pending, True)
            self.pending.clear()
        elif len(self.pending) == self.batch:
            self.predictor.feed(self.pending, False)
            self.pending.clear()


def _encode_ensemble(
    predictor: Predictor,
    symbols: Sequence[int],
    n_extra: int,
    temperature: float,
    progress: Progress | None,
    settings: EnsembleSettings,
) -> tuple[bytes, FrameStats]:
    n_vocab = predictor.n_vocab
    ensemble = Ensemble(settings, n_vocab, n_extra, temperature)
    encoder = Encoder()
    stats = FrameStats(symbols=len(symbols))
    predictor.reset()
    catchup = _Catchup(predictor, settings.model_batch)
    log2 = math.log2
    last = len(symbols) - 1
    for i, sym in enumerate(symbols):
        use_llm = ensemble.needs_llm()
        freq, prob = ensemble.encode(encoder, predictor.scores() if use_llm else None, sym)
        stats.coded_bits -= log2(freq / CDF_TOTAL)
        stats.model_bits += -log2(prob) if prob > 0 else CDF_BITS
        if not use_llm:
            stats.skipped += 1
        if sym >= n_vocab:
            stats.escapes += 1
        elif i < last:  # the decoder never needs scores after the last symbol
            catchup.after_token(sym, ensemble.needs_llm())
        if progress is not None and i % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            progress(i + 1, stats.coded_bits)
    payload = encoder.finish()
    stats.payload_bytes = len(payload)
    return payload, stats


def _decode_ensemble(
    predictor: Predictor,
    payload: bytes,
    n_symbols: int,
    n_extra: int,
    temperature: float,
    progress: Progress | None,
    settings: EnsembleSettings,
) -> list[int]:
    n_vocab = predictor.n_vocab
    ensemble = Ensemble(settings, n_vocab, n_extra, temperature)
    decoder = Decoder(payload)
    predictor.reset()
    catchup = _Catchup(predictor, settings.model_batch)
    out: list[int] = []
    last = n_symbols - 1
    for i in range(n_symbols):
        sym, _ = ensemble.decode(decoder, predictor.scores() if ensemble.needs_llm() else None)
        out.append(sym)
        if sym < n_vocab and i < last:
            catchup.after_token(sym, ensemble.needs_llm())
        if progress is not None and i % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            progress(i + 1, 0.0)
    _check_end(decoder)
    return out


# --- lanes ----------------------------------------------------------------------


class LanesPredictor(Protocol):
    """Next-token scores for several streams evaluated together (models/llm.py)."""

    @property
    def n_vocab(self) -> int: ...

    def reset(self, count: int) -> None:
        """Start lanes 0 … count - 1 afresh; scores(lane) then predicts each one's first token."""

    def scores(self, lane: int) -> object:
        """The scores of the lane's next token, as Predictor.scores."""

    def feed(self, requests: Sequence[tuple[int, Sequence[int], bool]]) -> None:
        """Evaluate (lane, tokens, logits) requests, lanes in increasing order, in one call."""


class _Lane:
    """One stream's coding state: its coder, its ensemble and its tokens waiting for the model.

    The feed rule is ``_Catchup``'s: a token goes to the model at once when
    the next symbol needs the model, else it waits until ``batch`` are waiting.
    """

    def __init__(
        self, settings: EnsembleSettings | None, n_vocab: int, n_extra: int, temperature: float
    ) -> None:
        self.ensemble = Ensemble(settings, n_vocab, n_extra, temperature) if settings is not None else None
        self.batch = llm_batch(settings)
        self.pending: list[int] = []

    def needs_llm(self) -> bool:
        return self.ensemble is None or self.ensemble.needs_llm()

    def after_token(self, token: int) -> tuple[list[int], bool] | None:
        """What to feed the model after coding a token that is not the stream's last."""
        self.pending.append(token)
        needs = self.needs_llm()
        if needs or len(self.pending) == self.batch:
            tokens, self.pending = self.pending, []
            return tokens, needs
        return None


def encode_lanes(
    predictor: LanesPredictor,
    streams: Sequence[Sequence[int]],
    n_extra: int,
    temperature: float,
    progress: Progress | None = None,
    ensemble: EnsembleSettings | None = None,
) -> tuple[list[bytes], FrameStats]:
    """Code several streams of symbols in lockstep, each into its own payload.

    Every step codes the next symbol of each unfinished stream, in stream
    order, then evaluates in one call what every stream needs for its next
    symbol. Each stream is coded exactly as ``encode_frame`` would code it
    alone; only the evaluation is shared.
    """
    n_vocab = predictor.n_vocab
    space = ScoreCDF(n_vocab, n_extra, temperature)
    lanes = [_Lane(ensemble, n_vocab, n_extra, temperature) for _ in streams]
    encoders = [Encoder() for _ in streams]
    stats = FrameStats(symbols=sum(len(s) for s in streams))
    predictor.reset(len(streams))
    log2 = math.log2
    done = 0
    for step in range(max(len(s) for s in streams)):
        requests: list[tuple[int, Sequence[int], bool]] = []
        for k, (stream, lane, encoder) in enumerate(zip(streams, lanes, encoders, strict=True)):
            if step >= len(stream):
                continue
            sym = stream[step]
            if lane.ensemble is None:
                freq, prob = encoder.encode_scores(space, predictor.scores(k), sym)
            else:
                use_llm = lane.ensemble.needs_llm()
                freq, prob = lane.ensemble.encode(encoder, predictor.scores(k) if use_llm else None, sym)
                stats.skipped += not use_llm
            stats.coded_bits -= log2(freq / CDF_TOTAL)
            stats.model_bits += -log2(prob) if prob > 0 else CDF_BITS
            if sym >= n_vocab:
                stats.escapes += 1
            elif step + 1 < len(stream) and (feed := lane.after_token(sym)) is not None:
                requests.append((k, *feed))
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, stats.coded_bits)
        if requests:
            predictor.feed(requests)
    payloads = [encoder.finish() for encoder in encoders]
    stats.payload_bytes = sum(len(p) for p in payloads)
    return payloads, stats


def decode_lanes(
    predictor: LanesPredictor,
    payloads: Sequence[bytes],
    counts: Sequence[int],
    n_extra: int,
    temperature: float,
    progress: Progress | None = None,
    ensemble: EnsembleSettings | None = None,
) -> list[list[int]]:
    """The streams coded by encode_lanes: counts[k] symbols from payloads[k],
    with the same steps and the same evaluation calls."""
    n_vocab = predictor.n_vocab
    space = ScoreCDF(n_vocab, n_extra, temperature)
    lanes = [_Lane(ensemble, n_vocab, n_extra, temperature) for _ in payloads]
    decoders = [Decoder(p) for p in payloads]
    out: list[list[int]] = [[] for _ in payloads]
    predictor.reset(len(payloads))
    done = 0
    for step in range(max(counts)):
        requests: list[tuple[int, Sequence[int], bool]] = []
        for k, (count, lane, decoder) in enumerate(zip(counts, lanes, decoders, strict=True)):
            if step >= count:
                continue
            if lane.ensemble is None:
                sym, _ = decoder.decode_scores(space, predictor.scores(k))
            else:
                sym, _ = lane.ensemble.decode(
                    decoder, predictor.scores(k) if lane.ensemble.needs_llm() else None
                )
            out[k].append(sym)
            if sym < n_vocab and step + 1 < count and (feed := lane.after_token(sym)) is not None:
                requests.append((k, *feed))
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, 0.0)
        if requests:
            predictor.feed(requests)
    for decoder in decoders:
        _check_end(decoder)
    return out
