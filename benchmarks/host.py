"""The host pipeline's speed: what a step costs besides the model's evaluation.

    .venv/bin/python benchmarks/host.py [--text FILE] [--steps N] [--lanes 1 16 64]

A GPU evaluates a step of many lanes in about the time of one; what is left
is the host: for every lane, the softmax and CDF over the whole vocabulary,
the ensemble's mixing and learning, the coder, and the Python that drives a
step. This is the number that says whether a GPU would be fed.

The language model's logits of one stream of the text are recorded once
(llama.cpp, one token at a time), then replayed through the engine without
llama.cpp: lane k codes the text from token k on, with the logits the model
gave for exactly that context, so every lane's probabilities are realistic
and the coded size is the model's. The time spent handing the recorded
logits over (the replay's own work) is measured and left out.

Prints microseconds per token (one core: the host pipeline is one thread)
for the language model alone and for the default ensemble, at each lane
count, encoding and decoding, with the bits per token as a check. Every
replayed frame is decoded and compared.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from pathlib import Path

import numpy as np

from nacrith.engine import decode_streams, encode_streams
from nacrith.format import ESCAPE_SYMBOLS
from nacrith.frameparams import FrameParams
from nacrith.models.llm import LanguageModel
from nacrith.settings import Coding, EnsembleSettings, llm_batch
from nacrith.support.feeder import Feeder

DEFAULT_TEXT = Path(__file__).resolve().parent.parent.parent / "shared/corpora/canterbury/alice29.txt"
#: The issue's targets, microseconds per token on one core at 16 lanes.
TARGETS = {"llm only": 80.0, "ensemble": 150.0}


def record(model: LanguageModel, tokens: list[int]) -> np.ndarray:
    """rows[i]: the model's logits after the start token and tokens[:i]."""
    feeder = Feeder(model.windows(len(tokens) + 16, 8), model.start_token)
    feeder.reset()
    rows = np.empty((len(tokens) + 1, model.symbols.n_vocab), dtype=np.float32)
    rows[0] = feeder.scores()
    for i, token in enumerate(tokens):
        feeder.advance(token)
        rows[i + 1] = feeder.scores()
    return rows


class Replay:
    """engine.Predictor over recorded logits: lane k's token at position j
    (the start token at 0) is token k + j - 1 of the recorded stream."""

    def __init__(self, rows: np.ndarray, lanes: int, batch: int) -> None:
        self.rows = rows
        self.n_vocab = rows.shape[1]
        self.lanes, self.batch = lanes, batch
        self.context, self.slide = rows.shape[0] + 16, max(batch, 8)
        size = lanes * batch
        self._token = (ctypes.c_int32 * size)()
        self._pos = np.zeros(size, dtype=np.int32)
        self._n_seq = (ctypes.c_int32 * size)()
        self._cells = np.zeros(size, dtype=np.int32)
        base = self._cells.ctypes.data
        self._seq = (ctypes.c_void_p * size)(*(base + 4 * i for i in range(size)))
        self._flags = np.zeros(size, dtype=np.int8)
        self._scratch = np.empty((size, self.n_vocab), dtype=np.float32)
        self.seconds = 0.0

    def batch_arrays(self) -> tuple[int, int, int, int, int]:
        return (
            ctypes.addressof(self._token),
            self._pos.ctypes.data,
            ctypes.addressof(self._n_seq),
            ctypes.addressof(self._seq),
            self._flags.ctypes.data,
        )

    def clear(self) -> None:
        pass

    def slide_lane(self, lane: int) -> None:
        raise RuntimeError("the replay's window never slides")

    def evaluate(self, n_tokens: int) -> int:
        start = time.perf_counter()
        wanted = np.flatnonzero(self._flags[:n_tokens])
        index = self._cells[wanted] + self._pos[wanted]
        if len(index) and np.all(np.diff(index) == 1):
            address = self.rows[index[0]].ctypes.data  # lanes in lockstep: consecutive rows, no copy
        else:
            self._scratch[: len(index)] = self.rows[index]
            address = self._scratch.ctypes.data
        self.seconds += time.perf_counter() - start
        return int(address)


def measure(
    rows: np.ndarray,
    tokens: list[int],
    lanes: int,
    steps: int,
    ensemble: EnsembleSettings | None,
    start_token: int,
) -> dict[str, float]:
    """Encode and decode lanes x steps tokens; host microseconds per token and bits per token."""
    streams = [tokens[k : k + steps] for k in range(lanes)]
    counts = [len(s) for s in streams]
    n = sum(counts)
    coding = Coding()
    out: dict[str, float] = {}
    replay = Replay(rows, lanes, llm_batch(ensemble))
    params = FrameParams(
        replay.context, replay.slide, 1.0, ensemble, coding, lanes, int(lanes > 1), start_token
    )
    start = time.perf_counter()
    payloads, stats = encode_streams(replay, params, streams, ESCAPE_SYMBOLS)
    out["encode us"] = 1e6 * (time.perf_counter() - start - replay.seconds) / n
    replay = Replay(rows, lanes, llm_batch(ensemble))
    start = time.perf_counter()
    back = decode_streams(replay, params, payloads, counts, ESCAPE_SYMBOLS)
    out["decode us"] = 1e6 * (time.perf_counter() - start - replay.seconds) / n
    if back != [list(s) for s in streams]:
        raise SystemExit(f"round trip failed at {lanes} lanes")
    out["bits/token"] = 8 * sum(len(p) for p in payloads) / n
    out["skipped"] = stats.skipped / n
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="text whose logits are replayed")
    parser.add_argument("--steps", type=int, default=512, help="tokens per lane")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--model", help="GGUF file (default: the bundled model)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads for the recording")
    parser.add_argument(
        "--gpu", action="store_true", help="record on the GPU (the replay is on the CPU alone)"
    )
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()
    if not args.text.is_file():
        print(f"{args.text}: not found (give --text)", file=sys.stderr)
        return 2
    model = LanguageModel(args.model, threads=args.threads, gpu=args.gpu)
    tokens = [t for t in model.symbols.encode(args.text.read_bytes()) if t < model.symbols.n_vocab]
    needed = args.steps + max(args.lanes)
    if len(tokens) < needed:
        print(f"{args.text}: {len(tokens)} tokens, the run needs {needed}", file=sys.stderr)
        return 2
    tokens = tokens[:needed]
    start = time.perf_counter()
    rows = record(model, tokens)
    print(f"recorded {len(rows)} rows of logits in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    results = []
    for name, ensemble in (("llm only", None), ("ensemble", EnsembleSettings())):
        for lanes in args.lanes:
            row = {
                "pipeline": name,
                "lanes": lanes,
                **measure(rows, tokens, lanes, args.steps, ensemble, model.start_token),
            }
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(
        f"\nHost pipeline, {args.text.name}, {args.steps} tokens per lane, one core "
        "(microseconds per token; the model's evaluation not included)\n"
    )
    print(
        "| pipeline | lanes | encode µs/token | decode µs/token | target at 16 lanes | bits/token | skipped |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        target = f"≤ {TARGETS[r['pipeline']]:.0f}" if r["lanes"] == 16 else ""
        print(
            f"| {r['pipeline']} | {r['lanes']} | {r['encode us']:.1f} | {r['decode us']:.1f} | {target} "
            f"| {r['bits/token']:.3f} | {r['skipped']:.1%} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
