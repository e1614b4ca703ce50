"""What a server is started with; everything else about it is fixed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Largest request body by default. On a CPU the model codes a few hundred
#: bytes a second, so this is already hours of work for one request.
DEFAULT_MAX_BODY = 64 << 20
#: Requests admitted at once per worker (coding, or waiting for a worker);
#: beyond that a request is answered 503 at once rather than left waiting.
JOBS_PER_WORKER = 8

API_KEY_ENV = "NACRITH_API_KEY"


@dataclass(frozen=True)
class ServerSettings:
    model: str | None = None
    workers: int = 1
    gpus: Sequence[str] = ()
    #: llama.cpp threads per worker; None: the cores divided among the workers.
    threads: int | None = None
    max_body: int = DEFAULT_MAX_BODY
    #: Requests admitted at once; None: JOBS_PER_WORKER per worker.
    queue: int | None = None
    #: When set, every request but health, metrics and docs needs it in X-API-Key.
    api_key: str | None = field(default=None, repr=False)
    #: Where uploads and results are spooled; None: the system's temporary directory.
    spool_dir: str | None = None
    #: Dictionaries by name (``nacrith serve --dict NAME=PATH``): ``POST
    #: /compress?dict=NAME`` compresses with one, /decompress finds a file's by
    #: its fingerprint.
    dicts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if self.max_body < 1:
            raise ValueError(f"the body limit must be at least 1 byte, not {self.max_body}")
        if self.queue is not None and self.queue < 1:
            raise ValueError(f"the queue must hold at least 1 request, not {self.queue}")
        names = [name for name, _ in self.dicts]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError("dictionaries need names, each used once")
        if self.api_key == "":
            raise ValueError(f"{API_KEY_ENV} is set but empty")

    @property
    def capacity(self) -> int:
        return self.queue if self.queue is not None else JOBS_PER_WORKER * self.workers

    @classmethod
    def from_env(cls, **values: object) -> ServerSettings:
        """Settings with the API key read from the environment."""
        return cls(api_key=os.environ.get(API_KEY_ENV), **values)  # type: ignore[arg-type]  # the fields' own checks run
