"""The FastAPI application: create_app(settings) builds one, with its workers
started and stopped by the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nacrith import __version__

from .errors import HANDLERS
from .limits import BodyLimit
from .metrics import Metrics
from .pool import PoolFactory
from .routes import router
from .service import Service
from .settings import ServerSettings

DESCRIPTION = """\
Lossless compression with a language model, as a service.

`POST /compress` takes any bytes and returns a Nacrith file; `POST /decompress`
takes a Nacrith file and returns the original bytes. Bodies are raw
(`application/octet-stream`), not multipart. Errors are JSON objects
`{"error": ..., "message": ...}`.
"""


class CountRequests:
    """Counts every answer by endpoint and status, whoever sent it (a route,
    an error handler, the body limit)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, paths: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Unknown paths share one label, so scanners cannot grow the metrics without bound.
        endpoint = scope["path"] if scope["path"] in self.paths else "other"

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def create_app(settings: ServerSettings | None = None, pool_factory: PoolFactory | None = None) -> FastAPI:
    """A Nacrith service. Its workers load the model when the app starts
    (``/readyz`` answers 200 from then on) and stop when it shuts down.
    ``pool_factory`` gives the workers (default: processes on this machine,
    parallel.Workers, as ``settings`` plans them)."""
    settings = settings or ServerSettings.from_env()
    service = Service(settings, pool_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Nacrith",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(router)
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(BodyLimit, limit=settings.max_body)
    # Added last, so outermost: it also sees the body limit's 413s.
    paths = {route.path for route in router.routes if hasattr(route, "path")}
    app.add_middleware(CountRequests, metrics=service.metrics, paths=paths)
    return app
