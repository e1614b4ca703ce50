"""Running `nacrith serve` for tests, and the inputs they send it."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from tiny_model import tiny_text

from nacrith.format import Header
from nacrith.server.client import Client

KEY = "test-key-1234"
START_TIMEOUT = 180.0
SENTENCE = (
    "the river ran past the mill and the old miller counted his sacks of grain while "
    "children played by the water and a dog barked at the geese on the far bank"
)


def prose(n: int, seed: int) -> bytes:
    r = random.Random(seed)
    words = SENTENCE.split()
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(r.choice(words))
    return (" ".join(out)[:n]).encode()


def gibberish(n: int, seed: int) -> bytes:
    """Text of made-up words: every token needs the model (nothing to match or skip)."""
    r = random.Random(seed)
    words = (
        "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 8))) for _ in range(n)
    )
    return " ".join(words).encode()[:n]


def other_models_file(blob: bytes) -> bytes:
    stream = io.BytesIO(blob)
    header = Header.read(stream)
    return (
        dataclasses.replace(header, model_id=bytes(len(header.model_id or b""))).pack()
        + blob[stream.tell() :]
    )


#: Text the tiny test model codes far better than zstd does (tests/tiny_model.py).
TEXT = tiny_text(1500, seed=21)
#: Plain English, which the real model predicts far better than zstd does.
ENGLISH = (
    b"When the first frost came to the valley, the farmers brought their cattle down from the "
    b"high pastures and stored the last of the hay in the barns behind their houses. The children "
    b"walked to school along the frozen road, counting the crows that sat on the fence posts, and "
    b"in the evenings the families gathered around the stove to listen to the radio. Nobody in the "
    b"village could remember a winter as long as that one, although the oldest man, who had been a "
    b"soldier in his youth, claimed that he had seen snow in June when he was a boy. His neighbours "
    b"smiled politely whenever he told the story, because they had heard it many times before.\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    *flags: str,
    key: str | None = KEY,
    timeout: float = START_TIMEOUT,
    stop_timeout: float = 30,
    env_extra: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`nacrith serve` on a free loopback port, once /readyz says its workers are loaded."""
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    env.pop("NACRITH_API_KEY", None)
    if key is not None:
        env["NACRITH_API_KEY"] = key
    # A file, not a pipe: a server logging every request would fill a pipe nobody reads.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "nacrith", "serve", "--port", str(port), "--threads", "1", *flags],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            Client(url, timeout=5).wait_ready(timeout, lambda: process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            log.seek(0)
            raise RuntimeError(f"{exc}: {log.read().decode(errors='replace')[-3000:]}") from None
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until condition() holds, polled every 0.1 s; AssertionError after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
    return time.monotonic() - start


def metric(url: str, name: str) -> float:
    body = Client(url, timeout=10).request("GET", "/metrics").body.decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
