"""`nacrith bench` and the corpus loader, with the tiny test model, and the real Canterbury files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_model import tiny_text

from nacrith import bench, corpora
from nacrith.errors import CorpusError
from nacrith.models.llm import MODEL_ENV


def corpus_present() -> bool:
    try:
        corpora.locate("canterbury", "grammar.lsp")
        corpora.locate("canterbury", "xargs.1")
    except CorpusError:
        return False
    return True


needs_canterbury = pytest.mark.skipif(not corpus_present(), reason="Canterbury corpus not found")


#: Two inputs of text the tiny test model codes better than the classical peers.
WORDS = {"words-a.txt": tiny_text(3_000, seed=11), "words-b.txt": tiny_text(4_000, seed=12)}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One real run over two files, with a failing and a working external peer."""
    out = tmp_path_factory.mktemp("bench")
    args = [sys.executable, "-m", "nacrith", "bench", "-q", "-T", "1"]
    for name, data in WORDS.items():
        (out / name).write_bytes(data)
        args += ["--corpus", str(out / name)]
    args += ["--peer", "broken=false {in} {out}", "--peer", "copy=cp {in} {out}"]
    args += [
        "--peer-decompress",
        "copy=cp {in} {out}",
        "--json",
        str(out / "r.json"),
        "--chart",
        str(out / "r.png"),
    ]
    result = subprocess.run(args, capture_output=True, timeout=900)
    return result, json.loads((out / "r.json").read_text()), (out / "r.png").read_bytes()


@pytest.mark.llm
def test_markdown_tables(bench_run):
    result, _, _ = bench_run
    out = result.stdout.decode()
    assert result.returncode == 1, "a failed peer makes the run fail"
    header = out.splitlines()[0]
    for name in ["nacrith", "gzip -9", "bzip2 -9", "xz -9e", "zstd -22", "broken", "copy", "H0", "H1", "H2"]:
        assert f" {name} |" in header
    assert "| words-a.txt | 3,000 |" in out and "| words-b.txt | 4,000 |" in out
    assert "| **total** |" in out and "| **mean** |" in out
    assert "| words-a.txt | broken | — | — |" in out and "FAILED: compress failed (exit 1)" in out


@pytest.mark.llm
def test_json_results(bench_run):
    _, report, _ = bench_run
    assert report["schema"] == "nacrith-bench/1"
    assert (
        report["model"]["name"] == Path(os.environ[MODEL_ENV]).name and len(report["model"]["sha256"]) == 64
    )
    assert [i["label"] for i in report["inputs"]] == list(WORDS)
    assert all(i["is_prefix"] is False and {"H0", "H1", "H2"} <= set(i) for i in report["inputs"])
    results = {(r["input"], r["compressor"]): r for r in report["results"]}
    assert len(results) == 2 * len(report["compressors"])
    for label in WORDS:
        ours, gzip_ = results[(label, "nacrith")], results[(label, "gzip -9")]
        assert ours["verified"] and ours["error"] is None
        assert (
            ours["tokens"] > 0 and ours["compress_tokens_per_s"] > 0 and ours["decompress_tokens_per_s"] > 0
        )
        assert ours["peak_rss_mib"] > 50, "the model is in memory"
        assert ours["bpb"] < gzip_["bpb"], "the language model beats gzip on text"
        assert results[(label, "copy")]["bpb"] == 8.0 and results[(label, "copy")]["verified"]
        broken = results[(label, "broken")]
        assert broken["verified"] is False and broken["bpb"] is None and "compress failed" in broken["error"]
    assert report["summary"]["broken"] == {"total_bpb": None, "mean_bpb": None}
    assert report["summary"]["copy"]["total_bpb"] == 8.0


@pytest.mark.llm
def test_chart_is_a_png(bench_run):
    _, _, png = bench_run
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 300 and height > 200


def test_entropies_of_known_sources():
    assert bench.entropies(b"a" * 1000) == {"H0": 0.0, "H1": 0.0, "H2": 0.0}
    coin = np.random.default_rng(0).integers(0, 2, 200_000).astype(np.uint8).tobytes()
    h = bench.entropies(coin)
    assert abs(h["H0"] - 1.0) < 0.01 and abs(h["H1"] - 1.0) < 0.01 and abs(h["H2"] - 1.0) < 0.01
    alternating = b"ab" * 1000
    assert (
        bench.entropies(alternating)["H0"] == pytest.approx(1.0) and bench.entropies(alternating)["H1"] < 0.01
    )


