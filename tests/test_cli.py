"""The `nacrith` command line, run as a real subprocess: with the tiny test
model ($NACRITH_MODEL, set by conftest.py), and once with the real default."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ENGLISH, ENV, TEXT, assert_clean_error, nacrith, run_in_pty

from nacrith.files import file_sha256
from nacrith.format import Header
from nacrith.models.llm import MODEL_ENV
from nacrith.support.testhooks import PACE_ENV, PACE_MARKER

pytestmark = pytest.mark.llm


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_bytes(TEXT)
    return tmp_path


def test_compress_decompress_test_info(workdir, real_model_path):
    """The end-to-end smoke test, with the default model, as a user runs it."""
    default = {k: v for k, v in ENV.items() if k != MODEL_ENV}
    (workdir / "a.txt").write_bytes(ENGLISH)
    r = nacrith("compress", "a.txt", cwd=workdir, env=default)
    assert r.returncode == 0, r.stderr
    assert (workdir / "a.txt").read_bytes() == ENGLISH, "source is kept"
    summary = r.stderr.decode()
    assert "a.txt:" in summary and "bpb" in summary and "tok/s" in summary and "-> a.txt.nc" in summary

    r = nacrith("test", "a.txt.nc", cwd=workdir, env=default)
    assert r.returncode == 0 and b"OK" in r.stderr

    r = nacrith("info", "a.txt.nc", cwd=workdir, env=default)
    out = r.stdout.decode()
    assert r.returncode == 0
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in out and "neural" in out and f"{len(ENGLISH)} bytes" in out

    (workdir / "a.txt").unlink()
    r = nacrith("decompress", "a.txt.nc", cwd=workdir, env=default)
    assert r.returncode == 0, r.stderr
    assert (workdir / "a.txt").read_bytes() == ENGLISH
    assert (workdir / "a.txt.nc").exists(), "compressed file is kept"


def test_refuses_to_overwrite_without_force(workdir):
    (workdir / "a.txt.nc").write_bytes(b"precious")
    r = nacrith("compress", "a.txt", cwd=workdir)
    assert_clean_error(r, 2, "already exists")
    assert (workdir / "a.txt.nc").read_bytes() == b"precious"
    r = nacrith("compress", "-f", "-q", "a.txt", cwd=workdir)
    assert r.returncode == 0 and r.stderr == b""
    assert (workdir / "a.txt.nc").read_bytes().startswith(b"\x89NCR")


def test_stdin_to_stdout_pipeline(workdir):
    data = b"piped \x00 binary \xff and text\r\n" * 3
    packed = nacrith("compress", "-q", stdin=data)
    assert packed.returncode == 0 and packed.stdout.startswith(b"\x89NCR")
    unpacked = nacrith("decompress", "-q", "-", stdin=packed.stdout)
    assert unpacked.returncode == 0 and unpacked.stdout == data


def test_output_options(workdir):
    assert nacrith("compress", "-q", "a.txt", "-o", "x.bin", cwd=workdir).returncode == 0
    r = nacrith("decompress", "-c", "x.bin", cwd=workdir)
    assert r.returncode == 0 and r.stdout == TEXT
    assert_clean_error(nacrith("decompress", "x.bin", cwd=workdir), 2, "unknown suffix")
    assert_clean_error(
        nacrith("compress", "a.txt", "-c", "-o", "y", cwd=workdir), 2, "cannot be used together"
    )


def test_corrupt_file_exits_1_and_leaves_nothing(workdir):
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0
    blob = bytearray((workdir / "a.txt.nc").read_bytes())
    header_len = len(Header.read(io.BytesIO(bytes(blob))).pack())
    blob[header_len + 20] ^= 0x10  # inside the first frame's payload
    (workdir / "bad.nc").write_bytes(bytes(blob))
    before = sorted(p.name for p in workdir.iterdir())
    assert_clean_error(nacrith("decompress", "bad.nc", cwd=workdir), 1, "bad.nc: frame 1")
    assert sorted(p.name for p in workdir.iterdir()) == before, "no output, no temporary file"


def test_truncated_and_foreign_files(workdir):
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0
    blob = (workdir / "a.txt.nc").read_bytes()
    (workdir / "cut.nc").write_bytes(blob[: len(blob) // 2])
    assert_clean_error(nacrith("test", "cut.nc", cwd=workdir), 1, "truncated")
    assert_clean_error(nacrith("info", "a.txt", cwd=workdir), 1, "not a Nacrith file")
    assert_clean_error(nacrith("test", "missing.nc", cwd=workdir), 1, "No such file")


def test_wrong_model_is_refused(workdir):
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0
    blob = (workdir / "a.txt.nc").read_bytes()
    header = Header.read(io.BytesIO(blob))
    other = Header(**{**header.__dict__, "model_id": bytes(len(header.model_id))})
    (workdir / "other.nc").write_bytes(other.pack() + blob[len(header.pack()) :])
    assert_clean_error(nacrith("test", "other.nc", cwd=workdir), 1, "file needs model 0000")
    assert_clean_error(
        nacrith("compress", "--model", "nope.gguf", "a.txt", "-o", "new.nc", cwd=workdir), 1, "nope.gguf"
    )


def test_usage_errors_exit_2(workdir):
    assert nacrith(cwd=workdir).returncode == 2
    assert nacrith("compress", "--context", "x", "a.txt", cwd=workdir).returncode == 2
    assert_clean_error(nacrith("compress", "--context", "4", "a.txt", cwd=workdir), 2, "context")


def test_refuses_compressed_data_on_a_terminal(workdir):
    code, _ = run_in_pty(["compress", "-c", str(workdir / "a.txt")], stdout_tty=True)
    assert code == 2
    code, _ = run_in_pty(["decompress", "-c"], stdin_tty=True)
    assert code == 2


def test_progress_line_on_a_terminal(workdir):
    big = workdir / "big.txt"
    big.write_bytes(TEXT * 4)
    code, screen = run_in_pty(["compress", str(big)], stderr_tty=True)
    assert code == 0
    assert "tok/s" in screen and "bpb" in screen and "ETA" in screen


@pytest.mark.parametrize("delay", [0.0, 2.0], ids=["while-loading", "while-coding"])
def test_interrupt_removes_partial_output(workdir, delay):
    """Ctrl-C at any time: exit 130, no partial output. The first SIGINT lands as
    soon as the output is opened, around the model's loading (llama.cpp's log
    sink is a C function, so no Python callback can swallow it); the second in
    the model's work on a frame, which the pace hook makes last over a minute."""
    # Words in random order: no long repeats the ensemble could code without the model.
    rng = random.Random(0)
    words = TEXT.split()
    big = workdir / "big.txt"
    big.write_bytes(PACE_MARKER + b" ".join(rng.choice(words) for _ in range(3000)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nacrith", "compress", str(big)],
        env={**ENV, PACE_ENV: "0.02"},
        stderr=subprocess.PIPE,
        # A shell without job control starts background jobs with SIGINT ignored,
        # and Python then leaves it ignored (as it should): give the child the
        # default, as a terminal would, whatever started the tests.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.endswith(".tmp") for p in workdir.iterdir()):
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert b"interrupted" in proc.stderr.read()
    assert sorted(p.name for p in workdir.iterdir()) == ["a.txt", "big.txt"]


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (
            [],
            "n-gram orders 2-4, match, bias, "
            "skip at match >= 16 tokens with the n-gram agreeing at 0.9 or >= 24 alone, apm",
        ),
        (["--llm-only"], "none (the language model alone)"),
        (["--no-skip", "--no-bias"], "n-gram orders 2-4, match, apm"),
        (["--no-match", "--ensemble", "ngram_max_order=6"], "n-gram orders 2-6, bias, apm"),
        # Asked for by name, context heads are coded even in a file this short.
        (
            ["--no-skip", "--ensemble", "bias_contexts=8"],
            "n-gram orders 2-4, match, bias with 8 context heads, apm",
        ),
    ],
)
def test_ensemble_flags_are_recorded_and_decompress_needs_none(workdir, flags, shown):
    r = nacrith("compress", "a.txt", *flags, cwd=workdir)
    assert r.returncode == 0, r.stderr
    info = nacrith("info", "a.txt.nc", cwd=workdir).stdout.decode()
    assert f"ensemble      {shown}\n" in info
    r = nacrith("decompress", "a.txt.nc", "-o", "back.txt", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert (workdir / "back.txt").read_bytes() == TEXT


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--ensemble", "nonsense=1"], "NAME a hyperparameter"),
        (["--ensemble", "layout=1"], "NAME a hyperparameter"),
        (["--ensemble", "bias_lr=fast"], "needs a number"),
        (["--ensemble", "ngram_max_order=12"], "n-gram orders"),
        (["--llm-only", "--no-bias"], "--llm-only takes no other"),
    ],
)
def test_bad_ensemble_flags_are_usage_errors(workdir, flags, words):
    assert_clean_error(nacrith("compress", "a.txt", *flags, cwd=workdir), 2, words)
    assert not (workdir / "a.txt.nc").exists()


