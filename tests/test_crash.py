"""A crash inside llama.cpp is an error, not a silent death or a hang.

The crashes are real signals, raised by the test hook ($NACRITH_TEST_FAULT)
in the process that holds the model, at the point where it would start
coding a text frame holding the marker: the CLI, a worker process, a
benchmark's child. (A SIGILL from a real kernel the CPU lacks reaches the
same handlers; it cannot be produced on demand.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import tiny_text

from nacrith import bench
from nacrith.crash import death_text, run_in_child, signal_text
from nacrith.errors import WorkerError
from nacrith.format import FrameType
from nacrith.reader import read_info
from nacrith.support.testhooks import FAULT_ENV, FAULT_MARKER

ROOT = Path(__file__).resolve().parent.parent
#: A text frame the model codes (long enough not to stay with binary data), holding the marker.
DOOMED = (
    b"A compressor promises that a file decodes later, on another machine, and that a crash "
    b"never leaves half a file behind. " + FAULT_MARKER + b" The rest of the text follows here.\n"
) * 3


def run_nacrith(*args: str, fault: str | None, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NACRITH_THREADS": "1"}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "nacrith", *args], capture_output=True, cwd=cwd, env=env, timeout=300
    )


# --- naming deaths ----------------------------------------------------------------


def test_signals_are_named_with_their_meaning():
    assert signal_text(signal.SIGILL) == "SIGILL (illegal instruction)"
    assert signal_text(signal.SIGSEGV) == "SIGSEGV (invalid memory access)"
    assert signal_text(signal.SIGTERM) == "SIGTERM"
    assert death_text(-signal.SIGABRT) == "died from SIGABRT (abort)"
    assert death_text(3) == "exited with status 3"
    assert death_text(None) == "died"


def _value(x: int) -> int:
    return x * 2


def _raise() -> None:
    raise KeyError("inside the child")


def _die(signum: int) -> None:
    signal.raise_signal(signum)


def test_run_in_child_returns_raises_and_names_a_death():
    assert run_in_child(_value, 21) == 42
    with pytest.raises(KeyError, match="inside the child"):
        run_in_child(_raise)
    with pytest.raises(WorkerError, match=r"died from SIGILL \(illegal instruction\)"):
        run_in_child(_die, signal.SIGILL)


# --- the CLI ----------------------------------------------------------------------


@pytest.mark.llm
@pytest.mark.parametrize(
    ("fault", "advice"),
    [
        ("SIGILL", "reinstall it with the pinned build profile"),
        ("SIGSEGV", "sha256sum"),
        ("SIGABRT", "memory"),
    ],
)
def test_cli_crash_is_one_line_exit_1_and_no_output_file(tmp_path, fault, advice):
    (tmp_path / "doomed.txt").write_bytes(DOOMED)
    result = run_nacrith("compress", "doomed.txt", fault=fault, cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith(f"nacrith: crashed with {fault} ("), err
    assert advice in err
    assert "Traceback" not in err
    # No output file, not even the temporary one; the input is kept.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doomed.txt"]


@pytest.mark.llm
def test_cli_crash_while_decompressing_leaves_no_partial_output(tmp_path):
    """The first frame is decoded and written when the process dies in the
    second: the partly written output goes too."""
    # Text the model codes better than zstd, so that both frames are neural.
    first = tiny_text(1500, seed=1)
    second = tiny_text(1000, seed=2) + FAULT_MARKER + b"\n"
    (tmp_path / "two.txt").write_bytes(first + second)
    packed = run_nacrith(
        "compress", "-q", "--frame-size", str(len(first)), "two.txt", fault=None, cwd=tmp_path
    )
    assert packed.returncode == 0, packed.stderr.decode()
    with (tmp_path / "two.txt.nc").open("rb") as f:
        assert [e.type for e in read_info(f).trailer.entries] == [FrameType.NEURAL] * 2
    (tmp_path / "two.txt").unlink()
    result = run_nacrith("decompress", "two.txt.nc", fault="SIGSEGV", cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("nacrith: crashed with SIGSEGV ("), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.txt.nc"]


@pytest.mark.llm
def test_cli_crash_in_a_worker_names_the_signal(tmp_path):
    (tmp_path / "doomed.txt").write_bytes(DOOMED)
    result = run_nacrith("compress", "--workers", "2", "doomed.txt", fault="SIGSEGV", cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert (
        err
        == "nacrith: doomed.txt: worker 1 died from SIGSEGV (invalid memory access) while coding a frame\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doomed.txt"]


@pytest.mark.llm
def test_the_hook_is_inert_without_its_variable_and_marker(tmp_path):
    """The same input compresses without the variable, and a frame without the
    marker compresses with it: the hook fires only where the tests aim it."""
    (tmp_path / "doomed.txt").write_bytes(DOOMED)
    assert run_nacrith("compress", "-q", "doomed.txt", fault=None, cwd=tmp_path).returncode == 0
    (tmp_path / "fine.txt").write_bytes(DOOMED.replace(FAULT_MARKER, b"an ordinary phrase"))
    assert run_nacrith("compress", "-q", "fine.txt", fault="SIGILL", cwd=tmp_path).returncode == 0
    assert run_nacrith("test", "-q", "fine.txt.nc", fault="SIGILL", cwd=tmp_path).returncode == 0


# --- benchmarks -------------------------------------------------------------------


@pytest.mark.llm
def test_bench_reports_a_dead_child_as_a_failed_row(tmp_path, monkeypatch):
    source = tmp_path / "doomed.txt"
    source.write_bytes(DOOMED)
    monkeypatch.setenv(FAULT_ENV, "SIGILL")
    report = bench.run_bench(bench.resolve_inputs([str(source)], None), ["gzip -9"], {}, threads=1)
    rows = {r.compressor: r for r in report.results}
    assert rows["nacrith"].error == "the child process died from SIGILL (illegal instruction)"
    assert not rows["nacrith"].verified
    assert rows["gzip -9"].verified  # the run went on after the dead child
    assert not report.ok()


@pytest.mark.llm
def test_lanes_benchmark_reports_a_dead_child_as_a_failed_row(tmp_path):
    source = tmp_path / "doomed.txt"
    source.write_bytes(DOOMED)
    env = {**os.environ, FAULT_ENV: "SIGILL"}
    script = ROOT / "benchmarks" / "lanes.py"
    args = [sys.executable, str(script), str(source), "--lanes", "1,2", "--workers", "1", "--threads", "1"]
    # The timeout is the test: before, the parent waited forever for its dead child.
    result = subprocess.run(args, capture_output=True, env=env, timeout=300)
    out = result.stdout.decode()
    assert result.returncode == 1, result.stderr.decode()
    assert out.count("FAILED: WorkerError: the child process died from SIGILL (illegal instruction)") == 2


@pytest.mark.llm
def test_lanes_benchmark_runs_workers_in_its_child_and_leaks_nothing(tmp_path):
    """Each measurement runs in a child process of its own, which starts the
    workers of --workers 2 (a daemonic child could not), and everything it
    started is cleaned up: Python reports no leaked semaphores."""
    source = tmp_path / "words.txt"
    source.write_bytes(tiny_text(3_000, seed=8))
    script = ROOT / "benchmarks" / "lanes.py"
    args = [sys.executable, str(script), str(source), "--lanes", "1", "--workers", "1,2", "--threads", "1"]
    result = subprocess.run([*args, "--frame-size", "1000"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout and result.stdout.count(" yes\n") == 2  # both rows verified
    assert "leaked" not in result.stderr
