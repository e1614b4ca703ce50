"""A dictionary's primed window kept on disk (nacrith/models/primecache.py).

Through real llama.cpp on the tiny model, and through the CLI: a file made
with a cold cache and one made with a warm cache are the same bytes; a
restored window holds the cells an evaluated one holds, bit for bit; a
damaged, foreign or missing entry is never restored; an unusable cache costs
time, never the command.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nacrith.api import Codec
from nacrith.dictbuild import build_dictionary
from nacrith.dictionary import Dictionary
from nacrith.models.llm import LanguageModel
from nacrith.models.primecache import SUFFIX, PrimedStateCache
from nacrith.models.windows import PRIMED_CACHE, LlamaPredictor
from nacrith.options import CompressOptions

SAMPLES = [
    f"pkg{i} (1.{i}-1) unstable; urgency=medium\n\n  * New upstream release {i}.\n"
    f" -- Ada <ada@example.org>  Mon, 0{i % 9 + 1} Jan 2024\n".encode()
    for i in range(8)
]
MESSAGE = (
    b"pkg99 (1.99-1) unstable; urgency=medium\n\n  * New upstream release 99.\n -- Ada <ada@example.org>\n"
)
#: The window the CLI's files use (CompressOptions' defaults).
OPTIONS = CompressOptions()


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    """Each test its own cache, so none sees another's entries (or the user's)."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "nacrith" / PRIMED_CACHE


@pytest.fixture(scope="module")
def dictionary(model) -> Dictionary:
    # Priming text only: the learned state plays no part in priming, and this builds in no time.
    d, _ = build_dictionary(model, SAMPLES, CompressOptions(ensemble=None), tokens=100)
    return d


@pytest.fixture
def evaluations(monkeypatch) -> list[int]:
    """How many primings llama.cpp evaluates (rather than restores), counted as they happen."""
    calls: list[int] = []
    evaluate = LlamaPredictor._evaluate_priming

    def counted(self: LlamaPredictor, tokens: tuple[int, ...]) -> None:
        calls.append(len(tokens))
        evaluate(self, tokens)

    monkeypatch.setattr(LlamaPredictor, "_evaluate_priming", counted)
    return calls


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX)) if directory.is_dir() else []


def primed_cells(model: LanguageModel, tokens: tuple[int, ...]) -> bytes:
    """Sequence 0's saved state after priming a fresh context with ``tokens``."""
    model.release_contexts()
    predictor = model.windows(OPTIONS.context, OPTIONS.slide, OPTIONS.batch, 1, primed=True)
    predictor.clear()
    predictor.prime(tokens, 1)
    llama_cpp, ctx = predictor._llama_cpp, predictor._ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    assert llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0) == size
    return bytes(buffer)


def priming_of(model: LanguageModel, dictionary: Dictionary) -> tuple[int, ...]:
    """The tokens a dictionary's frames prime with (engine._Run.start)."""
    return (model.start_token, *dictionary.tokens[:-1])


# --- through the engine -------------------------------------------------------------------


def test_cold_and_warm_cache_make_the_same_file(model, dictionary, cache_home, evaluations):
    codec = Codec.from_model(model, dict=dictionary)
    model.release_contexts()
    cold = codec.compress(MESSAGE)
    assert evaluations == [len(dictionary.tokens)] and len(entries(cache_home)) == 1
    model.release_contexts()  # a new process would start here: nothing in memory
    warm = codec.compress(MESSAGE)
    assert evaluations == [len(dictionary.tokens)]  # restored from disk, not evaluated
    assert warm == cold
    model.release_contexts()
    assert codec.decompress(warm) == MESSAGE  # from the disk's window
    for entry in entries(cache_home):
        entry.unlink()
    model.release_contexts()
    assert codec.decompress(cold) == MESSAGE  # from an evaluated window
    assert len(evaluations) == 2


def test_restored_cells_are_the_evaluated_cells(model, dictionary, cache_home, evaluations):
    tokens = priming_of(model, dictionary)
    evaluated = primed_cells(model, tokens)
    restored = primed_cells(model, tokens)
    assert len(evaluations) == 1 and restored == evaluated
    (entry,) = entries(cache_home)
    assert evaluated in entry.read_bytes()  # the entry is llama.cpp's saved sequence, whole


def test_the_thread_count_does_not_change_a_priming(dictionary, tiny_model_file):
    """Why the key leaves the thread count out (windows._PARAMS_NOT_COMPUTED)."""
    cells = []
    for threads in (1, 2):
        with LanguageModel(tiny_model_file, threads=threads) as m:
            cells.append(primed_cells(m, priming_of(m, dictionary)))
            m.release_contexts()
    assert cells[0] == cells[1]


