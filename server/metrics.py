"""Prometheus metrics of one server, in a registry of its own (so that two
apps in one process, as in tests, never share counts).

Every metric with an ``endpoint`` label gives it the same way: the route's
path (``/compress``), or ``other`` for a path the app does not serve.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .pool import FramePool

#: Seconds over which the tokens-per-second gauge is averaged.
RATE_WINDOW = 60.0
#: The endpoint label of a path the app does not serve: one label for them all,
#: so that scanners cannot grow the metrics without bound.
OTHER_ENDPOINT = "other"
#: Why a request was given up before its answer was sent (nacrith_cancelled's reason).
GONE = "gone"  # the client closed the connection
STALLED = "stalled"  # the client stopped sending its body (the body timeout)
#: The endpoints that take work, whose cancellations are counted.
JOB_ENDPOINTS = ("/compress", "/decompress")


class Metrics:
    def __init__(self) -> None:
        #: The paths the app serves, each its own endpoint label (set by the app once its routes are known).
        self.endpoints: frozenset[str] = frozenset(JOB_ENDPOINTS)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "nacrith_requests", "HTTP requests answered", ["endpoint", "status"], registry=r
        )
        self.seconds = Histogram(
            "nacrith_request_seconds",
            "Time from a compress or decompress request's arrival to its answer's last byte",
            ["endpoint"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
            registry=r,
        )
        self.bytes_in = Counter("nacrith_bytes_in", "Request body bytes received", ["endpoint"], registry=r)
        self.bytes_out = Counter("nacrith_bytes_out", "Response body bytes sent", ["endpoint"], registry=r)
        self.tokens = Counter(
            "nacrith_tokens", "Symbols the language model coded or decoded", ["endpoint"], registry=r
        )
        self.errors = Counter(
            "nacrith_errors", "Requests that failed, by error class", ["endpoint", "error"], registry=r
        )
        self.cancelled = Counter(
            "nacrith_cancelled",
            "Requests given up before their answer was sent: the client went away (gone) "
            "or stopped sending its body (stalled)",
            ["endpoint", "reason"],
            registry=r,
        )
        for endpoint in JOB_ENDPOINTS:  # shown at 0 from the start, so a rate() has a baseline
            for reason in (GONE, STALLED):
                self.cancelled.labels(endpoint, reason)
        self.jobs = Gauge("nacrith_jobs", "Compress and decompress requests admitted now", registry=r)
        self.capacity = Gauge(
            "nacrith_queue_capacity", "Requests admitted at once before answering 503", registry=r
        )
        self.uploads = Gauge("nacrith_uploads", "Request bodies being received now", registry=r)
        self.upload_capacity = Gauge(
            "nacrith_upload_capacity", "Request bodies received at once before answering 503", registry=r
        )
        self.frames_waiting = Gauge(
            "nacrith_frames_waiting", "Frames given to the workers and not done yet", registry=r
        )
        self.frames_stopped = Counter(
            "nacrith_frames_stopped",
            "Frames of requests whose client left, dropped or stopped before they were done",
            registry=r,
        )
        self._stopped_seen = 0
        self.workers = Gauge("nacrith_workers", "Worker processes", registry=r)
        self.ready = Gauge("nacrith_ready", "1 once every worker has loaded the model", registry=r)
        self.tokens_per_second = Gauge(
            "nacrith_tokens_per_second",
            f"Symbols coded or decoded per second over the last {RATE_WINDOW:.0f} s",
            registry=r,
        )
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def endpoint(self, path: str) -> str:
        """The endpoint label of a request's path."""
        return path if path in self.endpoints else OTHER_ENDPOINT

    def count_tokens(self, endpoint: str, n: int) -> None:
        if n <= 0:
            return
        self.tokens.labels(endpoint).inc(n)
        with self._lock:
            self._recent.append((time.monotonic(), n))

    def render(self, pool: FramePool | None) -> bytes:
        """The text exposition, with what is read from the pool rather than kept here brought up to date."""
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - RATE_WINDOW:
                self._recent.popleft()
            self.tokens_per_second.set(sum(n for _, n in self._recent) / RATE_WINDOW)
            if pool is not None:
                self.frames_waiting.set(pool.frames_waiting())
                stopped = pool.frames_stopped
                self.frames_stopped.inc(stopped - self._stopped_seen)
                self._stopped_seen = stopped
        return generate_latest(self.registry)
