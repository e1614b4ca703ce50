"""One compress or decompress request once its body is in: its place in the
queue, its spooled files, its frames in the workers, and what happens when
its client goes away.

The upload is spooled to disk before the job starts (uploads.receive_upload):
once a response has started, an ASGI server no longer delivers the request
body, so the body cannot be read while the answer streams. Spool files are
unlinked from the start (tempfile.TemporaryFile), so even a crash leaves none
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

from starlette.requests import Request

from nacrith.parallel import WorkerJob

from .metrics import GONE
from .service import Service

T = TypeVar("T")


class ClientGone(Exception):
    """The client closed the connection before its answer was complete."""


class Job:
    """A request admitted to the queue (its place taken by the caller, given
    back by close()), with its spooled body, which it closes."""

    def __init__(
        self, service: Service, request: Request, endpoint: str, body: IO[bytes], started: float
    ) -> None:
        if service.pool is None:
            raise RuntimeError("a job needs the workers loaded")
        self.service = service
        self.request = request
        #: Its label in the metrics: the route's path.
        self.endpoint = endpoint
        #: When the request arrived (its upload began), for the request-duration metric.
        self.started = started
        self.admitted = time.monotonic()
        self.workers: WorkerJob = service.pool.job()
        self.body = body
        self._files: list[IO[bytes]] = [body]
        #: The step running in a thread now, if any: files stay open until it ends.
        self._running: asyncio.Future[Any] | None = None
        self._gone = asyncio.Event()
        # After the body, the only message left to receive is the disconnect.
        self._watcher: asyncio.Task[None] | None = asyncio.create_task(self._watch_disconnect())
        self._released = False

    def spool(self) -> IO[bytes]:
        # Closed by close(), once no thread uses it.
        f = tempfile.TemporaryFile(dir=self.service.settings.spool_dir)  # noqa: SIM115
        self._files.append(f)
        return f

    async def _watch_disconnect(self) -> None:
        """After the body, the only message left to receive is the disconnect."""
        while True:
            message = await self.request.receive()
            if message["type"] == "http.disconnect":
                self._gone.set()
                return

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """fn(*args) in a thread; if the client leaves first, cancel the job's
        frames (freeing the workers within about a second) and raise ClientGone."""
        if self._gone.is_set():
            self.cancel()
            raise ClientGone
        loop = asyncio.get_running_loop()
        step = loop.run_in_executor(self.service.threads, fn, *args)
        self._running = step
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            either: list[asyncio.Future[Any]] = [step, gone]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Starlette cancels a streaming response whose client has gone.
            self.cancel()
            step.add_done_callback(_forget)
            raise
        finally:
            gone.cancel()
        if not step.done():
            self.cancel()
            # The step ends soon with JobCancelled, which nobody waits for any more.
            step.add_done_callback(_forget)
            raise ClientGone
        self._running = None
        return step.result()

    def cancel(self) -> None:
        """Stop the job's frames: its client has gone."""
        if not self.workers.cancelled:
            self.workers.cancel()
            self.service.metrics.cancelled.labels(self.endpoint, GONE).inc()

    def close(self) -> None:
        """Give back the place in the queue now, and the files once no thread uses them."""
        if self._watcher is not None:
            self._watcher.cancel()
        if not self._released:
            self._released = True
            self.service.release(time.monotonic() - self.admitted)
        files, self._files = self._files, []

        def close_files(_: object = None) -> None:
            for f in files:
                with contextlib.suppress(OSError):
                    f.close()

        if self._running is not None and not self._running.done():
            self._running.add_done_callback(close_files)
        else:
            close_files()


def _forget(step: asyncio.Future[Any]) -> None:
    if not step.cancelled():
        step.exception()  # retrieved, so asyncio does not log it as lost
