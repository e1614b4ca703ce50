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


class ErrorBody(BaseModel):
    """What every error response carries."""

    #: The error's class, e.g. ModelMismatchError, ChecksumError, BodyTooLarge.
    error: str
    #: One line saying what is wrong.
    message: str


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers


def error_response(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _count(request: Request, error: str) -> None:
    service = getattr(request.app.state, "service", None)
    if service is not None:
        service.metrics.errors.labels(request.url.path, error).inc()


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    _count(request, exc.error)
    return error_response(exc.status, exc.error, exc.message, exc.headers)


async def nacrith_error(request: Request, exc: Exception) -> Response:
    """The data was bad (400), or a worker died (503: it is restarted, a retry may work)."""
    name = type(exc).__name__
    _count(request, name)
    if isinstance(exc, WorkerError):
        log.error("nacrith: %s %s: %s", request.method, request.url.path, one_line(exc))
        return error_response(503, name, one_line(exc), {"Retry-After": "1"})
    if isinstance(exc, JobCancelled):  # pragma: no cover - only a gone client's job is cancelled
        return Response(status_code=CLIENT_GONE)
    return error_response(400, name, one_line(exc))


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
