"""What the service needs of the processes that run the model: on this
machine parallel.Workers, on a Ray cluster ray_backend.RayPool. Both hand out
frames whole, so a file never depends on which of them coded it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from nacrith.format import Header
from nacrith.parallel import WorkerJob


class FramePool(Protocol):
    #: ENVIRONMENT of the files the pool writes (llama.cpp build and backend).
    environment: str
    #: The model the workers run, as check_model sees it (sha256, name, ...).
    model: Any
    #: Frames of cancelled jobs that were dropped or stopped before they were done.
    frames_stopped: int

    def job(self) -> WorkerJob:
        """A view of the pool for one file, whose frames cancel() stops."""
        ...

    def check(self, header: Header) -> None:
        """Raise ModelMismatchError unless the pool's model is the file's."""
        ...

    def frames_waiting(self) -> int: ...

    def describe(self) -> list[dict[str, Any]]:
        """One entry per worker or replica, for /v1/info."""
        ...

    def frames_by_worker(self) -> dict[str, int]:
        """Frames each worker or replica has been given so far, for /v1/info."""
        ...

    def close(self) -> None: ...


#: Starts a pool for the model at the given path.
PoolFactory = Callable[[Path], FramePool]
