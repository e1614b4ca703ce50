"""The FastAPI application: create_app(settings) builds one, with its workers
started and stopped by the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import Route
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

#: Where the documentation is served. The pages' scripts and styles are served
#: by the app too (from the fastapi-offline package), not from a CDN, so the
#: pages work where the service has no way out to the internet.
DOCUMENTATION = {"swagger_ui": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}


class CountRequests:
    """Counts every answer by endpoint and status, whoever sent it (a route,
    an error handler, the body limit)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.metrics.endpoint(scope["path"])

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

    app = FastAPIOffline(
        title="Nacrith",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=DOCUMENTATION["swagger_ui"],
        redoc_url=DOCUMENTATION["redoc"],
        openapi_url=DOCUMENTATION["openapi"],
        # Swagger UI would otherwise show a badge fetched from swagger.io's online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.service = service
    app.state.documentation = DOCUMENTATION
    app.include_router(router)
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    # Each page and endpoint its own label; the docs' scripts and anything else, "other".
    routes = [*app.routes, *router.routes]  # (newer FastAPI keeps an included router's routes in it)
    service.metrics.endpoints = frozenset(route.path for route in routes if isinstance(route, Route))
    app.add_middleware(BodyLimit, limit=settings.max_body)
    # Added last, so outermost: it also sees the body limit's 413s.
    app.add_middleware(CountRequests, metrics=service.metrics)
    return app
