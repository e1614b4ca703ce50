"""What lanes cost in bits, on a whole file: every lane policy from one model pass per lane count.

    .venv/bin/python benchmarks/lane_policy.py [FILE] [--lanes 1,2,4,8,16] [--cache DIR]

Splitting a frame into L streams changes what the language model sees (each
stream starts with an empty window), and, depending on the policy, what the
ensemble learns from. Running the real coder once per policy would take
hours on a CPU; here the model's logits of each stream are recorded once
per lane count (llama.cpp, the streams in lockstep, one token per stream per
call, exactly the windows and slides the coder uses), kept in --cache, and
every policy is then coded from the recording through the real engine and
decoded again:

- llm only: the language model alone;
- cold: each stream its own ensemble (files before the CODING parameter);
- shared: the streams share one ensemble (arithmetic 2, the default).

With --warm P, the recordings are made again with every stream but the
first reading the frame's first P tokens before its own (a warm window), and
the policies are coded from those: what a warm start would gain on the
model's side. The coder does not implement it; this measures whether it should.

Bits per byte are the payloads' (no container). With the ensemble's skip,
catch-up batches make llama.cpp's logits differ from single-token ones in
the last bits, so a real file can differ from the figure here by a few
bytes. tok/s estimates the coder on this machine: the recording's model
time per token plus the replay's host time per token.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from nacrith.corpora import locate
from nacrith.engine import FrameStats, decode_streams, encode_streams
from nacrith.format import ESCAPE_SYMBOLS, stream_bounds
from nacrith.frameparams import FrameParams
from nacrith.models.llm import LanguageModel
from nacrith.settings import LEGACY_CODING, Coding, EnsembleSettings, llm_batch
from nacrith.support.feeder import Feeder

CONTEXT, SLIDE = 2048, 512


def record(
    model: LanguageModel,
    streams: list[list[int]],
    path: Path,
    warm: int = 0,
    context: int = CONTEXT,
    slide: int = SLIDE,
) -> float:
    """Every stream's logits before each of its tokens into path (rows of lane k
    first, then lane k + 1 ...), through a window of ``context`` tokens sliding
    by ``slide``; returns the model's seconds. With ``warm``, every stream but
    the first reads the first ``warm`` tokens of the frame after its start
    token, before its own."""
    n_vocab = model.symbols.n_vocab
    fed = [[s for s in stream if s < n_vocab] for stream in streams]
    prefix = fed[0][:warm]
    offsets = np.cumsum([0, *(len(f) + 1 for f in fed)])
    rows = np.lib.format.open_memmap(
        path.with_suffix(".tmp.npy"), "w+", np.float32, (int(offsets[-1]), n_vocab)
    )
    # A batch as large as a slide, for the warm prefix (the coder's own steps feed one token).
    feeder = Feeder(model.windows(context, slide, slide if warm else 1, len(streams)), model.start_token)
    start = time.perf_counter()
    feeder.reset(len(streams))
    for i in range(0, len(prefix), slide):
        chunk = prefix[i : i + slide]
        feeder.feed([(k, chunk, True) for k in range(1, len(streams))])
    for k in range(len(streams)):
        rows[offsets[k]] = feeder.scores(k)
    for step in range(max(len(f) for f in fed)):
        requests = [(k, (f[step],), True) for k, f in enumerate(fed) if step < len(f)]
        feeder.feed(requests)
        for k, _, _ in requests:
            rows[offsets[k] + step + 1] = feeder.scores(k)
        if step % 512 == 0:
            print(f"  step {step}/{max(len(f) for f in fed)}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    rows.flush()
    del rows
    path.with_suffix(".tmp.npy").rename(path)
    return seconds


class Replay:
    """engine.Predictor over recorded logits: lane k's row after its j-th token."""

    def __init__(
        self,
        rows: np.ndarray,
        offsets: list[int],
        batch: int,
        context: int = CONTEXT,
        slide: int = SLIDE,
    ) -> None:
        self.rows, self.offsets = rows, offsets
        self.n_vocab = rows.shape[1]
        self.lanes, self.batch = len(offsets) - 1, batch
        self.context, self.slide = context, slide
        size = self.lanes * batch
        self._token = (ctypes.c_int32 * size)()
        self._pos = np.zeros(size, dtype=np.int32)
        self._n_seq = (ctypes.c_int32 * size)()
        self._cells = np.zeros(size, dtype=np.int32)
        self._seq = (ctypes.c_void_p * size)(*(self._cells.ctypes.data + 4 * i for i in range(size)))
        self._flags = np.zeros(size, dtype=np.int8)
        self._out = np.empty((size, self.n_vocab), dtype=np.float32)
        self._fed = [0] * self.lanes
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
        self._fed = [-1] * self.lanes  # the start token comes first

    def slide_lane(self, lane: int) -> None:
        pass  # the recording slid its windows where the coder does

    def evaluate(self, n_tokens: int) -> int:
        start = time.perf_counter()
        rows = 0
        for i in range(n_tokens):
            lane = int(self._cells[i])
            self._fed[lane] += 1
            if self._flags[i]:
                self._out[rows] = self.rows[self.offsets[lane] + self._fed[lane]]
                rows += 1
        self.seconds += time.perf_counter() - start
        return int(self._out.ctypes.data)