def test_binary_file_is_zstd_alone_and_info_says_no_model(workdir):
    """A file zstd does better on is written without a model; info and test need none."""
    (workdir / "b.bin").write_bytes(bytes(range(256)) * 64)
    r = nacrith("compress", "b.bin", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert b"in 1 zstd stream frame" in r.stderr
    out = nacrith("info", "b.bin.nc", cwd=workdir).stdout.decode()
    assert "none (no neural frames" in out and "zstd_stream" in out
    r = nacrith("test", "--model", "nope.gguf", "b.bin.nc", cwd=workdir)
    assert r.returncode == 0, r.stderr


def _with_reader_gone(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run nacrith with stdout a pipe whose reader has closed it before the output comes."""
    command = [sys.executable, "-m", "nacrith", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=ENV)
    assert proc.stdout is not None
    proc.stdout.close()  # as `| head` does once it has read its lines
    _, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, b"", err)


def test_a_reader_gone_stops_quietly(workdir):
    """`nacrith decompress -c f.nc | head` and `nacrith bench | head` stop as gzip
    and xz do: no message, no traceback, and the status a shell reports for them."""
    (workdir / "r.bin").write_bytes(random.Random(3).randbytes(1 << 20))  # zstd alone: no model run
    assert nacrith("compress", "r.bin", cwd=workdir).returncode == 0
    for args in (
        ["decompress", "-c", "r.bin.nc"],
        ["bench", "-q", "--no-nacrith", "--peers", "gzip -9", "--corpus", "r.bin"],
    ):
        gone = _with_reader_gone(args, workdir)
        assert (gone.returncode, gone.stderr.decode()) == (128 + signal.SIGPIPE, ""), args
    # An error of the input's own is still reported, the reader gone or not.
    (workdir / "bad.nc").write_bytes(b"not a nacrith file")
    bad = _with_reader_gone(["decompress", "-c", "bad.nc"], workdir)
    assert bad.returncode == 1 and bad.stderr.decode().startswith("nacrith: bad.nc: "), bad.stderr


def test_lanes_and_workers(workdir):
    """--lanes is recorded and shown by info; --workers gives the same file as one process."""
    text = TEXT * 6
    (workdir / "lanes.txt").write_bytes(text)
    opts = ["--no-segment", "--frame-size", "400", "--lanes", "4", "lanes.txt"]
    one = nacrith("compress", *opts, "-o", "one.nc", cwd=workdir)
    assert one.returncode == 0, one.stderr.decode()
    two = nacrith("compress", *opts, "--workers", "2", "-o", "two.nc", cwd=workdir)
    assert two.returncode == 0, two.stderr.decode()
    assert (workdir / "one.nc").read_bytes() == (workdir / "two.nc").read_bytes()
    info = nacrith("info", "one.nc", cwd=workdir).stdout.decode()
    assert "lanes         4: up to 4 streams per text frame" in info
    back = nacrith("decompress", "--workers", "2", "-c", "two.nc", cwd=workdir)
    assert back.returncode == 0 and back.stdout == text


@pytest.mark.parametrize(
    "flags, code, words",
    [
        (["--gpus", "x"], 2, "--gpus"),
        (["--gpus", "0,0"], 2, "--gpus"),
        (["--workers", "0"], 2, "--workers"),
        (["--lanes", "300"], 2, "lanes must be 1..256"),
        # This build of llama.cpp has no GPU backend: a clear error, not a traceback.
        (["--gpus", "0"], 1, "no GPU backend"),
    ],
)
def test_bad_parallel_flags(workdir, flags, code, words):
    result = nacrith("compress", *flags, "-c", "a.txt", cwd=workdir)
    if code == 2 and words.startswith("--"):
        assert result.returncode == 2 and words in result.stderr.decode()
    else:
        assert_clean_error(result, code, words)


def test_the_slide_follows_the_context(workdir):
    """--context alone: the slide is a quarter of it, so a short window works."""
    r = nacrith("compress", "-q", "--context", "100", "--no-segment", "a.txt", cwd=workdir)
    assert r.returncode == 0, r.stderr
    info = nacrith("info", "a.txt.nc", cwd=workdir).stdout.decode()
    assert "100 tokens, slides by 25" in info
    assert nacrith("test", "-q", "a.txt.nc", cwd=workdir).returncode == 0


def test_models_lists_what_it_finds_and_info_finds_the_model(workdir, tiny_model_file):
    """The models directory, $NACRITH_MODEL and a file that is no model; info
    names a version-2 file's model from a models directory by its fingerprint."""
    models = workdir / "models"
    models.mkdir()
    os.symlink(tiny_model_file, models / "tiny.gguf")
    (models / "broken.gguf").write_bytes(b"not a model")
    env = {**{k: v for k, v in ENV.items() if k != MODEL_ENV}, "NACRITH_MODELS": str(models)}
    listed = nacrith("models", cwd=workdir, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in listed.stdout.decode().splitlines()}
    fingerprint = file_sha256(tiny_model_file)[:8].hex()
    assert "byte-level BPE, 49152 tokens" in rows["tiny.gguf"] and fingerprint in rows["tiny.gguf"]
    assert "| yes |" in rows["tiny.gguf"] and str(models) in rows["tiny.gguf"]
    assert "no: cannot read" in rows["broken.gguf"]
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0  # with the tiny model
    info = nacrith("info", "a.txt.nc", cwd=workdir, env=env).stdout.decode()
    assert "tiny.gguf" in info and file_sha256(tiny_model_file).hex() in info
