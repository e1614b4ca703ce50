"""The REST service, run as users run it: `nacrith serve` in its own process,
a real uvicorn server on 127.0.0.1, real worker processes running llama.cpp
(the tiny test model; the real one for the end-to-end smoke test), and HTTP
over loopback."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from service_helpers import (
    ENGLISH,
    KEY,
    TEXT,
    free_port,
    gibberish,
    metric,
    other_models_file,
    prose,
    serve,
    wait_for,
)
from tiny_model import tiny_text

from nacrith.api import Codec
from nacrith.corpora import locate
from nacrith.dictbuild import build_dictionary
from nacrith.dictionary import Dictionary
from nacrith.errors import (
    CorpusError,
    InputChangedError,
    InputSkipped,
    JobCancelled,
    NacrithError,
    OutputError,
)
from nacrith.format import Header
from nacrith.models.llm import MODEL_ENV
from nacrith.options import CompressOptions
from nacrith.reader import read_info
from nacrith.server.client import Client, ServiceError
from nacrith.server.errors import STATUSES, library_error_name
from nacrith.support.testhooks import FAULT_ENV, FAULT_MARKER, PACE_DECODING_ENV, PACE_ENV, PACE_MARKER

pytestmark = pytest.mark.llm

MAX_BODY = 200_000
DOCUMENTATION = {"swagger_ui": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}
CANCELLED_GONE = 'nacrith_cancelled_total{endpoint="/compress",reason="gone"}'
CANCELLED_STALLED = 'nacrith_cancelled_total{endpoint="/compress",reason="stalled"}'
SNAPSHOT = Path(__file__).parent / "server" / "openapi.json"
rng = random.Random(7)


@pytest.fixture(scope="module")
def dictionary(model, tmp_path_factory) -> tuple[Dictionary, Path]:
    """A dictionary of the tiny model, and its file."""
    d, _ = build_dictionary(model, [TEXT[:300], TEXT[300:600], TEXT[600:900]], CompressOptions(), 100, 400)
    path = tmp_path_factory.mktemp("dicts") / "tiny.ncd"
    path.write_bytes(d.pack())
    return d, path


@pytest.fixture(scope="module")
def server(dictionary) -> Iterator[str]:
    """Two workers, an API key, a small body limit and a dictionary named
    "tiny"; a worker coding a frame that holds the fault hook's marker dies
    from SIGILL, one coding a frame that holds the pace hook's marker takes
    10 ms a step (only such frames)."""
    flags = (
        "--workers",
        "2",
        "--max-body",
        str(MAX_BODY),
        "--queue",
        "16",
        "--dict",
        f"tiny={dictionary[1]}",
    )
    with serve(*flags, env_extra={FAULT_ENV: "SIGILL", PACE_ENV: "0.01"}) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Client:
    return Client(server, KEY, timeout=600)


def raw_request(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    """A socket that has sent head (and body), for requests http.client cannot make."""
    port = int(url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(head + body)
    return s


def read_status(s: socket.socket) -> tuple[int, bytes]:
    """The status and the whole answer of a server that closes the connection after it."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return int(data.split(b" ", 2)[1]), data


# --- health, info, metrics, docs ----------------------------------------------


def test_health_readiness_and_info(server, client):
    anonymous = Client(server, timeout=10)
    assert anonymous.request("GET", "/healthz").json() == {"status": "ok"}
    assert anonymous.request("GET", "/readyz").json() == {"status": "ready"}
    info = client.request("GET", "/v1/info").json()
    assert info["version"]
    assert info["model"]["name"] == Path(os.environ[MODEL_ENV]).name  # the tiny test model
    assert len(info["model"]["sha256"]) == 64
    assert info["workers"] == [{"gpu": None, "threads": 1}, {"gpu": None, "threads": 1}]
    assert info["max_body"] == MAX_BODY
    assert info["environment"].split()[1] == "cpu"


