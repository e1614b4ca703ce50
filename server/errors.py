"""How the service answers errors: a status and a one-line JSON message
naming the problem, the same shape for every error it sends."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from nacrith.errors import JobCancelled, NacrithError, WorkerError, one_line

from .jobs import ClientGone

log = logging.getLogger("nacrith.server")

#: nginx's status for "the client closed the connection first"; never seen by the client.
CLIENT_GONE = 499

#: Every error the service answers with: the name its body carries and the
#: statuses it comes with. docs/service.md's "Errors" table lists exactly these
#: (a test holds the two together). The library's errors (nacrith.errors) go out
#: under the name of their nearest class here, so a new subclass of, say,
#: FormatError is sent as one the docs name.
STATUSES: dict[str, tuple[int, ...]] = {
    # The library's, raised by the data, the options or the workers.
    "FormatError": (400,),
    "TruncatedError": (400,),
    "UnsupportedVersionError": (400,),
    "ChecksumError": (400,),
    "CoderError": (400,),
    "ModelMismatchError": (400,),
    "ModelError": (400,),
    "DictionaryError": (400,),
    "WorkerError": (503,),
    # The service's own.
    "BadOptions": (400,),
    "UnknownParameter": (400,),
    "Unauthorized": (401,),
    "HTTPError": (404, 405),
    "BodyTimeout": (408,),
    "BodyTooLarge": (413,),
    "UnsupportedMediaType": (415,),
    "RequestValidationError": (422,),
    "QueueFull": (503,),
    "TooManyUploads": (503,),
    "NotReady": (503,),
}


class ErrorBody(BaseModel):
    """What every error response carries."""

    #: The error's kind, e.g. ModelMismatchError, ChecksumError, BodyTooLarge.
    error: str
    #: One line saying what is wrong.
    message: str


class ApiError(Exception):
    """An error of the service's own, by its name in STATUSES, which gives its status."""

    def __init__(self, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = STATUSES[error][0]
        self.error = error
        self.message = message
        self.headers = headers


def library_error_name(exc: NacrithError) -> str:
    """The name a library error is sent under: its own class's, or its nearest
    ancestor's that the docs list."""
    for cls in type(exc).__mro__:
        if cls.__name__ in STATUSES:
            return cls.__name__
    return type(exc).__name__  # pragma: no cover - the docs' test finds every class a name


def error_response(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _count(request: Request, error: str) -> None:
    service = getattr(request.app.state, "service", None)
    if service is not None:
        metrics = service.metrics
        metrics.errors.labels(metrics.endpoint(request.scope["path"]), error).inc()


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    _count(request, exc.error)
    return error_response(exc.status, exc.error, exc.message, exc.headers)


async def nacrith_error(request: Request, exc: Exception) -> Response:
    """The data was bad (400), or a worker died (503: it is restarted, a retry may work)."""
    assert isinstance(exc, NacrithError)
    if isinstance(exc, JobCancelled):  # pragma: no cover - only a gone client's job is cancelled
        return Response(status_code=CLIENT_GONE)
    name = library_error_name(exc)
    _count(request, name)
    if isinstance(exc, WorkerError):
        log.error("nacrith: %s %s: %s", request.method, request.url.path, one_line(exc))
        return error_response(503, name, one_line(exc), {"Retry-After": "1"})
    return error_response(STATUSES.get(name, (400,))[0], name, one_line(exc))


async def client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_GONE)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "header"))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    _count(request, "RequestValidationError")
    return error_response(422, "RequestValidationError", "; ".join(problems) or "invalid request")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "HTTPError", str(exc.detail), exc.headers)


HANDLERS = {
    ApiError: api_error,
    NacrithError: nacrith_error,
    ClientGone: client_gone,
    RequestValidationError: validation_error,
    HTTPException: http_error,
}
