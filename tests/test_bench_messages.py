"""`nacrith bench` on message sets (.jsonl, one JSON string per line): each
message compressed as a file of its own, with the tiny test model; and the
changelogs corpus's manifest entry against its files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from tiny_model import tiny_text

from nacrith import bench, corpora
from nacrith.errors import CorpusError


def changelog(k: int) -> str:
    """A message in the manner of a changelog entry: a shared frame (what a
    dictionary learns) around text the tiny model codes (tiny_text)."""
    body = tiny_text(90, seed=k).decode()
    return (
        f"pkg{k} (1.{k}-1) unstable; urgency=medium\n\n  * New upstream release.\n  * {body}\n\n"
        f" -- José Doe <jose@example.org>  Mon, {k % 28 + 1:02d} Jan 2024 10:00:00 +0000\n"
    )


#: Five messages measured, and a train split sharing their frame.
TEST = [changelog(k) for k in range(5)]
TRAIN = [changelog(k) for k in range(100, 300)]


def _write(path: Path, messages: list[str]) -> None:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")


@pytest.fixture(scope="module")
def messages_run(tmp_path_factory):
    """One real run over a message set, limited to its first 5 messages, with the default peers."""
    out = tmp_path_factory.mktemp("messages")
    _write(out / "test.jsonl", [*TEST, changelog(5)])  # the sixth is cut by --limit
    _write(out / "train.jsonl", TRAIN)
    args = [sys.executable, "-m", "nacrith", "bench", "-q", "-T", "1", "--limit", "5"]
    args += ["--corpus", str(out / "test.jsonl"), "--json", str(out / "r.json")]
    result = subprocess.run(args, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode(), json.loads((out / "r.json").read_text())


@pytest.mark.llm
def test_totals_are_the_sums_of_real_files(messages_run, codec):
    _, report = messages_run
    label = f"{report['inputs'][0]['path'].split('/')[-2]}/test.jsonl (first 5 of 6 messages)"
    assert report["compressors"] == ["nacrith", *bench.MESSAGE_PEERS]
    (inp,) = report["inputs"]
    raw = [m.encode() for m in TEST]
    assert inp["label"] == label and inp["messages"] == 5 and inp["train"].endswith("train.jsonl")
    assert inp["size"] == sum(map(len, raw)) and inp["mean_message_bytes"] == inp["size"] / 5
    rows = {r["compressor"]: r for r in report["results"]}
    assert all(r["verified"] and r["error"] is None for r in rows.values()), "every message came back"
    for r in rows.values():
        assert len(r["sizes"]) == 5 and sum(r["sizes"]) == r["compressed"]
        assert r["original"] == inp["size"] and r["bpb"] == 8 * r["compressed"] / inp["size"]
    # The same messages compressed here, one file each: the bench measured those files.
    assert rows["nacrith"]["sizes"] == [len(codec.compress(m)) for m in raw]
    assert rows["nacrith"]["tokens"] > 0, "the model coded the messages"
    zstd = zstandard.ZstdCompressor(level=19)
    assert rows["zstd -19"]["sizes"] == [len(zstd.compress(m)) for m in raw]
    for name in bench.DICTIONARY_PEERS:
        assert rows[name]["compressed"] < rows["zstd -19"]["compressed"], "the dictionary knows the frame"
        assert rows[name]["dictionary_bytes"] > 0
    assert rows["zstd -19"]["dictionary_bytes"] is None


@pytest.mark.llm
def test_markdown_names_the_messages(messages_run):
    out, report = messages_run
    header = out.splitlines()[0]
    assert all(f" {name} |" in header for name in report["compressors"])
    assert "5 messages of " in out and "each compressed as a file of its own" in out
    assert "zstd -19 +dict 110K" in out.split("not counted: the dictionaries")[1], "their sizes are given"
    assert " of 5 zstd alone |" in out


def test_dictionary_peers_need_a_train_split(tmp_path):
    _write(tmp_path / "alone.jsonl", TEST)
    (inp,) = bench.resolve_inputs([str(tmp_path / "alone.jsonl")], None)
    assert inp.messages == 5 and inp.train is None and inp.units() == [m.encode() for m in TEST]
    assert bench.default_peers([inp]) == ["zstd -19", "xz -9e"]
    result = bench._run_builtin(inp, "zstd -19 +dict 16K")
    assert not result.verified and "train split" in (result.error or "")


def test_one_wrong_message_fails_the_input():
    inp = bench.BenchInput("m.jsonl", "m.jsonl", 6, 6, messages=3)
    result = bench.Result(inp.label, "peer", inp.size)
    bench._verify(result, inp, [b"ab", b"cd", b"ef"], [b"ab", b"cD", b"ef"])
    assert not result.verified and result.error == "message 2 of 3: round trip differs from the input"


def test_a_train_split_is_not_measured_against_itself(tmp_path):
    _write(tmp_path / "train.jsonl", TRAIN)
    (inp,) = bench.resolve_inputs([str(tmp_path / "train.jsonl")], 3)
    assert inp.train is None and inp.messages == 3 and inp.is_prefix


def test_a_line_that_is_not_a_string_is_refused(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"fine"\n{"not": "a string"}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl, line 2: not a message .*a JSON dict"):
        corpora.read_messages(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(CorpusError, match=r"empty\.jsonl: no messages"):
        bench.resolve_inputs([str(tmp_path / "empty.jsonl")], None)
    result = subprocess.run(
        [sys.executable, "-m", "nacrith", "bench", "-q", "--no-nacrith", "--corpus", str(bad)],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1 and "line 2: not a message" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def _changelogs_dir() -> Path | None:
    for d in corpora.search_dirs():
        if (d / "changelogs" / "test.jsonl").is_file():
            return d / "changelogs"
    return None


needs_changelogs = pytest.mark.skipif(_changelogs_dir() is None, reason="changelogs corpus not found")


@needs_changelogs
def test_manifest_entry_matches_the_files():
    directory = _changelogs_dir()
    assert directory is not None
    entry = corpora.corpus("changelogs")
    assert [f.name for f in entry.files] == ["train.jsonl", "test.jsonl"]
    sums = dict(line.split()[::-1] for line in (directory / "SHA256SUMS").read_text().splitlines())
    for f in entry.files:
        data = (directory / f.name).read_bytes()
        assert len(data) == f.size and hashlib.sha256(data).hexdigest() == f.sha256 == sums[f.name]
    # What the corpus's README says of it: messages and bytes of text.
    test = corpora.read_messages(directory / "test.jsonl")
    assert len(test) == 300 and sum(map(len, test)) == 115_612
    assert len(corpora.read_messages(directory / "train.jsonl")) == 3_359


@needs_changelogs
def test_the_corpus_is_measured_on_its_test_split():
    (inp,) = bench.resolve_inputs(["changelogs"], 20)
    assert inp.label == "changelogs/test.jsonl (first 20 of 300 messages)"
    assert inp.messages == 20 and inp.full_size == 115_612 and Path(inp.train or "").name == "train.jsonl"
    (whole,) = bench.resolve_inputs([inp.path], None)
    assert whole.label == "changelogs/test.jsonl" and whole.messages == 300 and whole.train
    assert bench.default_peers([inp]) == list(bench.MESSAGE_PEERS)
