"""The command line never loses a file: not the input (an output that is the
input is refused), not what stands at the output path (a device, a FIFO or a
link is written through, never replaced), and it leaves no temporary file
behind however it is stopped. Real subprocesses on the tiny model."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import ENV, TEXT, assert_clean_error, nacrith

from nacrith.errors import OutputError
from nacrith.files import atomic_output
from nacrith.support.testhooks import PACE_DECODING_ENV, PACE_ENV, PACE_MARKER

pytestmark = pytest.mark.llm


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_bytes(TEXT)
    return tmp_path


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("force", [[], ["-f"]], ids=["plain", "forced"])
def test_an_output_that_is_the_input_is_refused(workdir, force):
    """zstd's "Refusing to open an output file which will overwrite the input
    file", -f or not: by name, and with stdin the output file, as in
    `nacrith compress -f -o x < x` (links: test_atomic_output_refuses_its_own_input)."""
    r = nacrith("compress", *force, "a.txt", "-o", "a.txt", cwd=workdir)
    assert_clean_error(r, 1, "a.txt: refusing to write the output over its own input")
    with (workdir / "a.txt").open("rb") as stdin:
        r = subprocess.run(
            [sys.executable, "-m", "nacrith", "decompress", *force, "-o", "a.txt"],
            stdin=stdin,
            capture_output=True,
            cwd=workdir,
            env=ENV,
            timeout=300,
        )
    assert_clean_error(r, 1, "a.txt: refusing to write the output over its own input")
    assert (workdir / "a.txt").read_bytes() == TEXT
    assert listing(workdir) == ["a.txt"]


def test_atomic_output_refuses_its_own_input(tmp_path):
    (tmp_path / "in").write_bytes(b"precious")
    os.symlink("in", tmp_path / "soft")
    os.link(tmp_path / "in", tmp_path / "hard")
    source = (tmp_path / "in").stat()
    for name in ("in", "soft", "hard"):
        for overwrite in (False, True):
            with (
                pytest.raises(OutputError, match="refusing to write the output over its own input"),
                atomic_output(tmp_path / name, overwrite=overwrite, source=source) as f,
            ):
                f.write(b"lost")
    assert (tmp_path / "in").read_bytes() == b"precious"
    assert listing(tmp_path) == ["hard", "in", "soft"]


def test_atomic_output_writes_through_a_fifo(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def drain() -> None:
        with fifo.open("rb") as f:
            received.extend(f.read())

    reader = threading.Thread(target=drain)
    reader.start()
    with atomic_output(fifo) as f:  # no overwrite needed: nothing is replaced
        assert not f.seekable(), "a writer must never try to rewind a pipe"
        f.write(b"through")
    reader.join(timeout=60)
    assert bytes(received) == b"through"
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and listing(tmp_path) == ["out.fifo"]


def test_atomic_output_writes_through_a_character_device(tmp_path):
    """The way `-f -o /dev/null` as root would have replaced /dev/null, on a
    device node of the test's own (the null device's numbers)."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    for overwrite in (False, True):
        with atomic_output(node, overwrite=overwrite) as f:
            assert not f.seekable()
            f.write(b"gone")
        assert stat.S_ISCHR(node.lstat().st_mode) and node.lstat().st_rdev == os.makedev(1, 3)
    assert listing(tmp_path) == ["null"], "no temporary file either"


def test_atomic_output_keeps_a_symbolic_link(tmp_path):
    """With overwrite, the file a link leads to is replaced and the link stays;
    a link to nothing is written through, making its target."""
    (tmp_path / "old").write_bytes(b"old")
    os.symlink("old", tmp_path / "link")
    with pytest.raises(FileExistsError), atomic_output(tmp_path / "link") as f:
        f.write(b"new")
    assert (tmp_path / "old").read_bytes() == b"old"
    with atomic_output(tmp_path / "link", overwrite=True) as f:
        f.write(b"new")
    assert os.readlink(tmp_path / "link") == "old" and (tmp_path / "old").read_bytes() == b"new"
    os.symlink("made", tmp_path / "dangling")
    with atomic_output(tmp_path / "dangling") as f:
        f.write(b"made")
    assert os.readlink(tmp_path / "dangling") == "made" and (tmp_path / "made").read_bytes() == b"made"
    assert listing(tmp_path) == ["dangling", "link", "made", "old"]


