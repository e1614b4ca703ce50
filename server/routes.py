"""The endpoints: compress, decompress, info, health, readiness, metrics and
the index at /.

(Longer than most modules: each endpoint's OpenAPI declaration, its query
parameters with their ranges and descriptions, stands beside its code, where
the snapshot test and a reader look for it.)
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import replace
from functools import partial
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import Receive, Scope, Send

from nacrith import __version__
from nacrith.api import Codec
from nacrith.errors import NacrithError
from nacrith.format import FORMAT_VERSION, FrameType, Header
from nacrith.options import DEFAULT_LANES, CompressOptions
from nacrith.parallel import WorkerJob
from nacrith.reader import FileInfo, read_info
from nacrith.reports import ProgressInfo, StreamProgress
from nacrith.settings import MAX_CONTEXT, MAX_FRAME_SIZE, MAX_LANES, MIN_CONTEXT

from .auth import require_key
from .errors import ApiError, ErrorBody, library_error_name
from .jobs import Job
from .service import Service
from .uploads import receive_upload

log = logging.getLogger("nacrith.server")

#: Bytes per read when sending a spooled result.
SEND_CHUNK = 1 << 16

BINARY = {"schema": {"type": "string", "format": "binary"}}
RAW_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": BINARY}}}


def _errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    meaning = {
        400: "Bad input: not a Nacrith file, corrupt, truncated, another model's, bad options, "
        "or a query parameter the endpoint does not take",
        401: "Missing or wrong X-API-Key",
        408: "The request body stopped coming (see the body timeout); the connection is closed",
        413: "Request body over the server's limit",
        415: "A multipart form: send the raw bytes as the body",
        422: "Bad query parameters",
        503: "Not ready, or every place in the queue or every upload place is taken; see Retry-After",
    }
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route takes, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class StrictQueryRoute(APIRoute):
    """A route that answers 400 UnknownParameter to a query parameter it does
    not declare, rather than ignore it: `?lane=4` for `?lanes=4` must not pass
    as a request for the defaults. What a route takes is read from its own
    declaration, so the check never falls behind a new parameter."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        responses = dict(kwargs.pop("responses", None) or {})
        # Every route can answer it; those that take data say more about their 400s.
        responses.setdefault(400, {"model": ErrorBody, "description": "A query parameter it does not take"})
        super().__init__(path, endpoint, responses=responses, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = _query_names(self.dependant)
        takes = ", ".join(sorted(known)) or "none"

        async def strict(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                names = ", ".join(repr(name) for name in unknown)
                raise ApiError(
                    "UnknownParameter",
                    f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names} "
                    f"({request.scope['path']} takes: {takes})",
                )
            return await handler(request)

        return strict


router = APIRouter(route_class=StrictQueryRoute)

#: Bodies that are an envelope around the data rather than the data: compressing
#: one would give back the envelope. (application/x-www-form-urlencoded is not
#: among them: curl --data-binary, the way docs/service.md sends a file, labels
#: the raw bytes it sends so.)
FORM_TYPES = ("multipart/",)


def _service(request: Request) -> Service:
    return request.app.state.service


async def _start_job(request: Request, endpoint: str) -> Job:
    """The request's job, its body spooled and its place in the queue taken.
    What can be refused without reading the body is refused first; the
    place is taken only once the body is in (uploads.py says why)."""
    service = _service(request)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(FORM_TYPES):
        raise ApiError(
            "UnsupportedMediaType",
            f"the body is a form ({content_type.split(';')[0]}): send the raw bytes instead, "
            "e.g. curl --data-binary @FILE",
        )
    _refuse_unless_admissible(service)  # before the body, which would only be read to be refused
    started = time.monotonic()
    body = await receive_upload(service, request, endpoint)
    try:
        _refuse_unless_admissible(service)  # the queue may have filled while the body came
    except ApiError:
        body.close()
        raise
    service.admit()
    return Job(service, request, endpoint, body, started)


def _refuse_unless_admissible(service: Service) -> None:
    """503 NotReady or QueueFull, unless the request can take a place now."""
    if not service.ready:
        message = service.load_error or "the workers are loading the model"
        raise ApiError("NotReady", message, {"Retry-After": str(service.retry_after())})
    if service.queue_full:
        raise ApiError(
            "QueueFull",
            f"all {service.settings.capacity} places in the queue are taken; retry later",
            {"Retry-After": str(service.retry_after())},
        )


def _count_tokens(service: Service, endpoint: str) -> StreamProgress:
    """A progress callback adding each frame's symbols to the token counter."""
    seen = 0

    def progress(info: ProgressInfo) -> None:
        nonlocal seen
        service.metrics.count_tokens(endpoint, info.symbols - seen)
        seen = info.symbols

    return progress


@router.post(
    "/compress",
    summary="Compress the request body",
    description="The raw request body in, a Nacrith file out: the same bytes `nacrith compress` "
    "writes with the same options and model. The result is sent once the last frame is coded, "
    "since only then is it known whether zstd alone is smaller.",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": BINARY}},
        **_errors(400, 401, 408, 413, 415, 422, 503),
    },
    openapi_extra=RAW_BODY,
    dependencies=[Depends(require_key)],
)
async def compress(
    request: Request,
    lanes: Annotated[
        int, Query(ge=1, le=MAX_LANES, description="most streams per text frame")
    ] = DEFAULT_LANES,
    llm_only: Annotated[bool, Query(description="the language model alone, no ensemble")] = False,
    context: Annotated[
        int, Query(ge=MIN_CONTEXT, le=MAX_CONTEXT, description="model context in tokens")
    ] = CompressOptions.context,
    frame_size: Annotated[
        int, Query(ge=1, le=MAX_FRAME_SIZE, description="most bytes per frame")
    ] = CompressOptions.frame_size,
    dict: Annotated[  # the query's name
        str | None,
        Query(
            description="a dictionary the service was started with (GET /v1/dicts): it brings its ensemble"
        ),
    ] = None,
) -> Response:
    dictionary = None
    if dict is not None:
        known = _service(request).dictionaries
        if dict not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ApiError("DictionaryError", f"no dictionary named {dict!r} (this service has: {names})")
        dictionary = known[dict]
    try:
        # The library's policy on a dictionary's settings, and its message (options.DICTIONARY_SETTINGS).
        options = CompressOptions(lanes=lanes, context=context, frame_size=frame_size, dictionary=dictionary)
        if llm_only:
            options = replace(options, ensemble=None)
    except ValueError as exc:
        raise ApiError("BadOptions", str(exc)) from None
    job = await _start_job(request, "/compress")
    service = job.service
    try:
        src = job.body
        size = os.fstat(src.fileno()).st_size
        out = job.spool()
        coding = partial(
            _codec(job).compress_stream,
            src,  # type: ignore[arg-type]  # a spooled upload: IO[bytes], a file in all but name
            out,  # type: ignore[arg-type]
            options,
            content_size=size,
            progress=_count_tokens(service, job.endpoint),
        )
        summary = await job.run(coding)
        out.seek(0)
    except BaseException:
        job.close()
        raise
    headers = {
        "Content-Length": str(summary.coded_bytes),
        "X-Original-Length": str(size),
        # zstd alone won: the file needs no model.
        "X-Nacrith-Model": "" if summary.zstd_only or service.model is None else service.model.name,
    }
    return JobResponse(job, _send_file(job, out), headers=headers)