def recording(
    model: LanguageModel,
    streams: list[list[int]],
    path: Path,
    label: str,
    warm: int = 0,
    context: int = CONTEXT,
    slide: int = SLIDE,
) -> tuple[np.ndarray, list[int], float]:
    """The streams' recording (``record``), made once and kept in path with the
    model's seconds beside it: its rows, the row each stream starts at, and
    those seconds."""
    meta = path.with_suffix(".json")
    if not path.exists():
        print(f"recording {label}", file=sys.stderr, flush=True)
        meta.write_text(json.dumps({"model_s": record(model, streams, path, warm, context, slide)}))
    n_vocab = model.symbols.n_vocab
    offsets = list(np.cumsum([0, *(sum(1 for s in st if s < n_vocab) + 1 for st in streams)]))
    return np.load(path, mmap_mode="r"), offsets, json.loads(meta.read_text())["model_s"]


def replayed_params(
    lanes: int,
    ensemble: EnsembleSettings | None,
    coding: Coding,
    start_token: int,
    context: int = CONTEXT,
    slide: int = SLIDE,
) -> FrameParams:
    """The frame settings of streams already split (min_stream only needs to be a valid one)."""
    return FrameParams(context, slide, 1.0, ensemble, coding, lanes, 1 if lanes > 1 else 0, start_token)


def code_replayed(
    rows: np.ndarray,
    offsets: list[int],
    streams: list[list[int]],
    start_token: int,
    ensemble: EnsembleSettings | None,
    coding: Coding,
    context: int = CONTEXT,
    slide: int = SLIDE,
    verify: bool = True,
) -> tuple[list[bytes], FrameStats, float, bool | None]:
    """The streams coded from their recording by the real engine and, with
    verify, decoded again: the payloads, the coder's counts, the host's seconds
    (the replay's own reading left out) and whether decoding gave the streams
    back (None unverified)."""

    def replay() -> Replay:
        return Replay(rows, offsets, llm_batch(ensemble), context, slide)

    params = replayed_params(len(streams), ensemble, coding, start_token, context, slide)
    player = replay()
    start = time.perf_counter()
    payloads, stats = encode_streams(player, params, streams, ESCAPE_SYMBOLS)
    host_s = time.perf_counter() - start - player.seconds
    ok = None
    if verify:
        counts = [len(s) for s in streams]
        back = decode_streams(replay(), params, payloads, counts, ESCAPE_SYMBOLS)
        ok = back == [list(s) for s in streams]
    return payloads, stats, host_s, ok


POLICIES: dict[str, tuple[EnsembleSettings | None, Coding]] = {
    "llm only": (None, Coding()),
    "cold": (EnsembleSettings(), LEGACY_CODING),
    "shared": (EnsembleSettings(), Coding()),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?")
    parser.add_argument("--lanes", default="1,2,4,8,16")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--cache", type=Path, default=Path("lane-cache"), help="where recordings are kept")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model", help="GGUF file (default: the bundled model)")
    parser.add_argument("--warm", type=int, default=0, metavar="P", help="warm windows of P tokens")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    path = Path(args.file) if args.file else locate("canterbury", "alice29.txt")
    data = path.read_bytes()
    model = LanguageModel(args.model, threads=args.threads)
    symbols = model.symbols.encode(data)
    args.cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(data + model.sha256 + f"{CONTEXT}/{SLIDE}".encode()).hexdigest()[:12]
    results = []
    for lanes in (int(x) for x in args.lanes.split(",")):
        bounds = stream_bounds(len(symbols), lanes, 1)
        streams = [symbols[a:b] for a, b in itertools.pairwise(bounds)]
        rec = args.cache / f"{path.name}-{key}-{lanes}{f'-warm{args.warm}' if args.warm else ''}.npy"
        rows, offsets, model_s = recording(model, streams, rec, f"{lanes} lanes", args.warm)
        for name in args.policies.split(","):
            ensemble, coding = POLICIES[name]
            payloads, stats, host_s, ok = code_replayed(
                rows, offsets, streams, model.start_token, ensemble, coding
            )
            coded = sum(len(p) for p in payloads)
            # The model's share: the recording evaluated every token; with the skip, fewer reach it.
            model_share = model_s * (1 - stats.skipped / len(symbols))
            row = {
                "lanes": lanes,
                "policy": name + (f", warm {args.warm}" if args.warm else ""),
                "bpb": 8 * coded / len(data),
                "payload_bytes": coded,
                "tok_s_estimate": len(symbols) / (model_share + host_s),
                "model_tok_s": len(symbols) / model_s,
                "host_us_per_token": 1e6 * host_s / len(symbols),
                "skipped": stats.skipped,
                "verified": ok,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{path.name}, {len(data):,} bytes, {len(symbols):,} symbols; payload bits per byte\n")
    print("| lanes | policy | bpb | vs 1 lane | tok/s (est.) | host µs/token | skipped | verified |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        base = next((b for b in results if b["lanes"] == 1 and b["policy"] == r["policy"]), r)
        print(
            f"| {r['lanes']} | {r['policy']} | {r['bpb']:.4f} | {100 * (r['bpb'] / base['bpb'] - 1):+.2f}% "
            f"| {r['tok_s_estimate']:.1f} | {r['host_us_per_token']:.0f} | {r['skipped']:,} "
            f"| {r['verified']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
