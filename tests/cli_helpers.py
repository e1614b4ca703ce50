"""Running the `nacrith` command line as a real subprocess, for the CLI tests:
with the tiny test model ($NACRITH_MODEL, set by conftest.py) unless a test
says otherwise, one llama.cpp thread, and a pseudo-terminal when a test needs
one of its streams to be a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tiny_model import tiny_text

#: Long enough that the real model's coding beats zstd alone, header included.
ENGLISH = (
    b"Compression is prediction: a model that guesses the next word well needs few bits.\n"
    b"An arithmetic coder turns each probability into a fraction of a bit, so the better\n"
    b"the guess, the shorter the file. A small language model has read far more English\n"
    b"than any dictionary holds, and it knows that after 'once upon a' comes 'time'. The\n"
    b"decoder runs the same model over the same text, one token at a time, and recovers\n"
    b"every byte exactly, provided both sides compute the very same numbers.\n"
)
#: The same for the tiny test model (tests/tiny_model.py).
TEXT = tiny_text(1500, seed=5)
ENV = {**os.environ, "NACRITH_THREADS": "1"}


def nacrith(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, env: dict[str, str] = ENV
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nacrith", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_clean_error(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    """A user mistake: the given exit code, one line on stderr naming the problem, no traceback."""
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert "Traceback" not in err
    assert err.startswith("nacrith: ") and err.count("\n") == 1, err
    assert words in err


def run_in_pty(
    args: list[str],
    stdin_tty: bool = False,
    stdout_tty: bool = False,
    stderr_tty: bool = False,
    env: dict[str, str] = ENV,
    cwd: Path | None = None,
    columns: int | None = None,
):
    """Run nacrith with some of its standard streams on a pseudo-terminal (of
    ``columns`` columns if given); returns (code, terminal output)."""
    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    streams = {
        "stdin": slave if stdin_tty else subprocess.DEVNULL,
        "stdout": slave if stdout_tty else subprocess.DEVNULL,
        "stderr": slave if stderr_tty else subprocess.DEVNULL,
    }
    proc = subprocess.Popen([sys.executable, "-m", "nacrith", *args], env=env, cwd=cwd, **streams)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")