async def _send_file(job: Job, f: IO[bytes]) -> AsyncIterator[bytes]:
    sent = 0
    try:
        while chunk := f.read(SEND_CHUNK):
            yield chunk
            sent += len(chunk)
    finally:
        _finish(job, sent)


class JobResponse(StreamingResponse):
    """A job's answer, streamed; the job is closed however the answer ends,
    even when the client left before its body was begun (and so the body's
    own clean-up never ran)."""

    def __init__(self, job: Job, body: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        super().__init__(body, media_type="application/octet-stream", headers=headers)
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.close()


def _finish(job: Job, sent: int) -> None:
    metrics = job.service.metrics
    metrics.bytes_out.labels(job.endpoint).inc(sent)
    metrics.seconds.labels(job.endpoint).observe(time.monotonic() - job.started)
    job.close()


def _inspect(src: IO[bytes], workers: WorkerJob, service: Service) -> FileInfo:
    """Header and index, checked before anything is decoded or sent, and the
    model, when any frame needs one: so a file that is not whole, or is
    another model's, is refused with a 400 rather than a broken stream."""
    info = read_info(src)  # type: ignore[arg-type]  # a spooled upload: IO[bytes], a file in all but name
    if any(entry.type == FrameType.NEURAL for entry in info.trailer.entries):
        if info.header.dict_id is not None:
            service.dictionary(info.header.dict_id)  # DictionaryError naming it when it is not loaded
        workers.check(info.header)
    src.seek(0)
    return info


def _codec(job: Job) -> Codec:
    """The library's Codec for one request: the service's model (which only
    tokenizes), the request's share of the workers (which code every neural
    frame) and the dictionaries the service was started with."""
    service = job.service
    if service.model is None:  # pragma: no cover - a job is made only once the workers are loaded
        raise RuntimeError("a job needs the model loaded")
    return Codec.from_model(service.model, workers=job.workers, dictionaries=service.dictionary)


@router.post(
    "/decompress",
    summary="Decompress a Nacrith file",
    description="A Nacrith file in, the original bytes out, streamed frame by frame as each "
    "passes its checksum. Errors found before the first byte is sent are answered 400; a frame "
    "found corrupt later ends the connection before Content-Length bytes, so a client never "
    "takes a partial answer for a whole one.",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": BINARY}},
        **_errors(400, 401, 408, 413, 415, 503),
    },
    openapi_extra=RAW_BODY,
    dependencies=[Depends(require_key)],
)
async def decompress(request: Request) -> Response:
    job = await _start_job(request, "/decompress")
    try:
        src = job.body
        info = await job.run(_inspect, src, job.workers, job.service)
        frames = _codec(job).decompressed_frames(
            src,  # type: ignore[arg-type]  # a spooled upload: IO[bytes], a file in all but name
            progress=_count_tokens(job.service, job.endpoint),
        )
        held = _HeldFrames(job, frames)
        # Two frames before the status line: a one-frame file, the usual
        # request, is then decoded and checked to its trailer before a 200.
        await held.fill(2)
    except BaseException:
        job.close()
        raise
    model = _model_name(job.service, info.header)
    headers = {
        "Content-Length": str(info.trailer.content_size),
        "X-Original-Length": str(info.trailer.content_size),
        "X-Nacrith-Model": model or "",
    }
    return JobResponse(job, held.send(), headers=headers)


