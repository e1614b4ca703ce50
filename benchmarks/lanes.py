"""Throughput and size by lanes and workers: tokens/s and bpb, every file verified.

    python benchmarks/lanes.py [FILE] [--lanes 1,4,16,64] [--workers 1,2] [--threads N]
                               [--gpus 0] [--frame-size BYTES] [--limit BYTES]
                               [--min-stream TOKENS] [--ensemble shared,cold] [--json OUT]

FILE defaults to alice29.txt of the Canterbury corpus (found and checked
through the corpus manifest). Each combination runs
in a fresh process (so its peak memory is its own): it compresses the file,
decompresses it, checks the bytes, and reports

- tokens/s: the tokens of the neural frames divided by the compress time
  (and by the decompress time), model loading excluded;
- bpb of the file, and the change against the first lane count of the same
  worker count;
- peak RSS of the process and its workers (MiB).

With --ensemble shared,cold each lane count runs twice: the streams of a
frame sharing one ensemble (the default), and each stream with its own, as
in files before the CODING parameter.

Threads per worker default to the cores divided among the workers. Workers
share out whole frames, so they only help inputs of several frames: use
--frame-size to cut one file into several. With --gpus, the model runs on
those GPUs, workers dealt over them.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nacrith.api import Codec
from nacrith.corpora import locate
from nacrith.crash import run_in_child
from nacrith.errors import CorpusError, one_line
from nacrith.models.llm import default_threads
from nacrith.options import CompressOptions
from nacrith.reports import Summary
from nacrith.settings import Coding


@dataclass
class Row:
    lanes: int
    #: "shared" or "cold": the streams of a frame share one ensemble, or each has its own.
    ensemble: str
    workers: int
    threads: int
    raw_bytes: int
    coded_bytes: int
    tokens: int
    compress_s: float
    decompress_s: float
    verified: bool
    peak_rss_mib: float
    #: Why the run gave no figures (its process died, or it raised); None if it ran.
    error: str | None = None

    @classmethod
    def failed(cls, lanes: int, ensemble: str, workers: int, threads: int, error: str) -> Row:
        return cls(lanes, ensemble, workers, threads, 0, 0, 0, 0.0, 0.0, False, 0.0, error)

    @property
    def bpb(self) -> float:
        return 8 * self.coded_bytes / self.raw_bytes if self.raw_bytes else math.nan

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.compress_s if self.compress_s else math.nan

    @property
    def decode_tokens_per_s(self) -> float:
        return self.tokens / self.decompress_s if self.decompress_s else math.nan


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def measure(
    path: str,
    limit: int | None,
    lanes: int,
    ensemble: str,
    workers: int,
    threads: int,
    gpus: tuple[str, ...],
    frame_size: int,
    min_stream: int,
) -> Row:
    """One combination, in the calling process."""
    data = Path(path).read_bytes()[:limit]
    options = CompressOptions(
        lanes=lanes, frame_size=frame_size, min_stream=min_stream, coding=Coding(shared=ensemble == "shared")
    )
    with Codec(None, threads, workers=workers if workers > 1 or gpus else None, gpus=gpus) as codec:
        # Load the model (and start the workers) before the clock starts.
        codec.model  # noqa: B018
        if codec.workers is None:
            codec.model.predictor(options.frame_params(codec.model.start_token))
        start = time.perf_counter()
        summary: Summary = codec.compress_stream(
            io.BytesIO(data), (out := _Sink()), options, content_size=len(data)
        )
        compress_s = time.perf_counter() - start
        blob = out.getvalue()
        start = time.perf_counter()
        back = codec.decompress(blob)
        decompress_s = time.perf_counter() - start
    return Row(
        lanes,
        ensemble,
        workers,
        threads,
        len(data),
        len(blob),
        summary.stats.symbols,
        compress_s,
        decompress_s,
        back == data,
        _peak_rss_mib(),
    )


class _Sink:
    """An output that cannot seek, like a pipe: the writer spools, as for stdout."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def seekable(self) -> bool:
        return False

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def run_isolated(
    path: str,
    limit: int | None,
    lanes: int,
    ensemble: str,
    workers: int,
    threads: int,
    gpus: tuple[str, ...],
    frame_size: int,
    min_stream: int,
) -> Row:
    """measure() in a fresh process, so that its peak memory is its own; a run
    that fails, its process killed by a signal included, is a failed row."""
    try:
        return run_in_child(
            measure, path, limit, lanes, ensemble, workers, threads, gpus, frame_size, min_stream
        )
    except Exception as exc:  # reported in the table, never dropped
        return Row.failed(lanes, ensemble, workers, threads, f"{type(exc).__name__}: {one_line(exc)}")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="input (default: the Canterbury corpus's alice29.txt)")
    parser.add_argument("--lanes", type=_ints, default=[1, 4, 16, 64])
    parser.add_argument("--workers", type=_ints, default=[1, 2])
    parser.add_argument("--threads", type=int, help="llama.cpp threads per worker (default: cores / workers)")
    parser.add_argument("--gpus", default="", help="GPUs to run on, e.g. 0")
    parser.add_argument("--frame-size", type=int, default=CompressOptions.frame_size)
    parser.add_argument("--limit", type=int, metavar="BYTES", help="only the first BYTES of the file")
    parser.add_argument(
        "--min-stream",
        type=int,
        default=CompressOptions.min_stream,
        metavar="TOKENS",
        help="fewest symbols per stream (default %(default)s; lower it to split a small input in every lane)",
    )
    parser.add_argument(
        "--ensemble",
        type=lambda text: text.split(","),
        default=["shared"],
        help="shared, cold or both (shared,cold): the streams of a frame share one ensemble, or not",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.file is None:
        try:
            args.file = str(locate("canterbury", "alice29.txt"))
        except CorpusError as exc:
            print(f"lanes: {exc}", file=sys.stderr)
            return 2
    if not Path(args.file).is_file():
        print(f"lanes: {args.file}: not found", file=sys.stderr)
        return 2
    gpus = tuple(g for g in args.gpus.split(",") if g)
    rows = []
    for workers in args.workers:
        threads = args.threads or max(1, default_threads() // workers)
        for lanes in args.lanes:
            for ensemble in args.ensemble if lanes > 1 else args.ensemble[:1]:
                row = run_isolated(
                    args.file,
                    args.limit,
                    lanes,
                    ensemble,
                    workers,
                    threads,
                    gpus,
                    args.frame_size,
                    args.min_stream,
                )
                rows.append(row)
                outcome = (
                    f"FAILED: {row.error}"
                    if row.error
                    else f"{row.tokens_per_s:7.1f} tok/s, {row.bpb:.4f} bpb, verified {row.verified}"
                )
                print(
                    f"lanes {lanes:>3} {ensemble}  workers {workers}  threads {threads}: {outcome}",
                    file=sys.stderr,
                    flush=True,
                )
    device = f"GPU {args.gpus}" if gpus else f"CPU, {default_threads()} cores"
    size = Path(args.file).stat().st_size
    if args.limit is not None:
        size = min(size, args.limit)
    name = Path(args.file).name + (f" (first {size:,} bytes)" if args.limit else "")
    print(
        f"\n{name}, {size:,} bytes, frames of {args.frame_size:,} bytes, "
        f"streams of at least {args.min_stream:,} symbols, {device}"
    )
    print(
        f"{'lanes':>5} {'ensemble':>8} {'workers':>7} {'threads':>7} {'tok/s':>8} {'speed-up':>8} "
        f"{'dec tok/s':>9} "
        f"{'bytes':>9} {'bpb':>7} {'vs 1st':>7} {'peak MiB':>8} {'verified':>8}"
    )
    ran = [r for r in rows if not r.error]
    for row in rows:
        if row.error:
            print(f"{row.lanes:>5} {row.ensemble:>8} {row.workers:>7} {row.threads:>7}  FAILED: {row.error}")
            continue
        base = ran[0]
        first = next(r for r in ran if r.workers == row.workers)
        print(
            f"{row.lanes:>5} {row.ensemble:>8} {row.workers:>7} {row.threads:>7} {row.tokens_per_s:>8.1f} "
            f"{row.tokens_per_s / base.tokens_per_s:>7.2f}x {row.decode_tokens_per_s:>9.1f} "
            f"{row.coded_bytes:>9,} {row.bpb:>7.4f} {100 * (row.bpb / first.bpb - 1):>+6.2f}% "
            f"{row.peak_rss_mib:>8.0f} {'yes' if row.verified else 'NO':>8}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.verified for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
