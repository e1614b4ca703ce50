"""What the service needs of the processes that run the model: a
parallel.FramePool, on this machine parallel.Workers, on a Ray cluster
ray_backend.RayPool, started for the model at a path by a PoolFactory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nacrith.parallel import FramePool

__all__ = ["FramePool", "PoolFactory"]

#: Starts a pool for the model at the given path.
PoolFactory = Callable[[Path], FramePool]