def _model_name(service: Service, header: Header) -> str:
    """The file's model by name: as a version-1 header records it, or (version 2
    names it by fingerprint only) the service's model when it is that one."""
    if header.model_id is None:
        return ""
    loaded = service.model
    if header.model_name or loaded is None or not header.uses_model(loaded.sha256):
        return header.model_name
    return loaded.name


class StreamAborted(RuntimeError):
    """A decompress response ended early, after its status line was sent."""


class _HeldFrames:
    """Decoded frames, sent one behind the decoder: the last frame goes out
    only after the trailer (whole-content checksum, index) has been checked,
    so a body that arrives complete is one that passed every check."""

    def __init__(self, job: Job, frames: Iterator[bytes]) -> None:
        self.job = job
        self.frames = frames
        self.ready: deque[bytes] = deque()
        self.done = False

    async def fill(self, count: int) -> None:
        while not self.done and len(self.ready) < count:
            data = await self.job.run(next, self.frames, None)
            if data is None:
                self.done = True
            else:
                self.ready.append(data)

    async def send(self) -> AsyncIterator[bytes]:
        sent = 0
        try:
            while self.ready:
                if len(self.ready) == 1:
                    await self.fill(2)
                if len(self.ready) > 1 or self.done:
                    chunk = self.ready.popleft()
                    yield chunk
                    sent += len(chunk)
        except Exception as exc:
            # The status line is gone: all that is left is to end the connection
            # short of Content-Length, which every HTTP client reports as an error.
            log.error("nacrith: decompress stopped after %d bytes: %s", sent, exc)
            name = library_error_name(exc) if isinstance(exc, NacrithError) else type(exc).__name__
            self.job.service.metrics.errors.labels(self.job.endpoint, name).inc()
            raise StreamAborted(f"decompress stopped after {sent} bytes: {exc}") from exc
        finally:
            _finish(self.job, sent)


@router.get("/v1/dicts", summary="The dictionaries to compress with", dependencies=[Depends(require_key)])
async def dicts(request: Request) -> list[dict[str, object]]:
    """Each dictionary the service was started with: its name (``POST
    /compress?dict=NAME``), fingerprint (what files made with it record),
    priming tokens, and whether it has a learned ensemble."""
    return [
        {
            "name": name,
            "fingerprint": d.fingerprint.hex(),
            "priming_tokens": len(d.tokens),
            "learned": d.state_size > 0,
            "bytes": len(d.pack()),
        }
        for name, d in sorted(_service(request).dictionaries.items())
    ]


@router.get("/v1/info", summary="Version, model and workers", dependencies=[Depends(require_key)])
async def info(request: Request) -> dict[str, object]:
    service = _service(request)
    model = service.model
    return {
        "version": __version__,
        "format_version": FORMAT_VERSION,
        "ready": service.ready,
        "model": None if model is None else {"name": model.name, "sha256": model.sha256.hex()},
        "environment": service.pool.environment if service.pool else None,
        "workers": service.pool.describe() if service.pool else [],
        "frames_by_worker": service.pool.frames_by_worker() if service.pool else {},
        "max_body": service.settings.max_body,
        "queue_capacity": service.settings.capacity,
        "upload_capacity": service.settings.upload_capacity,
        "body_timeout": service.settings.body_timeout,
    }


@router.get("/", summary="What this service is: its version, endpoints and documentation")
async def index(request: Request) -> dict[str, object]:
    """A map for whoever finds the service's address: the API's endpoints (as
    in the OpenAPI schema), the documentation pages, and the version."""
    endpoints = [
        {"method": method, "path": route.path, "summary": route.summary}
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in sorted(route.methods or ())
    ]
    return {
        "service": "Nacrith",
        "version": __version__,
        "documentation": request.app.state.documentation,
        "endpoints": endpoints,
    }


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: every worker has loaded the model",
    responses=_errors(503),
)
async def readyz(request: Request) -> Response:
    service = _service(request)
    if service.ready:
        return JSONResponse({"status": "ready"})
    message = service.load_error or "the workers are loading the model"
    return JSONResponse({"error": "NotReady", "message": message}, status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    service = _service(request)
    body = service.metrics.render(service.pool)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
