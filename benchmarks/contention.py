"""Compressions sharing the cores: each run's wall time alone, and with 2 and 4 at once.

    python benchmarks/contention.py                      # alice29.txt's first 6,000 bytes, 1, 2 and 4 at once
    python benchmarks/contention.py notes.txt --runs 1,2 --limit 20000
    python benchmarks/contention.py --env GOMP_SPINCOUNT=300000   # GNU OpenMP's own default spin
    python benchmarks/contention.py --env OMP_WAIT_POLICY=passive -- --no-skip

Every run is a separate ``nacrith compress`` process with default settings
(options after ``--`` are passed on), started together with the others of its
round (or ``--stagger`` seconds apart); each one's time is from its start to
its exit. The target is
that two compressions at once on a 2-core machine each take at most twice as
long as one alone: llama.cpp's threads, each process using every core by
default, must wait for each other politely (nacrith/models/runtime.py). Every
output is checked with ``nacrith test`` after its round, outside the timing.
``--env`` sets variables for the compressions only (e.g. another OpenMP wait
policy to compare with).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The environment the compressions get: the caller's, as it was before the
# import below set nacrith's own OpenMP wait policy in this process (each
# compression sets it for itself, unless the caller or --env already did).
CALLER_ENV = dict(os.environ)

from nacrith.corpora import locate  # noqa: E402
from nacrith.errors import CorpusError  # noqa: E402
from nacrith.models.llm import default_threads  # noqa: E402


def _nacrith(*args: str) -> list[str]:
    return [sys.executable, "-m", "nacrith", *args]


def one_round(
    source: Path,
    count: int,
    extra: list[str],
    env: dict[str, str],
    work: Path,
    timeout: float,
    stagger: float = 0.0,
) -> list[float]:
    """Wall seconds of ``count`` compressions, each from its own start (the
    i-th ``stagger`` * i seconds after the first), each output verified; inf
    for one still running after ``timeout`` seconds (then stopped)."""
    outputs = [work / f"run{count}-{i}.nc" for i in range(count)]
    starts, procs = [], []
    for i, out in enumerate(outputs):
        if i and stagger:
            time.sleep(stagger)
        starts.append(time.perf_counter())
        procs.append(
            subprocess.Popen(_nacrith("compress", "-q", *extra, str(source), "-o", str(out)), env=env)
        )
    times = [math.inf] * count
    waiting = dict(enumerate(procs))
    while waiting and time.perf_counter() - starts[0] < timeout:
        for i, proc in list(waiting.items()):
            if proc.poll() is not None:
                times[i] = time.perf_counter() - starts[i]
                del waiting[i]
                if proc.returncode != 0:
                    raise SystemExit(f"contention: a compression failed with status {proc.returncode}")
        time.sleep(0.02)
    for proc in waiting.values():
        proc.kill()
        proc.wait()
    for out, seconds in zip(outputs, times, strict=True):
        if seconds < math.inf:
            subprocess.run(_nacrith("test", "-q", str(out)), check=True, env=env)
    return times


def _seconds(t: float) -> str:
    return f"{t:.1f}" if t < math.inf else "stopped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="input (default: the Canterbury corpus's alice29.txt)")
    parser.add_argument("--limit", type=int, default=6000, metavar="BYTES", help="first BYTES of the file")
    parser.add_argument("--runs", default="1,2,4", help="compressions at once, per round (default 1,2,4)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--stagger", type=float, default=0.0, metavar="S", help="start each run S seconds after the last"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, metavar="S", help="stop a round after S seconds (default 600)"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the rounds as JSON")
    parser.add_argument("extra", nargs="*", help="options for nacrith compress, after --")
    args = parser.parse_args(argv)
    try:
        path = Path(args.file) if args.file else locate("canterbury", "alice29.txt")
    except CorpusError as exc:
        print(f"contention: {exc}", file=sys.stderr)
        return 2
    env = dict(CALLER_ENV)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env takes NAME=VALUE, not {item!r}")
        env[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "input"
        source.write_bytes(path.read_bytes()[: args.limit])
        rounds = {}
        for count in (int(n) for n in args.runs.split(",")):
            rounds[count] = one_round(source, count, args.extra, env, work, args.timeout, args.stagger)
            print(f"{count} at once: " + ", ".join(_seconds(t) for t in rounds[count]), file=sys.stderr)
    size = min(args.limit, path.stat().st_size)
    alone = rounds[1][0] if 1 in rounds else None
    settings = " ".join(args.env + args.extra) or "default settings"
    if args.stagger:
        settings += f", each run started {args.stagger:g} s after the last"
    print(f"\n{path.name} (first {size:,} bytes), {default_threads()} cores, {settings}")
    print(f"{'at once':>7} {'each (s)':>24} {'slowest':>8} {'vs alone':>8}")
    for count, times in rounds.items():
        each = ", ".join(_seconds(t) for t in times)
        if not alone:
            ratio = f"{'-':>8}"
        elif max(times) < math.inf:
            ratio = f"{max(times) / alone:>7.2f}x"
        else:  # stopped at the timeout: at least this much slower
            ratio = f">{args.timeout / alone:.1f}x".rjust(8)
        print(f"{count:>7} {each:>24} {_seconds(max(times)):>8} {ratio}")
    if args.json:
        doc = {
            "settings": settings,
            "rounds": {n: [t if t < math.inf else None for t in ts] for n, ts in rounds.items()},
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