@needs_canterbury
def test_limit_labels_a_prefix():
    (inp,) = bench.resolve_inputs(["canterbury/alice29.txt"], 1000)
    assert inp.label == "alice29.txt (first 1,000 bytes)" and inp.size == 1000 and inp.is_prefix
    assert len(inp.read()) == 1000


def test_enwik8_prefix_is_never_called_enwik8():
    try:
        (inp,) = bench.resolve_inputs(["enwik8-prefix"], 1_000_000)
    except CorpusError:
        pytest.skip("enwik8 prefix slice not found")
    assert inp.label == "enwik8 prefix (first 1,000,000 bytes)"


def test_missing_enwik8_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("NACRITH_CORPORA", str(tmp_path))
    with pytest.raises(CorpusError, match=r"nacrith corpora fetch enwik8.*mattmahoney.net/dc/enwik8.zip"):
        bench.resolve_inputs(["enwik8"], None)


def test_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("NACRITH_CORPORA", str(tmp_path))
    (tmp_path / "enwik8").mkdir()
    (tmp_path / "enwik8" / "enwik8").write_bytes(b"not the real enwik8")
    with pytest.raises(CorpusError, match="checksum does not match"):
        corpora.locate("enwik8", "enwik8")


def test_fetch_offline_fails_clearly(tmp_path, monkeypatch):
    """The CI machine has no route to the corpus hosts: the error must say so, not hang or trace back."""
    monkeypatch.setenv(
        "https_proxy", "http://127.0.0.1:9"
    )  # a closed local port: fails at once, online or not
    result = subprocess.run(
        [sys.executable, "-m", "nacrith", "corpora", "fetch", "canterbury"],
        capture_output=True,
        timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert "cannot download https://corpus.canterbury.ac.nz/" in err and "offline" in err
    assert not any(Path(tmp_path).rglob("*.txt"))


@pytest.mark.llm
@needs_canterbury
def test_ablation_runs_every_variant_and_verifies(tmp_path):
    out = tmp_path / "a.json"
    args = [sys.executable, "-m", "nacrith", "bench", "-q", "-T", "1", "--ablation", "--peers", "none"]
    args += ["--corpus", "canterbury/grammar.lsp", "--limit", "700", "--json", str(out)]
    result = subprocess.run(args, capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(out.read_text())
    names = list(bench.named_variants())
    assert report["compressors"] == names
    rows = {r["compressor"]: r for r in report["results"]}
    assert set(rows) == set(names)
    assert all(r["verified"] for r in rows.values())
    header = result.stdout.decode().splitlines()[0]
    assert all(name in header for name in names)


@pytest.mark.llm
def test_variants_runs_only_the_named_ones(tmp_path):
    out = tmp_path / "v.json"
    source = tmp_path / "words.txt"
    source.write_bytes(tiny_text(3000, seed=6))  # text the tiny test model codes better than zstd
    args = [sys.executable, "-m", "nacrith", "bench", "-q", "-T", "1", "--peers", "none"]
    args += ["--variants", "full-skip,llm-only", "--corpus", str(source)]
    result = subprocess.run([*args, "--json", str(out)], capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(out.read_text())
    assert report["compressors"] == ["nacrith full-skip", "nacrith llm-only"]
    rows = {r["compressor"]: r for r in report["results"]}
    assert all(r["verified"] for r in rows.values())
    assert rows["nacrith full-skip"]["skipped_tokens"] == 0


def _peers_only(tmp_path: Path, spec: str, peers: str, name: str) -> Path:
    out = tmp_path / name
    args = [sys.executable, "-m", "nacrith", "bench", "-q", "--no-nacrith", "--peers", peers]
    result = subprocess.run([*args, "--corpus", spec, "--json", str(out)], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return out


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nacrith", "bench", *args], capture_output=True, timeout=300)


@needs_canterbury
def test_merge_combines_runs_made_apart(tmp_path):
    a = _peers_only(tmp_path, "canterbury/grammar.lsp", "gzip -9", "a.json")
    b = _peers_only(tmp_path, "canterbury/xargs.1", "gzip -9,bzip2 -9", "b.json")
    merged = tmp_path / "m.json"
    result = _bench("--merge", str(a), "--merge", str(b), "--json", str(merged))
    assert result.returncode == 1, "grammar.lsp was never run under bzip2: the merged report says so"
    out = result.stdout.decode()
    assert out.splitlines()[0].startswith("| file | bytes | gzip -9 | bzip2 -9 | H0 |")
    assert "| grammar.lsp | bzip2 -9 | — | — |" in out and "FAILED: not measured" in out
    report = json.loads(merged.read_text())
    assert [i["label"] for i in report["inputs"]] == ["grammar.lsp", "xargs.1"]
    separate = [json.loads(p.read_text()) for p in (a, b)]
    by = {(r["input"], r["compressor"]): r for r in report["results"]}
    for part in separate:  # every measurement comes through unchanged
        for r in part["results"]:
            assert by[(r["input"], r["compressor"])]["compressed"] == r["compressed"]
    assert len(report["merged"]) == 2 and report["summary"]["gzip -9"]["total_bpb"] > 0
    again = _bench("--merge", str(merged), "--json", str(tmp_path / "m2.json"))
    assert again.stdout == result.stdout, "a merged report reads back as itself"


@needs_canterbury
def test_merge_refuses_what_it_cannot_combine(tmp_path):
    a = _peers_only(tmp_path, "canterbury/grammar.lsp", "gzip -9", "a.json")
    twice = _bench("--merge", str(a), "--merge", str(a))
    assert (
        twice.returncode == 1
        and "grammar.lsp under gzip -9 is in more than one report" in twice.stderr.decode()
    )
    junk = tmp_path / "junk.json"
    junk.write_text('{"schema": "something else"}')
    wrong = _bench("--merge", str(junk))
    assert wrong.returncode == 1 and "not a nacrith bench report" in wrong.stderr.decode()
    with_run = _bench("--merge", str(a), "--corpus", "canterbury/xargs.1")
    assert with_run.returncode == 2 and "runs nothing" in with_run.stderr.decode()
    for err in (twice, wrong, with_run):
        assert "Traceback" not in err.stderr.decode()


def test_a_default_peer_not_installed_is_left_out(tmp_path):
    """Without brotli (neither its module nor its program), the default peers
    run without it, one line says so, and the run succeeds; a peer named
    with --peers that cannot run still fails the run."""
    (tmp_path / "t.txt").write_bytes(tiny_text(2_000, seed=3))
    no_brotli = "import sys; sys.modules['brotli'] = None; from nacrith.cli import main; sys.exit(main())"
    env = {**os.environ, "PATH": str(tmp_path / "nothing-on-path")}

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", no_brotli, "bench", "--no-nacrith"]
        command += ["--corpus", str(tmp_path / "t.txt"), *args]
        return subprocess.run(command, capture_output=True, env=env, timeout=300)

    default = run()
    err = default.stderr.decode()
    assert default.returncode == 0, err
    assert [line for line in err.splitlines() if "brotli" in line] == [
        "nacrith: bench: brotli -q 11 left out: not installed "
        "(pip install 'nacrith[peers]', or put brotli on PATH)"
    ]
    table = default.stdout.decode()
    assert table.startswith("| file | bytes | gzip -9 | bzip2 -9 | xz -9e | zstd -22 | H0 |")
    assert "brotli" not in table
    named = run("--peers", "gzip -9,brotli -q 11")
    assert named.returncode == 1
    assert "| t.txt | brotli -q 11 | — |" in named.stdout.decode()
    assert "FAILED: not available (not importable, not on PATH)" in named.stdout.decode()


def test_unknown_variant_is_a_usage_error():
    result = _bench("--variants", "full,+gpt5", "--no-nacrith")
    assert result.returncode == 2 and "unknown variant(s) +gpt5; known: llm-only" in result.stderr.decode()
    empty = _bench("--variants", " , ", "--no-nacrith")
    assert empty.returncode == 2 and "--variants takes names from: llm-only" in empty.stderr.decode()
    both = _bench("--variants", "full", "--ablation")
    assert both.returncode == 2 and "exclusive" in both.stderr.decode()
