"""What users of gzip, xz and zstd type, and what scripts read: mode flags,
`-l`, `-V`, `info -`, JSON, completion, the summary's words, and the CLI's
messages. Real subprocesses on the tiny model."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ENV, TEXT, assert_clean_error, nacrith, run_in_pty

from nacrith.cli import with_mode_flag
from nacrith.files import file_sha256
from nacrith.models.llm import MODEL_ENV, bundled_model_path
from nacrith.options import DICTIONARY_SETTINGS
from nacrith.support.testhooks import PACE_DECODING_ENV, PACE_ENV

pytestmark = pytest.mark.llm


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_bytes(TEXT)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-d", "f.nc"], ["decompress", "f.nc"]),
        (["-dc", "f.nc"], ["decompress", "-c", "f.nc"]),
        (["-cd", "f.nc"], ["decompress", "-c", "f.nc"]),
        (["-q", "-d", "f.nc"], ["decompress", "-q", "f.nc"]),
        (["-z", "f"], ["compress", "f"]),
        (["-t", "f.nc"], ["test", "f.nc"]),
        (["-l", "f.nc"], ["info", "f.nc"]),
        (["--list", "f.nc"], ["info", "f.nc"]),
        (["--decompress", "f.nc"], ["decompress", "f.nc"]),
        # A command named: left alone, whatever follows.
        (["compress", "-d"], ["compress", "-d"]),
        (["info", "-l"], ["info", "-l"]),
        # Two modes in one cluster: left for argparse to refuse.
        (["-dz", "f"], ["-dz", "f"]),
        (["--", "-d"], ["--", "-d"]),
    ],
)
def test_mode_flags_stand_for_commands(argv, expected):
    assert with_mode_flag(argv) == expected


def test_gzip_style_command_lines(workdir):
    """`nacrith -k FILE` is not a thing, but -k is accepted by compress,
    decompress and test (sources are kept anyway); -d, -dc, -t, -l, -V work."""
    assert nacrith("compress", "-k", "-q", "a.txt", cwd=workdir).returncode == 0
    assert (workdir / "a.txt").read_bytes() == TEXT
    back = nacrith("-dc", "a.txt.nc", cwd=workdir)
    assert back.returncode == 0 and back.stdout == TEXT
    (workdir / "a.txt").unlink()
    assert nacrith("-d", "-k", "-q", "a.txt.nc", cwd=workdir).returncode == 0
    assert (workdir / "a.txt").read_bytes() == TEXT and (workdir / "a.txt.nc").exists()
    tested = nacrith("-t", "a.txt.nc", cwd=workdir)
    assert tested.returncode == 0 and b"OK" in tested.stderr
    listed = nacrith("-l", "a.txt.nc", cwd=workdir)
    assert listed.returncode == 0 and b"format        version 3" in listed.stdout
    version = nacrith("-V")
    assert version.returncode == 0 and version.stdout.startswith(b"nacrith ")


def test_a_level_is_a_usage_error_not_a_missing_file(workdir):
    for argv in (["compress", "-9", "a.txt"], ["-z", "-19", "a.txt"], ["compress", "a.txt", "-1"]):
        assert_clean_error(nacrith(*argv, cwd=workdir), 2, "no compression levels yet")
    assert not (workdir / "a.txt.nc").exists()
    # After --, -9 is a file's name.
    (workdir / "-9").write_bytes(TEXT)
    assert nacrith("compress", "-q", "--", "-9", cwd=workdir).returncode == 0
    assert (workdir / "-9.nc").exists()


def test_compressing_a_nacrith_file_again_needs_force(workdir):
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0
    assert_clean_error(nacrith("compress", "a.txt.nc", cwd=workdir), 2, "already has the .nc suffix")
    assert not (workdir / "a.txt.nc.nc").exists()
    assert nacrith("compress", "-q", "-f", "a.txt.nc", cwd=workdir).returncode == 0
    assert (workdir / "a.txt.nc.nc").exists()


def test_info_reads_stdin_lists_several_files_and_says_which_failed(workdir):
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0
    blob = (workdir / "a.txt.nc").read_bytes()
    piped = nacrith("info", "-", stdin=blob, cwd=workdir)
    assert piped.returncode == 0, piped.stderr
    assert b"file          (stdin)" in piped.stdout and f"{len(TEXT)} bytes".encode() in piped.stdout
    (workdir / "junk.nc").write_bytes(b"junk")
    both = nacrith("-l", "a.txt.nc", "junk.nc", "a.txt.nc", cwd=workdir)
    assert both.returncode == 1
    assert both.stdout.count(b"file          a.txt.nc") == 2
    assert both.stderr.decode() == "nacrith: junk.nc: not a Nacrith file (bad magic number)\n"


def test_json_for_scripts(workdir):
    r = nacrith("compress", "--json", "a.txt", cwd=workdir)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["bytes_in"] == len(TEXT)
    assert summary["bytes_out"] == (workdir / "a.txt.nc").stat().st_size
    assert summary["output"] == "a.txt.nc" and summary["frames"] == {"neural": 1}
    assert r.stderr == b"", "the JSON replaces the summary line"
    # With the data on stdout, the summary goes to stderr.
    piped = nacrith("compress", "--json", "-c", "a.txt", cwd=workdir)
    assert piped.stdout == (workdir / "a.txt.nc").read_bytes()
    assert json.loads(piped.stderr)["bytes_in"] == len(TEXT)
    back = nacrith("decompress", "--json", "a.txt.nc", "-o", "b.txt", cwd=workdir)
    assert json.loads(back.stdout)["bytes_out"] == len(TEXT)
    tested = json.loads(nacrith("test", "--json", "a.txt.nc", cwd=workdir).stdout)
    assert tested["bytes_out"] == len(TEXT) and tested["output"] is None
    info = json.loads(nacrith("info", "--json", "a.txt.nc", cwd=workdir).stdout)
    assert info["original_bytes"] == len(TEXT) and info["frames"][0]["type"] == "neural"
    assert info["settings"]["context"] == 2048 and info["model"]["name"] == Path(ENV[MODEL_ENV]).name
    models = [json.loads(line) for line in nacrith("models", "--json", cwd=workdir).stdout.splitlines()]
    tiny = next(m for m in models if m["path"] == ENV[MODEL_ENV])
    assert tiny["sha256"] == file_sha256(ENV[MODEL_ENV]).hex() and tiny["usable"] is True


def test_the_summary_speaks_plainly(workdir):
    (workdir / "one.txt").write_bytes(b"x")
    r = nacrith("compress", "one.txt", cwd=workdir)
    err = r.stderr.decode()
    assert "1 -> 12 bytes" in err and "in 1 stored frame," in err and "frame(s)" not in err, err
    assert "did not pay" not in err
    (workdir / "empty.txt").write_bytes(b"")
    r = nacrith("compress", "empty.txt", cwd=workdir)
    err = r.stderr.decode()
    assert "0 -> " in err and "in 1 stored frame" in err, err
    listed = nacrith("info", "empty.txt.nc", cwd=workdir).stdout.decode()
    assert "frames        1\n" in listed


def test_decompress_progress_shows_percent_and_eta(workdir):
    (workdir / "big.txt").write_bytes(TEXT * 2)
    assert nacrith("compress", "-q", "big.txt", cwd=workdir).returncode == 0
    (workdir / "big.txt").unlink()
    env = {**ENV, PACE_DECODING_ENV: "1", PACE_ENV: "0.01"}
    code, screen = run_in_pty(["decompress", str(workdir / "big.txt.nc")], stderr_tty=True, env=env)
    assert code == 0, screen
    assert "% of" in screen and "ETA" in screen, screen


def test_waiting_on_a_terminal_says_so(workdir):
    """`nacrith compress -o x.nc` with stdin on a terminal: a line says it
    reads from there, and Ctrl-D ends the input."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nacrith", "compress", "-o", "typed.nc"],
        stdin=slave,
        stderr=slave,
        cwd=workdir,
        env=ENV,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Ctrl-D" not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            seen += os.read(master, 1024)
    assert b"reading from the terminal" in seen
    os.write(master, b"typed line\n\x04")
    assert proc.wait(timeout=120) == 0
    os.close(master)
    back = nacrith("decompress", "-c", "typed.nc", cwd=workdir)
    assert back.stdout == b"typed line\n"


