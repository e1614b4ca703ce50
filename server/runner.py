"""`nacrith serve` under uvicorn, run as a command-line tool should be: the
port checked and bound before anything starts, one line for what goes
wrong, and an exit status that says how it ended (the CLI maps them:
interrupted 130, stopped 0)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

log = logging.getLogger("nacrith.server")

#: What stops the server: Ctrl-C, and `kill` (how Kubernetes and systemd stop a service).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def parse_port(text: str) -> int:
    """A TCP port number; ValueError with a one-line message otherwise."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"--port {text}: not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port}: a port number is 0 to 65535")
    return port


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: one the system picks), so that a
    port in use is found before any worker starts; OSError with a one-line
    message when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restarted server need not wait out the old one's closed connections.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot listen on {_address(host, port)}: {reason}") from None
    return sock


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Server(uvicorn.Server):
    """uvicorn's server, which says where it listens on a socket bound
    beforehand, and which does not raise the signal that stopped it again
    once stopped: uvicorn does so to end the process by it, and with requests
    still running after a forced stop (Ctrl-C twice) that made asyncio cancel
    them and log every cancellation as a traceback. ``signals`` tells the
    caller what stopped it instead."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.signals: list[int] = []

    @property
    def interrupted(self) -> bool:
        return signal.SIGINT in self.signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # pragma: no cover - tests only
            yield
            return
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        # Around the whole run: the cancellations come as the event loop closes, after serve().
        quiet = _QuietForcedStop(self)
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            super().run(sockets)
        finally:
            uvicorn_log.removeFilter(quiet)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            log.info("nacrith: listening on http://%s (Ctrl-C stops)", _address(host, port))


class _QuietForcedStop(logging.Filter):
    """After a forced stop, the requests still running are cancelled as the
    event loop closes; uvicorn logs each cancellation (and Starlette that of
    the app's lifespan) as a traceback. They were cut off on purpose: drop
    those records, keep every other."""

    def __init__(self, server: uvicorn.Server) -> None:
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.server.force_exit:
            return True
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            return False
        # Starlette sends its lifespan's traceback to uvicorn as text.
        return not record.getMessage().rstrip().endswith("CancelledError")
