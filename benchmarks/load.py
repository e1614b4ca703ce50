"""Load test of the REST service on loopback: round trips of mixed inputs, several at a time.

    python benchmarks/load.py [--requests 200] [--concurrency 8] [--url URL] [--api-key KEY]
                              [--workers 2] [--threads N] [--backend local|ray] [--seed 1]
                              [--text-max 4096] [--messages M.jsonl [--dict D.ncd]] [--json OUT]

Without --url it starts `nacrith serve` on a free 127.0.0.1 port (with
--workers, --threads and --backend; ray starts a Ray of its own) and stops it
at the end. Each round trip is two
requests: POST /compress, then POST /decompress of the answer, whose bytes
must be the input's. Inputs are drawn with --seed: slices of English text
(alice29.txt, lcet10.txt, plrabn12.txt of the Canterbury corpus, 64 B to --text-max),
of a spreadsheet (kennedy.xls, 256 B to 64 KiB), and random bytes (256 B to
64 KiB), a third each. With --messages, the inputs are instead the messages of
a message set (one JSON string per line), in order; with --dict as well, the
server is started with that dictionary and every /compress asks for it, which
measures what a request costs beyond coding its own tokens (run once with and
once without --dict, one worker, one request at a time).

Prints requests/s, latency percentiles per endpoint, errors by kind and
round-trip mismatches; exits 1 unless both of the last are 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from nacrith.corpora import locate, read_messages
from nacrith.errors import CorpusError
from nacrith.server.client import Client, ServiceError

TEXTS = ("alice29.txt", "lcet10.txt", "plrabn12.txt")
SPREADSHEET = "kennedy.xls"


@dataclass
class Timing:
    endpoint: str
    seconds: float
    ok: bool


@dataclass
class Report:
    url: str
    requests: int
    concurrency: int
    seconds: float = 0.0
    bytes_in: int = 0
    compressed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    mismatches: int = 0
    latency: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def inputs(count: int, seed: int, text_max: int = 4096) -> list[tuple[str, bytes]]:
    r = random.Random(seed)
    texts = [locate("canterbury", name).read_bytes() for name in TEXTS]
    sheet = locate("canterbury", SPREADSHEET).read_bytes()

    def log_size(low: int, high: int) -> int:
        return int(math.exp(r.uniform(math.log(low), math.log(high))))

    def piece(source: bytes, size: int) -> bytes:
        start = r.randrange(len(source) - size)
        return source[start : start + size]

    chosen = []
    for i in range(count):
        kind = ("text", "spreadsheet", "random")[i % 3]
        if kind == "text":
            data = piece(r.choice(texts), log_size(min(64, text_max), text_max))
        elif kind == "spreadsheet":
            data = piece(sheet, log_size(256, 65536))
        else:
            data = r.randbytes(log_size(256, 65536))
        chosen.append((kind, data))
    r.shuffle(chosen)
    return chosen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The name a dictionary given with --dict has in the server started here.
DICT_NAME = "messages"


def messages(path: str, count: int) -> list[tuple[str, bytes]]:
    """The first ``count`` messages of a message set, as inputs."""
    return [("message", m) for m in read_messages(path, count)]


@contextlib.contextmanager
def local_server(
    workers: int, threads: int | None, backend: str = "local", dictionary: str | None = None
) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "nacrith", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--backend", backend]
    if dictionary:
        command += ["--dict", f"{DICT_NAME}={dictionary}"]
    if threads:
        command += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k != "NACRITH_API_KEY"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            Client(url, timeout=5).wait_ready(300, lambda: process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            raise SystemExit(f"load: nacrith serve: {exc}") from None
        yield url
    finally:
        process.terminate()
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()


def run(
    url: str,
    api_key: str | None,
    requests: int,
    concurrency: int,
    seed: int,
    text_max: int = 4096,
    work: list[tuple[str, bytes]] | None = None,
    dictionary: str | None = None,
) -> Report:
    client = Client(url, api_key, timeout=3600)
    work = inputs(requests // 2, seed, text_max) if work is None else work
    params = {"dict": dictionary} if dictionary else {}
    report = Report(url, 2 * len(work), concurrency)
    timings: list[Timing] = []
    lock = threading.Lock()

    def timed(endpoint: str, call, data: bytes) -> bytes | None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            result = call(data)
        except ServiceError as exc:
            error = f"{endpoint}: {exc.status} {exc.error}"
        except Exception as exc:  # a load test counts every failure, whatever it is
            error = f"{endpoint}: {type(exc).__name__}"
        else:
            error = None
        with lock:
            timings.append(Timing(endpoint, time.perf_counter() - start, error is None))
            if error is not None:
                report.errors[error] += 1
        return result if error is None else None

    def round_trip(item: tuple[str, bytes]) -> None:
        _, data = item
        blob = timed("compress", lambda d: client.compress(d, **params), data)
        if blob is None:
            return
        back = timed("decompress", client.decompress, blob)
        with lock:
            report.bytes_in += len(data)
            report.compressed += len(blob)
            if back is not None and back != data:
                report.mismatches += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(round_trip, work))
    report.seconds = time.perf_counter() - start
    for endpoint in ("compress", "decompress", "all"):
        seconds = [t.seconds for t in timings if endpoint in ("all", t.endpoint)]
        if seconds:
            report.latency[endpoint] = {
                "p50": percentile(seconds, 50),
                "p90": percentile(seconds, 90),
                "p99": percentile(seconds, 99),
                "max": max(seconds),
            }
    return report


def print_report(report: Report) -> None:
    print(
        f"{report.requests} requests ({report.requests // 2} round trips), {report.concurrency} at a time, "
        f"in {report.seconds:.1f} s: {report.rate:.2f} requests/s"
    )
    print(f"input {report.bytes_in:,} B, compressed {report.compressed:,} B")
    print()
    print("| endpoint | p50 s | p90 s | p99 s | max s |")
    print("|---|---:|---:|---:|---:|")
    for endpoint, values in report.latency.items():
        cells = " | ".join(f"{values[k]:.2f}" for k in ("p50", "p90", "p99", "max"))
        print(f"| {endpoint} | {cells} |")
    print()
    print(f"errors: {sum(report.errors.values())}")
    for kind, count in report.errors.items():
        print(f"  {kind}: {count}")
    print(f"round-trip mismatches: {report.mismatches}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="HTTP requests, two per round trip")
    parser.add_argument("--concurrency", type=int, default=8, help="round trips in flight at once")
    parser.add_argument("--url", help="a running server (default: start one on loopback)")
    parser.add_argument("--api-key", default=os.environ.get("NACRITH_API_KEY"), help="its X-API-Key")
    parser.add_argument("--workers", type=int, default=2, help="workers of the server started here")
    parser.add_argument("--threads", type=int, help="llama.cpp threads per worker of that server")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="that server's backend")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--text-max", type=int, default=4096, help="longest text input, in bytes")
    parser.add_argument("--messages", metavar="M.jsonl", help="round trips of these messages instead")
    parser.add_argument("--dict", metavar="D.ncd", help="with --messages: compress them with this dictionary")
    parser.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    args = parser.parse_args(argv)
    if args.dict and not args.messages:
        parser.error("--dict goes with --messages")
    if args.requests < 2 or args.concurrency < 1 or args.text_max < 2:
        parser.error("--requests and --text-max must be at least 2, --concurrency at least 1")
    try:
        # The inputs are there and whole, before any server starts.
        work = messages(args.messages, args.requests // 2) if args.messages else None
        if work is None:
            inputs(1, args.seed)
    except CorpusError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(
            local_server(args.workers, args.threads, args.backend, args.dict)
        )
        name = DICT_NAME if args.dict else None
        report = run(url, args.api_key, args.requests, args.concurrency, args.seed, args.text_max, work, name)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**asdict(report), "requests_per_second": report.rate}, f, indent=2)
    return 0 if not report.errors and not report.mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
