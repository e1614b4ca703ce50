"""What a server is started with; everything else about it is fixed."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Largest request body by default. On a CPU the model codes a few hundred
#: bytes a second, so this is already hours of work for one request.
DEFAULT_MAX_BODY = 64 << 20
#: Requests admitted at once per worker (coding, or waiting for a worker);
#: beyond that a request is answered 503 at once rather than left waiting.
JOBS_PER_WORKER = 8
#: Seconds an upload may go without sending a byte before it is answered 408
#: and closed. A live client on a bad link sends its next segment well within
#: it (TCP's retransmissions back off to about 25 s only after seven losses in a
#: row); a stalled one holds an upload place for no longer.
DEFAULT_BODY_TIMEOUT = 30.0
#: The slowest upload taken, in bytes a second, counted after its first body
#: timeout: without it a client sending a byte every few seconds would hold an
#: upload place for ever. 8 KiB/s is slower than any link in use today
#: (a 64 MiB body is given over two hours).
MIN_UPLOAD_RATE = 8 << 10
#: Uploads received at once, per place in the queue. Bodies are spooled before a
#: request takes a place (so a stalled upload never holds one), and each
#: admitted request was first an upload: at two per place, the queue refills
#: as fast as it drains even while as many stalled uploads as it has places
#: wait out their timeout. Each may spool up to the body limit on disk.
UPLOADS_PER_PLACE = 2

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
    #: Seconds an upload may send nothing (and, past them, fall under MIN_UPLOAD_RATE).
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: Uploads received at once; None: UPLOADS_PER_PLACE per place in the queue.
    max_uploads: int | None = None
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
        if not 0 < self.body_timeout < math.inf:  # NaN too
            raise ValueError(f"the body timeout must be a number of seconds over 0, not {self.body_timeout}")
        if self.max_uploads is not None and self.max_uploads < 1:
            raise ValueError(f"at least 1 upload must be allowed at once, not {self.max_uploads}")
        names = [name for name, _ in self.dicts]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError("dictionaries need names, each used once")
        if self.api_key == "":
            raise ValueError(f"{API_KEY_ENV} is set but empty")

    @property
    def capacity(self) -> int:
        return self.queue if self.queue is not None else JOBS_PER_WORKER * self.workers

    @property
    def upload_capacity(self) -> int:
        return self.max_uploads if self.max_uploads is not None else UPLOADS_PER_PLACE * self.capacity

    @classmethod
    def from_env(cls, **values: object) -> ServerSettings:
        """Settings with the API key read from the environment."""
        return cls(api_key=os.environ.get(API_KEY_ENV), **values)  # type: ignore[arg-type]  # the fields' own checks run