def test_atomic_output_refuses_a_directory(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="dir: a directory"), atomic_output(tmp_path / "dir", True) as f:
        f.write(b"x")
    assert listing(tmp_path / "dir") == []


def test_errors_name_the_users_paths_not_a_temporary_file(workdir, tmp_path):
    r = nacrith("compress", "a.txt", "-o", "nodir/x.nc", cwd=workdir)
    assert_clean_error(r, 1, "nacrith: nodir/x.nc: No such file or directory")
    assert ".tmp" not in r.stderr.decode()
    # A write that fails (a full disk: /dev/full, through a link) names the output, not the input.
    if Path("/dev/full").exists():
        os.symlink("/dev/full", tmp_path / "full")
        with pytest.raises(OSError, match="No space left") as caught, atomic_output(tmp_path / "full") as f:
            f.write(b"x" * (1 << 20))
        assert caught.value.filename == str(tmp_path / "full")


def test_a_non_regular_input_is_skipped(workdir):
    """As zstd: one line, status 1, no output made. A pipe is read (process
    substitution gives one)."""
    zero = Path("/dev/zero")  # a device that never ends
    r = nacrith("compress", str(zero), cwd=workdir)
    assert_clean_error(r, 1, "/dev/zero: not a regular file -- ignored")
    assert_clean_error(nacrith("info", str(zero), cwd=workdir), 1, "/dev/zero: not a regular file -- ignored")
    assert_clean_error(nacrith("compress", str(workdir), cwd=workdir), 1, "is a directory -- ignored")
    r = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m nacrith compress -q <(cat a.txt) -o piped.nc"],
        capture_output=True,
        cwd=workdir,
        env=ENV,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert nacrith("decompress", "-c", "piped.nc", cwd=workdir).stdout == TEXT


def _paced_text(directory: Path) -> Path:
    """A text whose coding the pace hook stretches over a minute or more."""
    words = TEXT.split()
    big = directory / "big.txt"
    big.write_bytes(PACE_MARKER + b" ".join(words[i * 7 % len(words)] for i in range(3000)))
    return big


def _stop_midway(command: list[str], directory: Path, sig: int, env: dict[str, str]) -> tuple[int, bytes]:
    """Start nacrith, send ``sig`` once its temporary output exists, and return
    its status and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nacrith", *command],
        cwd=directory,
        env=env,
        stderr=subprocess.PIPE,
        # What a terminal's shell gives a command: every signal at its default.
        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGHUP)],
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.endswith(".tmp") for p in directory.iterdir()):
        time.sleep(0.05)
    time.sleep(1.0)  # into the model's work
    proc.send_signal(sig)
    assert proc.stderr is not None
    err = proc.stderr.read()
    return proc.wait(timeout=60), err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT], ids=lambda s: s.name)
def test_termination_signals_leave_no_temporary_file(workdir, sig):
    """`timeout`, `kill`, systemd and a closed terminal stop a command as Ctrl-C
    does: its temporary output is removed, and the status is what a shell
    reports for the signal (128 + its number)."""
    big = _paced_text(workdir)
    status, err = _stop_midway(["compress", big.name], workdir, sig, {**ENV, PACE_ENV: "0.02"})
    assert status == 128 + sig, err
    assert f"stopped by {sig.name}".encode() in err and b"Traceback" not in err
    assert listing(workdir) == ["a.txt", "big.txt"]


def test_a_decompression_stopped_by_sigterm_leaves_nothing(workdir):
    big = _paced_text(workdir)
    assert nacrith("compress", "-q", big.name, cwd=workdir).returncode == 0
    big.unlink()
    env = {**ENV, PACE_DECODING_ENV: "1", PACE_ENV: "0.02"}
    status, err = _stop_midway(["decompress", "big.txt.nc"], workdir, signal.SIGTERM, env)
    assert status == 128 + signal.SIGTERM, err
    assert listing(workdir) == ["a.txt", "big.txt.nc"]