def test_metrics_are_prometheus_text(server, client):
    client.compress(b"\x00\x01" * 500)  # binary: no model, but a counted request
    answer = Client(server, timeout=10).request("GET", "/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.body.decode()
    for name in (
        "nacrith_requests_total",
        "nacrith_bytes_in_total",
        "nacrith_bytes_out_total",
        "nacrith_tokens_per_second",
        "nacrith_jobs",
        "nacrith_frames_waiting",
        "nacrith_frames_stopped_total",
        "nacrith_errors_total",
        "nacrith_ready 1.0",
        "nacrith_workers 2.0",
    ):
        assert name in text
    assert 'nacrith_requests_total{endpoint="/compress",status="200"}' in text
    assert metric(server, "nacrith_bytes_in_total") >= 1000


def test_openapi_schema_matches_the_snapshot(server):
    """The API's contract; after a deliberate change, run tests/server/regen_openapi.py."""
    anonymous = Client(server, timeout=10)
    schema = anonymous.request("GET", "/openapi.json").json()
    assert schema == json.loads(SNAPSHOT.read_text())
    body = schema["paths"]["/compress"]["post"]["requestBody"]["content"]
    assert body == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    docs = anonymous.request("GET", "/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()


def _local_links(page: bytes) -> list[str]:
    """What a page loads: its src and href attributes, and Swagger UI's spec url."""
    text = page.decode()
    links = re.findall(r'(?:src|href|spec-url)="([^"]*)"', text) + re.findall(r"url: '([^']*)'", text)
    assert links, text
    return links


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_nothing_from_outside(server, page):
    """Swagger UI and ReDoc from the app itself, so they work with no way out
    to the internet: every script, style, icon and schema the page names is a
    path on this server, and answers 200."""
    anonymous = Client(server, timeout=10)
    answer = anonymous.request("GET", page)
    assert answer.status == 200
    assert b"http:" not in answer.body and b"https:" not in answer.body and b"//" not in answer.body
    links = _local_links(answer.body)
    assert any(link.endswith(".js") for link in links)
    for link in links:
        assert link.startswith("/") and not link.startswith("//"), link
        loaded = anonymous.request("GET", link)
        assert loaded.status == 200 and loaded.body, link


def test_the_index_names_the_endpoints_the_docs_and_the_version(server):
    answer = Client(server, timeout=10).request("GET", "/")
    assert answer.status == 200
    index = answer.json()
    assert (
        index["version"]
        == Client(server, timeout=10).request("GET", "/openapi.json").json()["info"]["version"]
    )
    assert index["documentation"] == DOCUMENTATION
    listed = {(e["method"], e["path"]) for e in index["endpoints"]}
    schema = Client(server, timeout=10).request("GET", "/openapi.json").json()
    assert listed == {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert ("POST", "/compress") in listed and all(e["summary"] for e in index["endpoints"])


def test_every_metric_labels_an_endpoint_by_its_path(server, client):
    """One scheme: the route's path (or "other"), in every metric that has the label."""
    client.decompress(client.compress(TEXT[:200]))
    client.request("POST", "/compress?lanes=0", b"x")  # an error, counted by endpoint too
    Client(server, timeout=10).request("GET", "/nowhere")
    text = Client(server, timeout=10).request("GET", "/metrics").body.decode()
    paths = set(Client(server, timeout=10).request("GET", "/openapi.json").json()["paths"])
    by_metric: dict[str, set[str]] = {}
    for name, endpoint in re.findall(r'^(\w+)\{[^}]*endpoint="([^"]*)"', text, re.MULTILINE):
        by_metric.setdefault(name, set()).add(endpoint)
    for name in (
        "nacrith_requests_total",
        "nacrith_request_seconds_count",
        "nacrith_bytes_in_total",
        "nacrith_bytes_out_total",
        "nacrith_tokens_total",
        "nacrith_errors_total",
        "nacrith_cancelled_total",
    ):
        assert "/compress" in by_metric[name], name
    for name, endpoints in by_metric.items():
        assert endpoints <= paths | {*DOCUMENTATION.values(), "/docs/oauth2-redirect", "other"}, name
    assert "other" in by_metric["nacrith_requests_total"]


# --- round trips ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_server(real_model_path: Path) -> Iterator[str]:
    """One worker with the real default model, no key: the end-to-end smoke test."""
    env = {MODEL_ENV: ""}  # empty: the default model, as for a user who sets nothing
    with serve("--workers", "1", key=None, env_extra=env) as (url, _):
        yield url


def test_text_round_trip_is_the_librarys_file(real_server, real_codec):
    """The service, with the default model, writes the same bytes as the library
    (and so the CLI) with the same options, and codes English in under half its size."""
    client = Client(real_server, timeout=600)
    data = ENGLISH
    blob = client.compress(data)
    assert client.request("GET", "/v1/info").json()["model"]["name"] == real_codec.model.name
    assert blob == real_codec.compress(data)
    assert read_info(io.BytesIO(blob)).trailer.entries[0].type.name == "NEURAL"
    assert len(blob) < len(data) / 2
    assert client.decompress(blob) == data


def test_binary_and_empty_round_trips(client):
    binary = rng.randbytes(50_000)
    mixed = prose(300, seed=2) + bytes(range(256)) * 20 + b"\r\n\x00<|endoftext|>\xff\xfe"
    for data in (b"", binary, mixed):
        assert client.decompress(client.compress(data)) == data


def test_options_are_recorded_in_the_file(client):
    data = TEXT
    blob = client.compress(data, llm_only=True, lanes=4, frame_size=400)
    header = read_info(io.BytesIO(blob)).header
    assert (header.ensemble, header.frame_size, header.lanes) == (None, 400, 4)
    assert client.decompress(blob) == data


def test_headers_name_the_model_and_the_length(client):
    data = prose(200, seed=4)
    answer = client.request("POST", "/compress", data)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["x-original-length"] == str(len(data))
    assert "content-encoding" not in answer.headers
    back = client.request("POST", "/decompress", answer.body)
    assert back.headers["content-length"] == str(len(data))
    assert back.body == data


def test_eight_concurrent_clients_each_get_their_own_data(client):
    inputs = [prose(150 + 40 * i, seed=100 + i) if i % 2 else rng.randbytes(3_000 + i) for i in range(8)]
    barrier = threading.Barrier(8)

    def round_trip(data: bytes) -> bytes:
        barrier.wait()
        return client.decompress(client.compress(data))

    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(round_trip, inputs))
    assert outputs == inputs


# --- refusals ---------------------------------------------------------------------


def test_api_key_is_required(server):
    data = b"hello"
    for key, message in ((None, "missing X-API-Key"), ("wrong", "wrong API key")):
        answer = Client(server, key, timeout=10).request("POST", "/compress", data)
        assert answer.status == 401
        assert answer.json() == {
            "error": "Unauthorized",
            "message": message + (" header" if key is None else ""),
        }
    assert Client(server, "wrong", timeout=10).request("GET", "/v1/info").status == 401
    # Probes and scrapers need no key.
    assert Client(server, timeout=10).request("GET", "/healthz").status == 200
    assert Client(server, timeout=10).request("GET", "/metrics").status == 200


def test_oversized_bodies_get_413(server, client):
    # Declared too large: refused before a byte of the body is read.
    head = (
        f"POST /compress HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    ).encode()
    with contextlib.closing(raw_request(server, head)) as s:
        status, answer = read_status(s)
    assert status == 413 and b"BodyTooLarge" in answer
    # Chunked, so undeclared: refused once the count passes the limit.
    body = rng.randbytes(MAX_BODY + 10_000)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 30_000]), body[i : i + 30_000])
        for i in range(0, len(body), 30_000)
    )
    head = (
        f"POST /decompress HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with contextlib.closing(raw_request(server, head, chunks + b"0\r\n\r\n")) as s:
        status, answer = read_status(s)
    assert status == 413
    # Exactly at the limit is accepted (and random bytes come back a little larger).
    data = rng.randbytes(MAX_BODY // 2) * 2
    assert client.decompress(client.compress(data)) == data


def test_corrupt_and_foreign_files_get_400_naming_the_problem(client):
    blob = client.compress(TEXT)  # one neural frame
    stream = io.BytesIO(blob)
    Header.read(stream)
    inside = stream.tell() + 40  # past the frame header, inside the coded payload
    flipped = blob[:inside] + bytes([blob[inside] ^ 0x10]) + blob[inside + 1 :]
    # A file of one neural frame says where its payload ends (format version 3): a cut is told.
    cut = ("TruncatedError",)
    cases = [
        (b"hello, not a nacrith file", ("FormatError",), "not a Nacrith file"),
        (blob[:-9], cut, "truncated"),
        (blob[:40], cut, "truncated"),
        (flipped, ("ChecksumError",), "frame 1"),
        (other_models_file(blob), ("ModelMismatchError",), "file needs model 0000"),
    ]
    for body, errors, words in cases:
        with pytest.raises(ServiceError) as caught:
            client.decompress(body)
        assert caught.value.status == 400, body[:20]
        assert caught.value.error in errors
        assert words in caught.value.message


def test_bad_options_are_refused(client):
    for query, status, error in (
        ("lanes=0", 422, "RequestValidationError"),
        ("lanes=300", 422, "RequestValidationError"),
        ("llm_only=perhaps", 422, "RequestValidationError"),
        ("dict=tiny&llm_only=true", 400, "BadOptions"),  # a dictionary brings its ensemble
    ):
        answer = client.request("POST", f"/compress?{query}", b"some text")
        assert answer.status == status, query
        assert answer.json()["error"] == error
        assert answer.json()["message"]


@pytest.mark.parametrize(
    ("method", "target", "named"),
    [
        ("POST", "/compress?lane=4", "parameter 'lane'"),  # a typo of lanes
        ("POST", "/compress?foo=1&lanes=4&bar=", "parameters 'bar', 'foo'"),
        ("POST", "/decompress?lanes=4", "parameter 'lanes'"),  # compress's option: decompress takes none
        ("GET", "/v1/info?verbose=1", "parameter 'verbose'"),
        ("GET", "/healthz?x", "parameter 'x'"),
    ],
)
def test_unknown_query_parameters_get_400_naming_them(client, method, target, named):
    answer = client.request(method, target, b"some text" if method == "POST" else None)
    assert answer.status == 400, target
    error = answer.json()
    assert error["error"] == "UnknownParameter"
    assert error["message"].startswith(f"unknown query {named} ({target.split('?')[0]} takes: ")


def test_every_endpoint_refuses_a_query_parameter_it_does_not_take(server, client):
    """Each endpoint of the schema, each checked against what it declares."""
    schema = Client(server, timeout=10).request("GET", "/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            takes = sorted(p["name"] for p in operation.get("parameters", ()) if p["in"] == "query")
            answer = client.request(
                method.upper(), f"{path}?nacrith_nonesuch=1", b"" if method == "post" else None
            )
            assert answer.status == 400, (method, path)
            message = answer.json()["message"]
            assert message == (
                f"unknown query parameter 'nacrith_nonesuch' ({path} takes: {', '.join(takes) or 'none'})"
            )


def test_a_multipart_form_gets_415_and_a_form_label_on_raw_bytes_does_not(client):
    """`curl -F file=@t.txt` sends the file inside a multipart envelope: 415,
    saying to send the raw bytes. `curl --data-binary @t.txt` sends the raw
    bytes but labels them application/x-www-form-urlencoded: taken as they are."""
    data = b"name=value&the file's own bytes\n"
    boundary = "----nacrith-test-boundary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    for endpoint in ("/compress", "/decompress"):
        answer = client.request(
            "POST", endpoint, form, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert answer.status == 415, endpoint
        assert answer.json()["error"] == "UnsupportedMediaType"
        assert "curl --data-binary @FILE" in answer.json()["message"]
    curl_label = {"Content-Type": "application/x-www-form-urlencoded"}
    blob = client.request("POST", "/compress", data, curl_label).body
    assert client.request("POST", "/decompress", blob, curl_label).body == data


SERVICE_DOC = Path(__file__).parent.parent / "docs" / "service.md"
#: Library errors the service never sends, and why.
NEVER_SENT = {
    JobCancelled: "only a job whose client has gone is cancelled: there is no one to answer",
    InputChangedError: "the service compresses its own spooled copy, which nothing changes",
    CorpusError: "corpora are the benchmarks' concern",
    OutputError: "the command line's: the service writes its own spool files",
    InputSkipped: "the command line's: the service reads request bodies, never a device",
}


def _documented_errors() -> dict[str, tuple[int, ...]]:
    """docs/service.md's table of errors: each name with its statuses."""
    section = SERVICE_DOC.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    found: dict[str, tuple[int, ...]] = {}
    for statuses, names in re.findall(r"^\| ([\d, ]+) \| (`[^|]+`) \|", section, re.MULTILINE):
        for name in re.findall(r"`(\w+)`", names):
            assert name not in found, f"{name} is listed twice"
            found[name] = tuple(int(status) for status in statuses.split(","))
    return found


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_the_docs_list_every_error_the_service_sends_and_no_other():
    """docs/service.md's table and the service's (server/errors.py) name the
    same errors with the same statuses; each library error class goes out
    under a name the table lists, each of the table's library names is a
    class, and each of the service's own is sent somewhere in server/."""
    documented = _documented_errors()
    assert documented == STATUSES
    library = {cls.__name__: cls for cls in _subclasses(NacrithError)}
    for cls in library.values():
        if cls not in NEVER_SENT:
            name = library_error_name(cls("x"))
            assert name in documented, f"{cls.__name__} would be sent as {name}, which the docs do not list"
    sources = "".join(
        path.read_text()
        for path in (SERVICE_DOC.parent.parent / "server").glob("*.py")
        if path.name != "errors.py"
    )
    errors_py = (SERVICE_DOC.parent.parent / "server" / "errors.py").read_text()
    handlers = errors_py.split("class ErrorBody", 1)[1]  # what follows the table
    for name in documented:
        if name in library:
            assert library_error_name(library[name]("x")) == name
        else:
            assert f'"{name}"' in sources or f'"{name}"' in handlers, f"nothing in server/ sends {name}"


def test_wrong_method_and_path(client):
    assert client.request("GET", "/compress").status == 405
    answer = client.request("GET", "/nowhere")
    assert answer.status == 404 and answer.json()["error"] == "HTTPError"


def test_a_frame_found_corrupt_mid_stream_ends_the_response_short(client, codec):
    """Frames before the corrupt one are sent; then the connection ends short
    of Content-Length, so no client takes the body for a whole one."""
    data = rng.randbytes(90_000)
    blob = bytearray(codec.compress(data, frame_size=10_000, segment=False))  # nine stored frames
    blob[60_000] ^= 1  # inside the sixth
    with pytest.raises(http.client.IncompleteRead) as caught:
        client.request("POST", "/decompress", bytes(blob))
    assert 10_000 <= len(caught.value.partial) < 60_000
    assert data.startswith(caught.value.partial)


# --- the queue, and clients that leave ---------------------------------------------


@pytest.fixture(scope="module")
def lone_worker() -> Iterator[str]:
    """One worker, one place in the queue, no key; the model takes 50 ms a step
    on frames holding the pace hook's marker, and on every frame it decodes."""
    env = {PACE_ENV: "0.05", PACE_DECODING_ENV: "1"}  # 50 ms a step: marked frames, and decoding
    with serve("--workers", "1", "--queue", "1", key=None, env_extra=env) as (url, _):
        yield url


def test_a_frame_that_kills_its_worker_gets_503_and_harms_no_one(server, client):
    """A worker dies from SIGILL while coding a frame (the test hook, where
    llama.cpp would run an instruction the CPU lacks). That request gets 503
    WorkerError naming the signal, once; a request the other worker codes
    meanwhile is unaffected; the dead worker is started afresh for the next."""
    survivor = PACE_MARKER + prose(3_000, seed=12)  # coded for seconds, whatever the machine
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(client.compress, survivor)
        wait_for(lambda: metric(server, "nacrith_frames_waiting") >= 1, 30)  # on worker 1
        with pytest.raises(ServiceError) as failed:
            client.compress(ENGLISH[:300] + FAULT_MARKER + ENGLISH[300:])
        assert client.decompress(other.result()) == survivor
    assert failed.value.status == 503
    assert failed.value.error == "WorkerError"
    assert "died from SIGILL (illegal instruction) while coding a frame" in failed.value.message
    # Two frames at once: both workers code again, the restarted one included.
    texts = [prose(600, seed=seed) for seed in (13, 14)]
    with ThreadPoolExecutor(2) as pool:
        blobs = list(pool.map(client.compress, texts))
    assert [client.decompress(blob) for blob in blobs] == texts


def test_full_queue_gets_503_and_a_gone_client_frees_its_worker(lone_worker):
    url = lone_worker
    long_text = PACE_MARKER + gibberish(2_000, seed=6)  # paced: most of a minute for one worker
    head = f"POST /compress HTTP/1.1\r\nHost: x\r\nContent-Length: {len(long_text)}\r\n\r\n".encode()
    s = raw_request(url, head, long_text)
    wait_for(lambda: metric(url, "nacrith_frames_waiting") == 1, 30)
    cancelled = metric(url, "nacrith_cancelled_total")
    stopped = metric(url, "nacrith_frames_stopped_total")

    answer = Client(url, timeout=10).request("POST", "/compress", b"anything")
    assert answer.status == 503
    assert answer.json()["error"] == "QueueFull"
    assert int(answer.headers["retry-after"]) >= 1

    s.close()  # the client leaves mid-job
    wait_for(lambda: metric(url, "nacrith_frames_waiting") == 0, 60)
    # Stopped, not finished: the worker is free minutes before the frame would be done.
    assert metric(url, "nacrith_frames_stopped_total") == stopped + 1
    assert metric(url, "nacrith_jobs") == 0
    assert metric(url, "nacrith_cancelled_total") == cancelled + 1
    data = prose(300, seed=7)
    client = Client(url, timeout=300)
    assert client.decompress(client.compress(data)) == data


def test_a_client_leaving_mid_upload_harms_no_one(lone_worker):
    """It held an upload place, never a place in the queue (bodies are spooled
    first), gives it back at once, and is counted as gone."""
    url = lone_worker
    gone = metric(url, CANCELLED_GONE)
    head = b"POST /compress HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    with contextlib.closing(raw_request(url, head, rng.randbytes(30_000))):
        wait_for(lambda: metric(url, "nacrith_uploads") == 1, 10)
        assert metric(url, "nacrith_jobs") == 0
    wait_for(lambda: metric(url, "nacrith_uploads") == 0, 10)
    assert metric(url, "nacrith_jobs") == 0
    assert metric(url, CANCELLED_GONE) == gone + 1
    data = rng.randbytes(5_000)
    client = Client(url, timeout=60)
    assert client.decompress(client.compress(data)) == data


def test_a_client_leaving_mid_download_frees_its_worker(lone_worker, client):
    """A decompress whose client leaves after the answer started, while the
    model decodes a later frame, stops that frame at once."""
    binary = random.Random(8).randbytes(1_500)
    data = binary + TEXT[:300] + binary[::-1] + tiny_text(5_000, seed=9)
    blob = client.compress(data)
    # Three quick frames (the status line waits for two), then most of a minute of (paced) model work.
    kinds = [entry.type.name for entry in read_info(io.BytesIO(blob)).trailer.entries]
    assert kinds == ["ZSTD_STREAM", "NEURAL", "ZSTD_STREAM", "NEURAL"]
    port = int(lone_worker.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("POST", "/decompress", body=blob)
    response = connection.getresponse()
    assert response.status == 200
    assert metric(lone_worker, "nacrith_frames_waiting") == 1  # the last frame
    stopped = metric(lone_worker, "nacrith_frames_stopped_total")
    connection.close()
    wait_for(lambda: metric(lone_worker, "nacrith_jobs") == 0, 60)
    wait_for(lambda: metric(lone_worker, "nacrith_frames_waiting") == 0, 60)
    assert metric(lone_worker, "nacrith_frames_stopped_total") == stopped + 1  # stopped, not finished


# --- uploads that stall -------------------------------------------------------------

BODY_TIMEOUT = 3.0
STALLED_HEAD = b"POST /compress HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"


@pytest.fixture(scope="module")
def slow_uploads_spool(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="module")
def slow_uploads(slow_uploads_spool) -> Iterator[str]:
    """One worker, two places in the queue, four upload places, a body timeout of 3 s, no key."""
    flags = ("--workers", "1", "--queue", "2", "--max-uploads", "4", "--body-timeout", str(BODY_TIMEOUT))
    with serve(*flags, "--spool-dir", str(slow_uploads_spool), key=None) as (url, _):
        yield url


def stalled_upload(url: str) -> socket.socket:
    """A request that declares a body of 1,000 bytes and sends 5, as the issue's did."""
    return raw_request(url, STALLED_HEAD, b"hello")


def test_stalled_uploads_do_not_block_a_normal_request(slow_uploads):
    """Three stalled uploads, more than the queue has places: a normal request
    is still answered, since an upload takes a place only once its body is in.
    A fourth takes the last upload place: then a request is refused at once
    (503 TooManyUploads), not left waiting."""
    url = slow_uploads
    client = Client(url, timeout=30)
    data = rng.randbytes(2_000)  # stored: no model, so answered at once
    stalled = [stalled_upload(url) for _ in range(3)]
    try:
        wait_for(lambda: metric(url, "nacrith_uploads") == 3, 2)
        assert client.decompress(client.compress(data)) == data
        stalled.append(stalled_upload(url))
        wait_for(lambda: metric(url, "nacrith_uploads") == 4, 2)
        answer = client.request("POST", "/compress", data)
        assert answer.status == 503 and answer.json()["error"] == "TooManyUploads"
        assert answer.headers["retry-after"] == "1"
    finally:
        for s in stalled:
            s.close()
    wait_for(lambda: metric(url, "nacrith_uploads") == 0, 5)
    assert client.decompress(client.compress(data)) == data


def test_a_stalled_upload_is_answered_408_within_the_body_timeout(slow_uploads):
    url = slow_uploads
    stalled_before = metric(url, CANCELLED_STALLED)
    sent = time.monotonic()
    with contextlib.closing(stalled_upload(url)) as s:
        status, answer = read_status(s)  # to the end: the server closes the connection
    waited = time.monotonic() - sent
    assert status == 408
    assert BODY_TIMEOUT - 0.5 < waited < BODY_TIMEOUT + 2
    assert b"connection: close" in answer.lower()
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body == {"error": "BodyTimeout", "message": "the request body stopped coming (nothing for 3 s)"}
    assert metric(url, CANCELLED_STALLED) == stalled_before + 1
    assert metric(url, "nacrith_uploads") == 0


def test_an_upload_that_trickles_is_stopped_too(slow_uploads):
    """A byte every second never goes silent for the body timeout, but past it
    falls under the slowest rate taken (8 KiB/s): 408 all the same."""
    url = slow_uploads
    sent = time.monotonic()
    with contextlib.closing(raw_request(url, STALLED_HEAD)) as s:
        for _ in range(30):  # a byte a second, until the server answers
            if select.select([s], [], [], 1.0)[0]:
                break
            s.sendall(b"x")
        status, answer = read_status(s)
    assert status == 408
    assert b"under 8 KiB/s" in answer
    assert time.monotonic() - sent < BODY_TIMEOUT + 2


def test_closing_stalled_uploads_counts_them_as_gone(slow_uploads):
    url = slow_uploads
    gone = metric(url, CANCELLED_GONE)
    stalled = [stalled_upload(url) for _ in range(3)]
    wait_for(lambda: metric(url, "nacrith_uploads") == 3, 2)
    for s in stalled:
        s.close()
    wait_for(lambda: metric(url, "nacrith_uploads") == 0, 2)  # well before the body timeout
    assert metric(url, CANCELLED_GONE) == gone + 3
    assert metric(url, CANCELLED_STALLED.replace("/compress", "/decompress")) == 0


def test_an_upload_that_cannot_be_spooled_gives_its_place_back(slow_uploads, slow_uploads_spool):
    """Four uploads whose spool file cannot be made (the directory is gone):
    each fails, and each gives its upload place back, so the next is taken."""
    url = slow_uploads
    client = Client(url, timeout=30)
    moved = slow_uploads_spool.with_name(slow_uploads_spool.name + "-moved")
    slow_uploads_spool.rename(moved)
    try:
        for _ in range(4):
            assert client.request("POST", "/compress", b"data").status != 200
    finally:
        moved.rename(slow_uploads_spool)
    assert metric(url, "nacrith_uploads") == 0
    assert client.decompress(client.compress(b"data")) == b"data"


def test_serve_refuses_a_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nacrith", "serve", "--model", str(tmp_path / "none.gguf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "none.gguf" in result.stderr


def _children(pid: int) -> list[int]:
    """The processes whose parent is pid (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
@pytest.mark.parametrize(
    ("signals", "status"),
    [((signal.SIGINT,), 130), ((signal.SIGINT, signal.SIGINT), 130), ((signal.SIGTERM,), 0)],
    ids=["ctrl-c", "ctrl-c-twice", "sigterm"],
)
def test_shutdown_stops_every_worker_and_leaks_nothing(tmp_path, signals, status):
    """Ctrl-C once (a graceful shutdown, after a request), twice while a
    request is being coded (forced: the app's own shutdown is cancelled), or
    SIGTERM, each sent to the whole process group, workers included, as a
    terminal and a service manager send them: the worker processes are gone,
    Python reports no leaked semaphores, no process prints a traceback, and
    the exit status is the documented one (130 interrupted, 0 stopped)."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "NACRITH_API_KEY"}
    with log.open("wb") as out:
        command = [sys.executable, "-m", "nacrith", "serve", "--port", str(port), "--workers", "2", "-T", "1"]
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = Client(url, timeout=120)

    def long_request() -> None:
        with contextlib.suppress(OSError):  # the server goes away in the middle of it
            client.request("POST", "/compress", prose(100_000, seed=3))

    try:
        client.wait_ready(180, lambda: process.poll() is None)
        started = _children(process.pid)
        assert len(started) >= 2, "two workers (and multiprocessing's resource tracker)"
        if len(signals) == 1:
            assert client.request("POST", "/compress", TEXT).status == 200
        else:  # a long request, still being coded when the interrupts come
            threading.Thread(target=long_request, daemon=True).start()
            wait_for(lambda: metric(url, "nacrith_jobs") >= 1, 30)
        for signum in signals:
            os.killpg(process.pid, signum)  # its own group: start_new_session
            time.sleep(0.5)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text(errors="replace")
    assert process.returncode == status, text[-2000:]
    wait_for(lambda: not any(_running(pid) for pid in started), 20)
    assert "leaked" not in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    if status == 130:
        assert text.splitlines()[-1] == "nacrith: interrupted"


@pytest.mark.parametrize(
    ("port", "words"), [("99999", "a port number is 0 to 65535"), ("http", "not a port number")]
)
def test_serve_refuses_a_bad_port_in_one_line(port, words):
    result = subprocess.run(
        [sys.executable, "-m", "nacrith", "serve", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (2, f"nacrith: --port {port}: {words}\n")


def test_serve_on_a_port_in_use_says_so_in_one_line():
    """Found before any worker starts; exit 1, as for any I/O error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "nacrith", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"nacrith: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in result.stderr


def test_serve_stops_when_the_workers_cannot_start():
    """Here llama-cpp-python has no GPU backend: the server says so and exits, not
    left running and never ready."""
    result = subprocess.run(
        [sys.executable, "-m", "nacrith", "serve", "--port", str(free_port()), "--gpus", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "nacrith: cannot start the workers:" in result.stderr.splitlines()[-1]
    assert "no GPU backend" in result.stderr.splitlines()[-1]


def corpus_present() -> bool:
    try:
        locate("canterbury", "kennedy.xls")
    except CorpusError:
        return False
    return True


@pytest.mark.skipif(not corpus_present(), reason="Canterbury corpus not found")
def test_load_script_runs_against_a_server(server, tmp_path):
    """benchmarks/load.py, kept working: a few short round trips, all verified."""
    report = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent.parent / "benchmarks" / "load.py"),
            *("--url", server, "--api-key", KEY, "--requests", "6", "--concurrency", "3"),
            *("--text-max", "200", "--json", str(report)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(report.read_text())
    assert (summary["requests"], summary["mismatches"], summary["errors"]) == (6, 0, {})
    assert "requests/s" in result.stdout


def test_dictionaries(client, codec, model, dictionary):
    """POST /compress?dict=NAME writes what the library writes with it; /decompress
    finds a file's dictionary by its fingerprint, or answers 400 naming it."""
    d, _ = dictionary
    listed = client.request("GET", "/v1/dicts").json()
    assert listed == [
        {
            "name": "tiny",
            "fingerprint": d.fingerprint.hex(),
            "priming_tokens": len(d.tokens),
            "learned": True,
            "bytes": len(d.pack()),
        }
    ]
    local = Codec.from_model(model, dict=d)
    blob = client.compress(TEXT[900:1300], dict="tiny")
    assert blob == local.compress(TEXT[900:1300])
    assert Header.read(io.BytesIO(blob)).dict_id == d.fingerprint
    assert client.decompress(blob) == TEXT[900:1300]
    with pytest.raises(ServiceError) as caught:
        client.compress(TEXT, dict="nope")
    assert caught.value.status == 400 and caught.value.error == "DictionaryError"
    assert "'nope'" in caught.value.message and "tiny" in caught.value.message
    other, _ = build_dictionary(model, [TEXT[:200], TEXT[200:400]], CompressOptions(), 60, limit=0)
    with pytest.raises(ServiceError) as caught:
        client.decompress(Codec.from_model(model, dict=other).compress(TEXT))
    assert caught.value.status == 400 and caught.value.error == "DictionaryError"
    assert other.fingerprint.hex() in caught.value.message
