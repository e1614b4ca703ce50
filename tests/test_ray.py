"""The service on Ray Serve: a local Ray cluster (`ray start --head` on
127.0.0.1), `nacrith serve --backend ray` with two CPU replicas, real HTTP.

Needs the ray extra; run with `pytest -m ray` (CI does, in a step of its own).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from service_helpers import ENGLISH, TEXT, free_port, metric, prose, serve, wait_for
from tiny_model import tiny_text

from nacrith.models.llm import MODEL_ENV
from nacrith.reader import read_info
from nacrith.server.client import Client, ServiceError
from nacrith.support.testhooks import FAULT_ENV, FAULT_MARKER, PACE_ENV, PACE_MARKER

pytestmark = [pytest.mark.ray, pytest.mark.llm]

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
# A throwaway cluster on loopback: no token to share between its processes, no usage reports.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
RAY = str(Path(sys.executable).with_name("ray"))
REPLICA_PROCESS = "ServeReplica:nacrith:FrameCoder"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A one-node Ray cluster on loopback, stopped afterwards. Its replicas die
    from SIGILL coding a frame that holds the fault hook's marker, and take 10 ms
    a step on one that holds the pace hook's (only such frames)."""
    port = free_port()
    env = {**os.environ, FAULT_ENV: "SIGILL", PACE_ENV: "0.01"}
    start = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    start += ["--num-cpus", "4", "--include-dashboard", "false", "--disable-usage-stats"]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def server(cluster: str) -> Iterator[str]:
    flags = ("--backend", "ray", "--address", cluster, "--workers", "2")
    with serve(*flags, key=None, timeout=600, stop_timeout=60) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Client:
    return Client(server, timeout=900)


def test_info_names_the_replicas(client):
    info = client.request("GET", "/v1/info").json()
    assert [w["replica"] for w in info["workers"]] == [1, 2]
    assert info["environment"].split()[1] == "cpu"
    assert info["model"]["name"] == Path(os.environ[MODEL_ENV]).name  # the tiny test model


def test_round_trips_through_ray(client):
    for data in (b"", ENGLISH, bytes(range(256)) * 40, b"\r\n\x00<|endoftext|>\xff" + ENGLISH[:200]):
        assert client.decompress(client.compress(data)) == data


def test_files_are_interchangeable_with_the_local_backend(client, codec):
    """Frames fanned out over both replicas, gathered in order: the same bytes
    as one local process writes, and each side decodes the other's file."""
    data = tiny_text(3_000, seed=31)  # frames the tiny test model codes better than zstd
    blob = client.compress(data, frame_size=600)
    assert blob == codec.compress(data, frame_size=600)
    assert [e.type.name for e in read_info(io.BytesIO(blob)).trailer.entries].count("NEURAL") >= 4
    assert codec.decompress(blob) == data
    local = codec.compress(TEXT, frame_size=300)
    assert client.decompress(local) == TEXT
    # Both replicas took frames.
    frames = client.request("GET", "/v1/info").json()["frames_by_worker"]
    assert len(frames) == 2 and all(n > 0 for n in frames.values())


def wait_until_served(client: Client, data: bytes, seconds: float) -> bytes:
    """data compressed, once the service codes again (Serve starts a new replica
    in place of a dead one, and it loads the model first)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.compress(data)
        except ServiceError as exc:
            assert exc.status == 503, exc
            assert time.monotonic() < deadline
            time.sleep(2)


def test_a_frame_that_kills_its_replica_gets_503_and_harms_no_one(client, server):
    """A replica dies from SIGILL while coding a frame (the test hook, where
    llama.cpp would run an instruction the CPU lacks): that request gets 503
    WorkerError; a request the other replica codes meanwhile is unaffected;
    Serve replaces the dead replica and requests succeed again."""
    survivor = PACE_MARKER + prose(3_000, seed=33)  # coded for seconds, whatever the machine
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(client.compress, survivor)
        wait_for(lambda: metric(server, "nacrith_frames_waiting") >= 1, 60)
        with pytest.raises(ServiceError) as failed:
            client.compress(ENGLISH[:300] + FAULT_MARKER + ENGLISH[300:])
        assert client.decompress(other.result()) == survivor
    assert (failed.value.status, failed.value.error) == (503, "WorkerError")
    assert "replica" in failed.value.message
    texts = [prose(600, seed=seed) for seed in (34, 35)]
    blobs = [wait_until_served(client, text, 300) for text in texts]
    assert [client.decompress(blob) for blob in blobs] == texts


def test_a_killed_replica_fails_the_request_cleanly_or_not_at_all(client, server):
    """A replica killed mid-request: the request ends in a 503 naming the dead
    replica, or succeeds with the right bytes after Serve retried it; never
    wrong data. Serve then replaces the replica and requests succeed again."""
    data = PACE_MARKER + prose(6_000, seed=32)  # paced: mid-frame when the replicas die
    outcome: dict[str, object] = {}

    def request() -> None:
        try:
            outcome["blob"] = client.compress(data)
        except ServiceError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=request)
    thread.start()
    wait_for(lambda: metric(server, "nacrith_frames_waiting") >= 1, 60)
    time.sleep(1)
    killed = subprocess.run(["pkill", "-9", "-f", REPLICA_PROCESS], check=False).returncode
    assert killed == 0  # at least one replica process was there to kill
    thread.join(600)
    assert not thread.is_alive()
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, ServiceError)
        assert (error.status, error.error) == (503, "WorkerError")
        assert "replica" in error.message
    else:
        assert client.decompress(outcome["blob"]) == data  # type: ignore[arg-type]
    # Serve starts new replicas (each loads the model); then all is well again.
    assert client.decompress(wait_until_served(client, ENGLISH, 300)) == ENGLISH


def test_serve_refuses_ray_flags_without_the_ray_backend():
    result = subprocess.run(
        [sys.executable, "-m", "nacrith", "serve", "--gpu-replicas"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "need --backend ray" in result.stderr


def test_the_application_builder_takes_serve_run_arguments():
    """What `serve run nacrith.server.ray_backend:build ...` and KubeRay call."""
    from ray.serve import Application

    from nacrith.server.ray_backend import build

    app = build({"replicas": "2", "max_replicas": "4", "gpu": "false", "threads": "1"})
    assert isinstance(app, Application)
    with pytest.raises(ValueError, match="unknown arguments"):
        build({"replica": "2"})
    with pytest.raises(ValueError, match="max replicas"):
        build({"replicas": "4", "max_replicas": "2"})
    with pytest.raises(ValueError, match="accelerator type needs GPU"):
        build({"accelerator_type": "H100"})
