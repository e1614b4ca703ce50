"""One neural frame: streams of symbols <-> coded bytes.

No file I/O and no knowledge of the container. A frame's symbols are coded
as one or more streams ("lanes") in lockstep; a single stream is a run with
one lane. Encoder and decoder run the same steps in the same order, which is
what makes decoding possible:

    the model reads every stream's start token (with a dictionary: its
    priming text, and the ensemble starts from what the dictionary learned)
    repeat until every stream is coded:
        one C call (csrc/lanes.h): for every unfinished stream, in order,
            CDF <- the model's scores (+ escape symbols at frequency 1),
                   mixed with the ensemble's cheap models when there is one
            code the symbol; the ensemble learns it
        and write into the predictor's batch what the model must read next
        the predictor evaluates that batch (one llama_decode)

A stream feeds the model the tokens it coded since it last did, at once when
its next symbol needs the model's logits; with the ensemble's confidence
skip, tokens coded without the model wait until the model is needed again or
``batch`` of them are waiting. Escapes are never fed. The decoder, which makes
the same decisions from the same decoded state, issues the same batches.

Python runs once per step, whatever the number of lanes: the host work of a
step is one C call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nacrith._native import check, ffi, lib
from nacrith.errors import CoderError
from nacrith.frameparams import FrameParams
from nacrith.mixer import ensemble_params
from nacrith.settings import Coding, EnsembleSettings

__all__ = [
    "FrameStats",
    "Predictor",
    "count_samples",
    "decode_streams",
    "encode_streams",
]

#: Called about every PROGRESS_EVERY symbols with (symbols done, bits coded so far; 0 when decoding).
Progress = Callable[[int, float], None]
PROGRESS_EVERY = 64


class Predictor(Protocol):
    """The language model's side of a frame: up to ``lanes`` sequences, each
    a window of the frame's context, made from its FrameParams
    (CodecModel.predictor), evaluated together.

    The engine writes each evaluation into the arrays of ``batch_arrays``
    (a llama_batch's token, pos, n_seq_id, seq_id and logits arrays, with
    room for lanes * the frame's batch tokens) and asks for it with
    ``evaluate``. The window's settings are the FrameParams' alone: the
    engine never reads them back from the predictor.
    """

    n_vocab: int
    lanes: int

    def batch_arrays(self) -> tuple[int, int, int, int, int]:
        """Addresses of the batch's token, pos, n_seq_id, seq_id and logits arrays."""
        ...

    def clear(self) -> None:
        """Empty every sequence's window."""

    def slide_lane(self, lane: int) -> None:
        """Drop the frame's slide of cells from the lane's window, after its start token."""

    def prime(self, tokens: Sequence[int], lanes: int) -> None:
        """Fill the first ``lanes`` windows (just cleared) with ``tokens``, the
        start token first, as a dictionary's frames start (predictors made with
        ``primed``)."""

    def evaluate(self, n_tokens: int) -> int:
        """Evaluate the first n_tokens of the batch; the address of the outputs:
        n_vocab floats per token that asked for logits, in batch order."""
        ...


def count_samples(
    n_vocab: int,
    n_extra: int,
    ensemble: EnsembleSettings,
    coding: Coding,
    samples: Sequence[Sequence[int]],
    state: bytes | None = None,
) -> bytes:
    """The learned state (Primer.state) of an ensemble of one stream that has
    counted these token sequences in its n-gram, match and fallback models,
    without coding them (nc_ens_observe), starting from ``state`` or afresh:
    what a dictionary learns from samples it has no time to code."""
    raw = lib.nc_ens_new_lanes(ensemble_params(ensemble), n_vocab, n_extra, 1.0, 1, coding.arith)
    if raw == ffi.NULL:
        raise MemoryError("cannot allocate an ensemble (settings out of range or out of memory)")
    ens = ffi.gc(raw, lib.nc_ens_free)
    lib.nc_ens_reset(ens)
    regions = _ensemble_regions(ens)
    if state is not None:
        _load_regions(regions, state)
    for tokens in samples:
        array = np.asarray(tokens, dtype=np.uint32)
        check(lib.nc_ens_observe(ens, ffi.from_buffer("uint32_t[]", array), len(array)), "counting a sample")
    return _save_regions(regions)


def _ensemble_regions(ensemble: object) -> list[tuple[object, int]]:
    """Where an ensemble's learned state lies (nc_ens_regions)."""
    count = lib.nc_ens_regions(ensemble, ffi.NULL, 0)
    regions = ffi.new("nc_region[]", count)
    lib.nc_ens_regions(ensemble, regions, count)
    return [(regions[i].ptr, regions[i].size) for i in range(count)]


def _save_regions(regions: list[tuple[object, int]]) -> bytes:
    return b"".join(ffi.buffer(ptr, size)[:] for ptr, size in regions)


def _load_regions(regions: list[tuple[object, int]], state: bytes) -> None:
    view = memoryview(state)
    if sum(size for _, size in regions) != len(view):
        raise ValueError("the dictionary's learned state does not fit this ensemble")
    offset = 0
    for ptr, size in regions:
        ffi.memmove(ptr, view[offset : offset + size], size)
        offset += size


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


class _Run:
    """One frame's C coding state (nc_lanes), configured from its FrameParams,
    and the predictor it feeds."""

    def __init__(self, predictor: Predictor, params: FrameParams, n_lanes: int, n_extra: int) -> None:
        if not 1 <= n_lanes <= min(predictor.lanes, params.lanes):
            raise ValueError(f"{n_lanes} streams do not fit a predictor of {predictor.lanes} lanes")
        self.predictor = predictor
        self.params = params
        self.n_lanes = n_lanes
        config = ffi.new("nc_lanes_config *")
        config.n_lanes = n_lanes
        config.n_vocab = predictor.n_vocab
        config.n_extra = n_extra
        config.inv_temp = 1.0 / params.temperature
        config.arith = params.coding.arith
        self._params = ensemble_params(params.ensemble) if params.ensemble is not None else ffi.NULL
        config.ensemble = self._params
        config.shared = int(params.coding.shared)
        config.batch = params.batch
        config.context = params.context
        config.slide = params.slide
        config.start_token = params.start_token
        self.primer = params.primer
        if self.primer is not None:
            # The window holds the start token and the priming text; its last
            # token is the first the model reads in lockstep, for the first symbol's logits.
            config.primed = len(self.primer.tokens)
            config.first_token = self.primer.tokens[-1]
        raw = lib.nc_lanes_new(config)
        if raw == ffi.NULL:
            raise MemoryError(
                "cannot allocate the frame's coding state (settings out of range or out of memory)"
            )
        self._c = ffi.gc(raw, lib.nc_lanes_free)
        self.batch = ffi.new("nc_batch *")
        token, pos, n_seq_id, seq_id, logits = predictor.batch_arrays()
        self.batch.token = ffi.cast("int32_t *", token)
        self.batch.pos = ffi.cast("int32_t *", pos)
        self.batch.n_seq_id = ffi.cast("int32_t *", n_seq_id)
        self.batch.seq_id = ffi.cast("int32_t **", seq_id)
        self.batch.logits = ffi.cast("int8_t *", logits)
        self.n_tokens = ffi.new("uint32_t *")
        self._slides = ffi.new("uint32_t[]", n_lanes)
        self._n_slides = ffi.new("uint32_t *")
        self._done = ffi.new("int *")
        self._stats = ffi.new("nc_lanes_stats *")

    def start(self) -> None:
        """The predictor's windows empty, or primed; called before begin_*."""
        self.predictor.clear()
        if self.primer is not None:
            self.predictor.prime((self.params.start_token, *self.primer.tokens[:-1]), self.n_lanes)

    def _regions(self) -> list[tuple[object, int]]:
        ensemble = lib.nc_lanes_ensemble(self._c)
        if ensemble == ffi.NULL:
            raise ValueError("a learned state needs an ensemble shared by the frame's streams")
        return _ensemble_regions(ensemble)

    def load_state(self) -> None:
        """The primer's learned state into the ensemble (after begin_*, which reset it)."""
        if self.primer is not None and self.primer.state is not None:
            _load_regions(self._regions(), self.primer.state)

    def learned_state(self) -> bytes:
        """What the ensemble has learned so far, as Primer.state holds it."""
        return _save_regions(self._regions())

    def run(self, progress: Progress | None, encoding: bool) -> FrameStats:
        """Evaluate and step until every stream is coded (after begin_*)."""
        predictor, c = self.predictor, self._c
        step, n_tokens, slides = lib.nc_lanes_step, self.n_tokens, self._slides
        outputs = ffi.NULL
        every = max(1, PROGRESS_EVERY // self.n_lanes)
        steps = 0
        while True:
            if n_tokens[0]:
                outputs = ffi.cast("float *", predictor.evaluate(n_tokens[0]))
            status = step(c, outputs, n_tokens, slides, self._n_slides, self._done)
            if status != lib.NC_OK:
                check(status, "decoding a symbol" if not encoding else "encoding a symbol")
            for i in range(self._n_slides[0]):
                predictor.slide_lane(slides[i])
            if self._done[0]:
                break
            steps += 1
            if progress is not None and steps % every == 0:
                lib.nc_lanes_get_stats(c, self._stats)
                progress(self._stats.symbols, self._stats.coded_bits if encoding else 0.0)
        lib.nc_lanes_get_stats(c, self._stats)
        s = self._stats
        return FrameStats(
            symbols=s.symbols,
            escapes=s.escapes,
            model_bits=s.model_bits,
            coded_bits=s.coded_bits,
            skipped=s.skipped,
        )


def encode_streams(
    predictor: Predictor,
    params: FrameParams,
    streams: Sequence[Sequence[int]],
    n_extra: int,
    progress: Progress | None = None,
    learned: Callable[[bytes], None] | None = None,
) -> tuple[list[bytes], FrameStats]:
    """Code streams of symbols (token ids < n_vocab, escapes above) in lockstep,
    each into its own payload, with the frame's params (from its dictionary's
    primer, if any). ``learned`` is given the ensemble's learned state at the
    end (building a dictionary)."""
    run = _Run(predictor, params, len(streams), n_extra)
    bounds = np.cumsum([0, *(len(s) for s in streams)], dtype=np.uint64)
    symbols = np.fromiter((sym for s in streams for sym in s), dtype=np.int64, count=int(bounds[-1]))
    if symbols.size and (symbols.min() < 0 or symbols.max() >= predictor.n_vocab + n_extra):
        raise ValueError("a symbol is outside the alphabet")
    symbols = symbols.astype(np.uint32)
    run.start()
    check(
        lib.nc_lanes_begin_encode(
            run._c,
            ffi.from_buffer("uint32_t[]", symbols),
            ffi.from_buffer("uint64_t[]", bounds),
            run.batch,
            run.n_tokens,
        ),
        "starting to encode",
    )
    run.load_state()
    stats = run.run(progress, encoding=True)
    if learned is not None:
        learned(run.learned_state())
    check(lib.nc_lanes_finish(run._c), "finishing the coder")
    data, size = ffi.new("uint8_t **"), ffi.new("size_t *")
    payloads = []
    for k in range(len(streams)):
        check(lib.nc_lanes_payload(run._c, k, data, size), "reading a payload")
        payloads.append(bytes(ffi.buffer(data[0], size[0])))
    stats.payload_bytes = sum(len(p) for p in payloads)
    return payloads, stats


def decode_streams(
    predictor: Predictor,
    params: FrameParams,
    payloads: Sequence[bytes],
    counts: Sequence[int],
    n_extra: int,
    progress: Progress | None = None,
) -> list[list[int]]:
    """The streams encode_streams coded with the same params: counts[k]
    symbols from payloads[k]. Raises CoderError on corrupt data."""
    if len(payloads) != len(counts):
        raise ValueError("one count per payload")
    run = _Run(predictor, params, len(payloads), n_extra)
    keep = [ffi.from_buffer("uint8_t[]", p) if p else ffi.new("uint8_t[]", 1) for p in payloads]
    pointers = ffi.new("uint8_t *[]", keep)
    lens = ffi.new("size_t[]", [len(p) for p in payloads])
    counts_c = ffi.new("uint64_t[]", list(counts))
    run.start()
    check(
        lib.nc_lanes_begin_decode(run._c, pointers, lens, counts_c, run.batch, run.n_tokens),
        "starting to decode",
    )
    run.load_state()
    run.run(progress, encoding=False)
    try:
        check(lib.nc_lanes_check_end(run._c), "checking the end of the payloads")
    except CoderError:
        raise CoderError("coded data is corrupt: payload length does not match its symbols") from None
    total = sum(counts)
    symbols = np.frombuffer(ffi.buffer(lib.nc_lanes_symbols(run._c), 4 * total), dtype=np.uint32).tolist()
    out, start = [], 0
    for count in counts:
        out.append(symbols[start : start + count])
        start += count
    return out
