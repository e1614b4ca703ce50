"""The server's state: the worker pool, the tokenizer-side model, admission
of requests, and the threads that run the library's blocking calls.

The uvicorn process does I/O only. llama_decode runs in the worker
processes (parallel.Workers, sharded over the GPUs given, or the replicas
of a Ray Serve deployment: ray_backend.RayPool); the library's
frame loop for each request (segmenting, zstd, writing the container) runs
in a thread of this process, so the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nacrith.dictionary import Dictionary
from nacrith.errors import DictionaryError, ModelError, NacrithError, one_line
from nacrith.models.llm import LanguageModel, open_model
from nacrith.parallel import Workers, plan_workers

from .metrics import Metrics
from .pool import FramePool, PoolFactory
from .settings import ServerSettings

log = logging.getLogger("nacrith.server")

#: Weight of the newest request in the running mean of request durations.
DURATION_WEIGHT = 0.2


class Service:
    def __init__(self, settings: ServerSettings, pool_factory: PoolFactory | None = None) -> None:
        self.settings = settings
        #: Read now, so that a missing or damaged one stops the start at once.
        self.dictionaries: dict[str, Dictionary] = {
            name: Dictionary.read(path) for name, path in settings.dicts
        }
        self.plans = plan_workers(settings.workers, settings.gpus, settings.threads)
        self.pool_factory: PoolFactory = pool_factory or self._local_pool
        self.metrics = Metrics()
        self.metrics.capacity.set(settings.capacity)
        self.metrics.upload_capacity.set(settings.upload_capacity)
        self.model: LanguageModel | None = None
        self.pool: FramePool | None = None
        self.load_error: str | None = None
        self.active = 0
        self.uploading = 0
        self.mean_seconds = 0.0
        # One thread per admitted request, so an admitted request never waits for a thread.
        self.threads = ThreadPoolExecutor(settings.capacity, thread_name_prefix="nacrith-job")
        self._loading: asyncio.Future[None] | None = None
        #: Set by close(): workers that finish loading after it are stopped at once.
        self._closed = False
        self._pool_lock = threading.Lock()
        #: Called (from a thread) when the workers cannot be started: `nacrith
        #: serve` stops the server then, rather than run one that is never ready.
        self.on_load_failure: Callable[[], None] | None = None

    @property
    def ready(self) -> bool:
        return self.pool is not None

    def start(self) -> None:
        """Load the models in the background: health answers at once, readiness once loaded."""
        loop = asyncio.get_running_loop()
        self._loading = loop.run_in_executor(self.threads, self._load)

    def _local_pool(self, model_path: Path) -> FramePool:
        return Workers(model_path, self.plans)

    def _load(self) -> None:
        started = time.monotonic()
        pool: FramePool | None = None
        try:
            # Here the model only segments and names itself in headers: one
            # thread, and no llama.cpp context is ever made in this process.
            self.model = open_model(self.settings.model, 1)
            pool = self.pool_factory(self.model.path)
            if pool.model.sha256 != self.model.sha256:
                # Headers name this process's model; frames must be coded with the same one.
                raise ModelError(f"the workers run another model than {self.model.name}")
            for dictionary in self.dictionaries.values():
                dictionary.check_model(self.model.sha256, self.model.symbols.n_vocab)
        except (NacrithError, OSError) as exc:
            if pool is not None:  # started, but of no use: its processes must not outlive us
                pool.close()
            self.load_error = one_line(exc)
            log.error("nacrith: cannot start the workers: %s", self.load_error)
            if self.on_load_failure is not None:
                self.on_load_failure()
            return
        with self._pool_lock:
            if self._closed:  # the server stopped while the workers loaded
                pool.close()
                return
            self.pool = pool
        self.metrics.workers.set(len(pool.describe()))
        self.metrics.ready.set(1)
        log.info(
            "nacrith: %d worker(s) ready with %s in %.1f s",
            len(pool.describe()),
            self.model.name,
            time.monotonic() - started,
        )

    async def stop(self) -> None:
        if self._loading is not None:
            await asyncio.wait([self._loading])
        self.close()

    def close(self) -> None:
        """Stop the workers now, whatever state the service is in. stop() calls it
        on a shutdown that gets that far; `nacrith serve` calls it again on its way
        out, for one that does not (a second Ctrl-C cancels the app's shutdown)."""
        with self._pool_lock:
            self._closed = True
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.close()
        self.metrics.ready.set(0)
        self.threads.shutdown(wait=False, cancel_futures=True)

    def dictionary(self, fingerprint: bytes) -> Dictionary:
        """The loaded dictionary a file names; DictionaryError naming it when there is none."""
        for dictionary in self.dictionaries.values():
            if dictionary.fingerprint == fingerprint:
                return dictionary
        raise DictionaryError(f"file needs dictionary {fingerprint.hex()}, which this service does not have")

    # --- admission ----------------------------------------------------------
    # Only ever called on the event loop, so no locks.

    def start_upload(self) -> bool:
        """Take an upload place; False when every one is taken."""
        if self.uploading >= self.settings.upload_capacity:
            return False
        self.uploading += 1
        self.metrics.uploads.set(self.uploading)
        return True

    def end_upload(self) -> None:
        self.uploading -= 1
        self.metrics.uploads.set(self.uploading)

    @property
    def queue_full(self) -> bool:
        return self.active >= self.settings.capacity

    def admit(self) -> bool:
        """Take a place for one request; False when every place is taken."""
        if self.queue_full:
            return False
        self.active += 1
        self.metrics.jobs.set(self.active)
        return True

    def release(self, seconds: float) -> None:
        self.active -= 1
        self.metrics.jobs.set(self.active)
        self.mean_seconds += DURATION_WEIGHT * (seconds - self.mean_seconds)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: a request's mean duration over the places."""
        if not self.ready:
            return 5
        return min(60, max(1, math.ceil(self.mean_seconds / self.settings.capacity)))