def test_help_says_what_dict_does_for_each_command():
    for command in ("decompress", "test"):
        text = nacrith(command, "--help").stdout.decode()
        assert "to compress with" not in text and "the dictionary the file was made with" in text
    assert "to compress with" in nacrith("compress", "--help").stdout.decode()


def test_completion_is_generated_from_the_parser():
    r = nacrith("--print-completion", "bash")
    assert r.returncode == 0
    script = r.stdout.decode()
    for word in ("decompress", "--context", "--lanes", "--print-completion", "--max-body"):
        assert word in script, word


def test_a_model_mismatch_names_the_model_the_file_needs(workdir, real_model_path):
    """Made with the tiny model, decoded with the real one: the error names the
    tiny model's file and where it was found, not a bare fingerprint."""
    assert nacrith("compress", "-q", "a.txt", cwd=workdir).returncode == 0
    r = nacrith("test", "--model", str(bundled_model_path()), "a.txt.nc", cwd=workdir)
    tiny = Path(ENV[MODEL_ENV])
    assert_clean_error(r, 1, f"({tiny.name}, found as ${MODEL_ENV}: decode with --model {tiny})")


def test_info_lists_a_dictionary():
    """`nacrith info cl.ncd` said "not a Nacrith file"; it shows the dictionary's parts."""
    path = Path(__file__).parent / "golden" / "dict-v1" / "changelog.ncd"
    r = nacrith("info", str(path))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "format        dictionary version 1" in out and "fingerprint   0bdccd90" in out
    assert "priming text  57 tokens" in out and f"size          {path.stat().st_size:,} bytes:" in out
    facts = json.loads(nacrith("info", "--json", str(path)).stdout)
    assert facts["kind"] == "dictionary" and facts["priming_tokens"] == 57
    assert sum(facts["parts"].values()) == facts["file_bytes"] == path.stat().st_size


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--llm-only"], "ensemble"), (["--no-bias"], "ensemble"), (["--lanes", "4"], "lanes")],
)
def test_a_dictionary_refuses_other_settings_as_the_library_does(workdir, flags, named):
    """One policy in every entry point: the CLI shows the library's message."""
    dictionary = Path(__file__).parent / "golden" / "dict-v1" / "changelog.ncd"
    r = nacrith("compress", "--dict", str(dictionary), *flags, "a.txt", cwd=workdir)
    assert_clean_error(r, 2, f"{DICTIONARY_SETTINGS}: leave {named} to it")
    assert not (workdir / "a.txt.nc").exists()
