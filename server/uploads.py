"""Receiving a request's body: spooled to disk, under a limit of uploads at
once and a timeout, before the request may take a place in the queue.

Why the body comes first: a place in the queue stands for work the workers
will do, and a client that declares a body and then sends it slowly, or not
at all, does no work. While places were taken before the body was read, nine
stalled sockets filled a one-worker server's queue (503 QueueFull for
everyone else) and held it for as long as they stayed open. Now an upload
holds only an upload place, of which there are more (settings.UPLOADS_PER_PLACE
per place in the queue), and only until it stalls for the body timeout; then
it is answered 408 and its connection closed. The cost: a request may be
refused (503 QueueFull) after its upload, when the queue filled meanwhile; a
queue already full refuses it before a byte is read.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import IO

from starlette.requests import Request

from .errors import ApiError
from .jobs import ClientGone
from .metrics import GONE, STALLED
from .service import Service
from .settings import MIN_UPLOAD_RATE


async def receive_upload(service: Service, request: Request, endpoint: str) -> IO[bytes]:
    """The request's body, spooled to an unlinked temporary file (a crash
    leaves nothing behind) and rewound. 503 TooManyUploads when every upload
    place is taken; 408 BodyTimeout, the connection closed, when the client
    stalls; ClientGone when it leaves. A body over the limit is stopped by
    limits.BodyLimit, around this. Either way the upload is counted off and
    the spool closed."""
    if not service.start_upload():
        raise ApiError(
            "TooManyUploads",
            f"all {service.settings.upload_capacity} upload places are taken; retry later",
            {"Retry-After": "1"},
        )
    try:
        # Closed here on failure; on success its owner (the job) closes it.
        spool = tempfile.TemporaryFile(dir=service.settings.spool_dir)  # noqa: SIM115
        try:
            size = await _spool_body(service, request, endpoint, spool)
        except BaseException:
            spool.close()
            raise
    finally:
        service.end_upload()
    service.metrics.bytes_in.labels(endpoint).inc(size)
    spool.seek(0)
    return spool


async def _spool_body(service: Service, request: Request, endpoint: str, spool: IO[bytes]) -> int:
    timeout = service.settings.body_timeout
    started = last_byte = time.monotonic()
    size = 0
    while True:
        # Silent for the timeout, or (past it) slower than MIN_UPLOAD_RATE on average.
        silent_until = last_byte + timeout
        slow_until = started + timeout + size / MIN_UPLOAD_RATE
        try:
            async with asyncio.timeout(max(0.0, min(silent_until, slow_until) - time.monotonic())):
                message = await request.receive()
        except TimeoutError:
            service.metrics.cancelled.labels(endpoint, STALLED).inc()
            if silent_until <= slow_until:
                why = f"nothing for {timeout:g} s"
            else:
                seconds = time.monotonic() - started
                why = f"{size} bytes in {seconds:.0f} s, under {MIN_UPLOAD_RATE >> 10} KiB/s"
            # The rest of the body is never read, so the connection cannot carry another request.
            raise ApiError(
                "BodyTimeout", f"the request body stopped coming ({why})", {"Connection": "close"}
            ) from None
        if message["type"] == "http.disconnect":
            service.metrics.cancelled.labels(endpoint, GONE).inc()
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            # A chunk is at most what one socket read gives (about 64 KiB):
            # written to the page cache at once, it does not hold up the loop.
            spool.write(chunk)
            size += len(chunk)
            last_byte = time.monotonic()
        if not message.get("more_body", False):
            spool.flush()
            return size
