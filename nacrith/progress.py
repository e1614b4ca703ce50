"""A one-line progress display on stderr, for terminals only."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nacrith.reports import ProgressInfo

__all__ = ["ProgressLine", "human_bytes", "human_duration"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLine:
    """Redraws one status line: share done, speed in tokens/s, running bpb, ETA."""

    def __init__(
        self, label: str, total_bytes: int | None, stream: TextIO = sys.stderr, min_interval: float = 0.25
    ):
        self.label = label
        self.total = total_bytes
        self.stream = stream
        self.min_interval = min_interval
        self.start = time.monotonic()
        self._last = 0.0
        self._width = 0

    def update(self, info: ProgressInfo) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        total = self.total or info.total_bytes
        parts = [self.label]
        if total:
            share = min(info.bytes_done / total, 1.0)
            parts.append(f"{100 * share:5.1f}% of {human_bytes(total)}")
        else:
            parts.append(human_bytes(info.bytes_done))
        parts.append(f"{info.symbols / elapsed:6.1f} tok/s")
        if info.coded_bits and info.bytes_done:
            parts.append(f"{info.coded_bits / info.bytes_done:.3f} bpb")
        if total and info.bytes_done:
            parts.append(f"ETA {human_duration(elapsed * max(total - info.bytes_done, 0) / info.bytes_done)}")
        line = "  ".join(parts)
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
