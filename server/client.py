"""A small client for the service, on the standard library only: one
connection per call, so one Client may be shared by many threads."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

#: Seconds a call may wait for its answer: CPU workers code a few hundred bytes a second.
DEFAULT_TIMEOUT = 3600.0


class ServiceError(Exception):
    """The service answered with an error status."""

    def __init__(self, status: int, error: str, message: str, retry_after: str | None = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class Client:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, not {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.api_key = api_key
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """One request; the answer whatever its status."""
        connection_class = (
            http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(self.host, self.port, timeout=self.timeout)
        sent = dict(headers or {})
        if self.api_key is not None:
            sent.setdefault("X-API-Key", self.api_key)
        if body is not None:
            sent.setdefault("Content-Type", "application/octet-stream")
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            # read() raises IncompleteRead when the body ends short of Content-Length.
            data = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            connection.close()

    def wait_ready(self, timeout: float, alive: Callable[[], bool] | None = None) -> None:
        """Return once /readyz answers 200 (the workers have loaded the model).
        TimeoutError after timeout seconds; RuntimeError as soon as alive(),
        if given (e.g. that the server's process still runs), says False."""
        deadline = time.monotonic() + timeout
        while True:
            if alive is not None and not alive():
                raise RuntimeError("the server stopped before it was ready")
            with contextlib.suppress(OSError):
                if self.request("GET", "/readyz").status == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server was not ready in {timeout:.0f} s")
            time.sleep(0.2)

    def _post(self, path: str, body: bytes) -> bytes:
        answer = self.request("POST", path, body)
        if answer.status != 200:
            try:
                detail = answer.json()
                error, message = detail["error"], detail["message"]  # type: ignore[index]  # any JSON; TypeError is caught
            except (ValueError, KeyError, TypeError):
                error, message = "HTTPError", answer.body[:200].decode(errors="replace")
            raise ServiceError(answer.status, error, message, answer.headers.get("retry-after"))
        return answer.body

    def compress(self, data: bytes, **params: object) -> bytes:
        """A Nacrith file of data; params are /compress's query parameters (lanes, llm_only, ...)."""
        query = urllib.parse.urlencode(
            {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
        )
        return self._post("/compress" + (f"?{query}" if query else ""), data)

    def decompress(self, blob: bytes) -> bytes:
        return self._post("/decompress", blob)