def test_a_damaged_entry_is_rebuilt(model, dictionary, cache_home, evaluations):
    tokens = priming_of(model, dictionary)
    evaluated = primed_cells(model, tokens)
    (entry,) = entries(cache_home)
    whole = entry.read_bytes()
    for damage in (
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # a flipped bit in the cells
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b + b"\0",  # longer than its header says
        lambda b: b[:5] + bytes(32) + b[37:],  # another key
        lambda b: b"",
    ):
        entry.write_bytes(damage(whole))
        before = len(evaluations)
        assert primed_cells(model, tokens) == evaluated
        assert len(evaluations) == before + 1  # evaluated again, not restored
        assert entry.read_bytes() == whole  # and written anew


def test_an_entry_of_another_key_is_not_used(model, dictionary, cache_home, evaluations):
    """An entry sits under its own key's name; copied under another key's, its
    header gives it away."""
    tokens = priming_of(model, dictionary)
    other = tokens[:-5]
    primed_cells(model, other)
    (entry,) = entries(cache_home)
    predictor = model.windows(OPTIONS.context, OPTIONS.slide, OPTIONS.batch, 1, primed=True)
    target = PrimedStateCache(cache_home).path(predictor._priming_key(tokens))
    target.write_bytes(entry.read_bytes())
    assert primed_cells(model, tokens) != primed_cells(model, other)
    assert evaluations == [len(other), len(tokens)]  # the second priming of ``other`` was restored
    assert PrimedStateCache(cache_home).load(predictor._priming_key(tokens)) is not None  # rewritten


def test_the_key_names_what_the_cells_depend_on(model, dictionary):
    tokens = priming_of(model, dictionary)
    keys = set()
    for context, lanes in ((OPTIONS.context, 1), (1024, 1), (OPTIONS.context, 2)):
        p = model.windows(context, context // 4, OPTIONS.batch, lanes, primed=True)
        keys |= {p._priming_key(tokens), p._priming_key(tokens[:-1])}
        assert p._key_text is not None and model.sha256.hex() in p._key_text
        assert "n_ctx=" in p._key_text and "type_k=" in p._key_text and "n_threads" not in p._key_text
    assert len(keys) == 6


def test_an_unusable_cache_costs_only_time(model, dictionary, cache_home, monkeypatch, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # cache_dir() is below a file
    codec = Codec.from_model(model, dict=dictionary)
    model.release_contexts()
    blob = codec.compress(MESSAGE)
    model.release_contexts()
    assert codec.decompress(blob) == MESSAGE and blocked.read_bytes() == b""


# --- the cache's files --------------------------------------------------------------------


def test_old_entries_go_first_and_the_cache_stays_bounded(tmp_path):
    cache = PrimedStateCache(tmp_path, max_bytes=3 * 1100)
    keys = [bytes([i]) * 32 for i in range(4)]
    for age, key in enumerate(keys[:3]):
        cache.store(key, bytes(1000))
        os.utime(cache.path(key), (time.time() - 100 + age, time.time() - 100 + age))
    assert cache.load(keys[0]) == bytes(1000)  # used: now the most recent
    (tmp_path / ".left.1234.tmp").write_bytes(b"x")
    os.utime(tmp_path / ".left.1234.tmp", (0, 0))
    (tmp_path / "notes.txt").write_bytes(b"not ours")
    cache.store(keys[3], bytes(1000))
    assert [cache.load(k) is not None for k in keys] == [True, False, True, True]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(SUFFIX)) == ["notes.txt"]
    cache.store(b"\xff" * 32, bytes(4000))  # larger than the whole cache: not kept
    assert cache.load(b"\xff" * 32) is None and len(entries(tmp_path)) == 3


# --- through the command line ------------------------------------------------------------


def nacrith(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nacrith", *args],
        cwd=cwd,
        env={**os.environ, **env, "NACRITH_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finished(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()


def test_cli_cold_and_warm_and_two_at_once(tmp_path, cache_home):
    """Two commands at once with a cold cache, then one with the warm cache:
    three files, the same bytes, each decoding; one whole entry."""
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s.decode()) + "\n" for s in SAMPLES))
    env = {"XDG_CACHE_HOME": str(cache_home.parent.parent)}
    finished(
        nacrith("dict", "build", "-q", "samples.jsonl", "-o", "d.ncd", "--llm-only", cwd=tmp_path, env=env)
    )
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_bytes(MESSAGE)
    for entry in entries(cache_home):
        entry.unlink()  # what building left: this test starts cold
    both = [nacrith("compress", "-q", "--dict", "d.ncd", f"{n}.txt", cwd=tmp_path, env=env) for n in "ab"]
    for process in both:
        finished(process)
    assert len(entries(cache_home)) == 1 and not list(cache_home.glob(".*"))
    finished(nacrith("compress", "-q", "--dict", "d.ncd", "c.txt", cwd=tmp_path, env=env))
    files = [(tmp_path / f"{n}.txt.nc").read_bytes() for n in "abc"]
    assert files[0] == files[1] == files[2]
    finished(nacrith("test", "-q", "--dict", "d.ncd", "c.txt.nc", cwd=tmp_path, env=env))
    for entry in entries(cache_home):
        entry.unlink()
    finished(nacrith("test", "-q", "--dict", "d.ncd", "a.txt.nc", cwd=tmp_path, env=env))
