"""Dictionaries: their file (docs/dictionary.md), building one, and files made with one.

Mechanics run on the tiny model through real llama.cpp: a dictionary's
frames start from a primed window (evaluated once, then restored from
llama.cpp's saved sequence state) and a learned ensemble, and decode only
with the same dictionary. What a dictionary gains on real messages is the
default model's business: ``nacrith bench --corpus changelogs --dict``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from cli_helpers import run_in_pty
from tiny_model import tiny_text

from nacrith import dictionary as dictionary_module
from nacrith.api import Codec
from nacrith.dictbuild import BuildProgress, BuildReport, build_dictionary, choose_priming, read_samples
from nacrith.dictionary import DICTS_ENV, Dictionary, find_dictionary
from nacrith.dictstate import replayed_state, state_difference, state_regions, unpack_samples
from nacrith.engine import count_samples, encode_streams
from nacrith.errors import CorpusError, DictionaryError
from nacrith.format import ESCAPE_SYMBOLS, FrameType, Header
from nacrith.frameparams import Primer
from nacrith.options import CompressOptions
from nacrith.settings import EnsembleSettings

#: A dictionary of version 1 and a file made with it, by the nacrith before version 2 (its README).
GOLDEN_V1 = Path(__file__).parent / "golden" / "dict-v1"
#: Messages of one small domain: entries of a changelog.
SAMPLES = [
    f"pkg{i} (1.{i}-1) unstable; urgency=medium\n\n  * New upstream release {i}.\n"
    f"  * Fix the build with gcc {10 + i % 4}.\n\n"
    f" -- Ada <ada@example.org>  Mon, 0{i % 9 + 1} Jan 2024\n".encode()
    for i in range(12)
]
MESSAGE = (
    b"pkg99 (1.99-1) unstable; urgency=medium\n\n  * New upstream release 99.\n"
    b"  * Fix the build with gcc 12.\n\n -- Ada <ada@example.org>  Tue, 02 Jan 2024\n"
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    """Each test its own cache directory (primed windows kept on disk), not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    return tmp_path / "cache-home" / "nacrith"


@pytest.fixture(scope="module")
def dictionary(model, tmp_path_factory) -> Dictionary:
    with pytest.MonkeyPatch.context() as patch:  # building primes the model: not in the user's cache
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        d, report = build_dictionary(model, SAMPLES, CompressOptions(), tokens=120, limit=600)
    # Samples until the limit is reached: the last one crosses it.
    assert 600 <= report.trained_bytes < 600 + max(map(len, SAMPLES)) and report.priming_tokens <= 120
    assert report.counted_samples == len(SAMPLES) - report.trained_samples > 0
    return d


@pytest.fixture(scope="module")
def dict_codec(model, dictionary) -> Codec:
    return Codec.from_model(model, dict=dictionary)


# --- the file -----------------------------------------------------------------------


def test_file_round_trip_and_fingerprint(dictionary):
    data = dictionary.pack()
    again = Dictionary.read(data)
    assert again == dictionary and again.pack() == data
    assert again.fingerprint == dictionary.fingerprint and len(dictionary.fingerprint) == 4
    assert again.learned == dictionary.learned and dictionary.learned


def test_every_byte_of_a_damaged_file_is_refused(dictionary):
    data = dictionary.pack()
    for i in range(0, len(data), max(1, len(data) // 300)):
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        with pytest.raises(DictionaryError):
            Dictionary.read(bytes(damaged))
    for n in (0, 3, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(DictionaryError):
            Dictionary.read(data[:n])


def test_other_version_is_refused(dictionary):
    data = bytearray(dictionary.pack())
    data[4] = 3
    with pytest.raises(DictionaryError, match="version 3"):
        Dictionary.read(bytes(data))


def test_a_version_1_dictionary_still_reads_and_codes_the_same(real_model):
    data = (GOLDEN_V1 / "changelog.ncd").read_bytes()
    message = (GOLDEN_V1 / "changelog.txt").read_bytes()
    made = (GOLDEN_V1 / "changelog.txt.nc").read_bytes()
    old = Dictionary.read(GOLDEN_V1 / "changelog.ncd")
    assert old.version == 1 and old.pack() == data
    assert old.fingerprint == hashlib.sha256(data).digest()[:4] == Header.read(io.BytesIO(made)).dict_id
    codec = Codec.from_model(real_model, dict=old)
    assert codec.decompress(made) == message
    assert codec.compress(message, format_version=2) == made  # made before format version 3


def test_version_2_stores_the_samples_not_their_tables(model, dictionary, own_cache):
    """The n-gram, match and unigram models' tables are rebuilt from the
    samples: the stored difference is zeros there, the state is the same bit
    for bit, and so are the files made with it."""
    assert dictionary.version == 2
    learned = dictionary.learned
    assert learned is not None
    old = Dictionary.make(
        model.sha256,
        dictionary.vocab_size,
        dictionary.arith,
        dictionary.ensemble,
        dictionary.tokens,
        learned,
        version=1,
    )
    assert old.version == 1 and len(dictionary.pack()) < len(old.pack())
    shutil.rmtree(own_cache, ignore_errors=True)
    rebuilt = Dictionary.read(dictionary.pack())
    assert rebuilt.learned == learned == old.learned
    assert dictionary.ensemble is not None
    regions = state_regions(dictionary.vocab_size, dictionary.arith, dictionary.ensemble)
    assert sum(size for _, size in regions) == dictionary.state_size
    assert not any(name.startswith("region") for name, _ in regions)
    samples = unpack_samples(dictionary.packed_samples, dictionary.vocab_size)
    replayed = replayed_state(dictionary.vocab_size, dictionary.arith, dictionary.ensemble, samples)
    difference = state_difference(learned, replayed)
    offset, counted = 0, []
    for name, size in regions:
        if name.startswith(("n-gram", "match index", "match history", "fallback unigram", "tokens seen")):
            counted.append(name)
            assert not any(difference[offset : offset + size]), name
        offset += size
    assert len(counted) == 3 * 3 + 5  # three orders; index, history and its length; unigrams; tokens
    new_file, old_file = (Codec.from_model(model, dict=d).compress(MESSAGE) for d in (dictionary, old))
    assert new_file[10:-4] == old_file[10:-4]  # all but the dictionary's fingerprint and the CRC


def test_parts_of_a_dictionary_add_up(dictionary):
    parts = dict(dictionary.parts())
    assert sum(parts.values()) == len(dictionary.pack())
    assert parts["counted samples"] > 0 and parts["learned state"] == len(dictionary.packed_state)


def test_a_state_that_does_not_rebuild_is_refused(dictionary, own_cache):
    data = bytearray(dictionary.pack())
    check = dictionary.state_check.to_bytes(4, "little")
    at = data.rindex(check, 0, len(data) - 4)
    data[at : at + 4] = (dictionary.state_check ^ 1).to_bytes(4, "little")
    data[-4:] = zlib.crc32(data[:-4]).to_bytes(4, "little")
    shutil.rmtree(own_cache, ignore_errors=True)
    with pytest.raises(DictionaryError, match="does not rebuild"):
        _ = Dictionary.read(bytes(data)).learned


def test_a_rebuilt_state_is_kept_and_checked(dictionary, own_cache, monkeypatch):
    """Rebuilt once per machine; a damaged copy is rebuilt again, never used."""
    rebuilds: list[int] = []
    rebuild = dictionary_module.rebuild_state

    def counted(*args: object) -> bytes:
        rebuilds.append(1)
        return rebuild(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(dictionary_module, "rebuild_state", counted)
    shutil.rmtree(own_cache, ignore_errors=True)
    data = dictionary.pack()
    assert Dictionary.read(data).learned == dictionary.learned and len(rebuilds) == 1
    assert Dictionary.read(data).learned == dictionary.learned and len(rebuilds) == 1  # kept
    (entry,) = (own_cache / "primed").glob("*.primed")
    damaged = bytearray(entry.read_bytes())
    damaged[-1] ^= 1
    entry.write_bytes(bytes(damaged))
    assert Dictionary.read(data).learned == dictionary.learned and len(rebuilds) == 2


def test_samples_from_files_and_jsonl(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one sample\n")
    (tmp_path / "m.jsonl").write_text(json.dumps("first") + "\n\n" + json.dumps("sécond") + "\n")
    assert read_samples([tmp_path / "a.txt", tmp_path / "m.jsonl"]) == [
        b"one sample\n",
        b"first",
        "sécond".encode(),
    ]
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    with pytest.raises(CorpusError, match=r"bad\.jsonl, line 1"):
        read_samples([tmp_path / "bad.jsonl"])


def test_priming_takes_the_most_typical_samples_last_within_budget():
    common, odd = [1, 2, 3], [90, 91, 92, 93]
    samples = [odd, [*common, 4], [*common, 5], common]
    priming = choose_priming(samples, budget=8)
    assert len(priming) <= 8 and 90 not in priming
    assert priming[-3:] == common  # the most typical nearest the message


# --- files made with a dictionary -----------------------------------------------------


def test_round_trip_and_header(dict_codec, dictionary):
    blob = dict_codec.compress(MESSAGE)
    header = Header.read(io.BytesIO(blob))
    assert header.dict_id == dictionary.fingerprint and header.single == FrameType.NEURAL
    assert header.lanes == 1 and blob[5] & 0x40  # the descriptor's DICT bit
    assert dict_codec.decompress(blob) == MESSAGE


def test_primed_state_restored_codes_as_computed(model, dictionary, dict_codec, own_cache):
    """The second frame restores the primed window from llama.cpp's saved state;
    a fresh predictor without a disk cache computes it: the files and their
    decodes are the same (tests/test_priming_cache.py: restored from disk)."""
    first = dict_codec.compress(MESSAGE)
    second = dict_codec.compress(MESSAGE)  # restored priming
    model.release_contexts()  # a fresh context and no saved state: the priming is computed again
    shutil.rmtree(own_cache, ignore_errors=True)
    assert dict_codec.compress(MESSAGE) == first == second
    model.release_contexts()
    shutil.rmtree(own_cache, ignore_errors=True)
    assert dict_codec.decompress(second) == MESSAGE


def test_the_dictionary_changes_the_coding(codec, dict_codec, dictionary, model):
    """Both halves count: the priming text, and the learned state."""
    plain = codec.compress(MESSAGE, segment=False)
    primed = dict_codec.compress(MESSAGE, segment=False)
    cold = Codec.from_model(model, dict=dataclasses.replace(dictionary, state_size=0, packed_state=b""))
    unlearned = cold.compress(MESSAGE, segment=False)
    assert len({plain[14:], primed[10:], unlearned[10:]}) == 3  # after the headers


def test_decoding_without_the_dictionary_names_it(codec, dict_codec, dictionary, monkeypatch, tmp_path):
    blob = dict_codec.compress(MESSAGE)
    monkeypatch.setenv(DICTS_ENV, str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DictionaryError, match=dictionary.fingerprint.hex()):
        codec.decompress(blob)
    (tmp_path / "changelogs.ncd").write_bytes(dictionary.pack())
    assert find_dictionary(dictionary.fingerprint) == dictionary
    assert codec.decompress(blob) == MESSAGE  # found by its fingerprint


def test_another_dictionary_is_refused(model, dict_codec, dictionary):
    blob = dict_codec.compress(MESSAGE)
    other, _ = build_dictionary(model, SAMPLES[::-1], CompressOptions(), tokens=60, limit=0)
    with pytest.raises(DictionaryError, match=dictionary.fingerprint.hex()):
        Codec.from_model(model, dict=other).decompress(blob)


def test_a_dictionary_of_another_model_is_refused(model, dictionary):
    foreign = dataclasses.replace(dictionary, model_id=bytes(8))
    with pytest.raises(DictionaryError, match="built for model 0000"):
        Codec.from_model(model, dict=foreign).compress(MESSAGE)


def test_a_dictionary_brings_its_ensemble(model, dictionary):
    llm_only, _ = build_dictionary(model, SAMPLES, CompressOptions(ensemble=None), tokens=60)
    assert llm_only.learned is None and llm_only.ensemble is None
    c = Codec.from_model(model, dict=llm_only)
    blob = c.compress(MESSAGE, ensemble=EnsembleSettings())  # replaced by the dictionary's
    assert Header.read(io.BytesIO(blob)).ensemble is None
    assert c.decompress(blob) == MESSAGE


def test_learned_state_round_trips_through_the_engine(model, dictionary):
    """Loading a state and reading it back before coding gives the same bytes."""
    params = CompressOptions(dictionary=dictionary).frame_params(model.start_token)
    assert params.primer == Primer(dictionary.tokens, dictionary.learned)
    kept: list[bytes] = []
    symbols = model.symbols.encode(b"x")
    encode_streams(model.predictor(params), params, [symbols], ESCAPE_SYMBOLS, None, kept.append)
    assert len(kept[0]) == dictionary.state_size and kept[0] != dictionary.learned  # it learned "x"


# --- the command line ---------------------------------------------------------------------


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nacrith", *args],
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_build_compress_test_and_missing(tmp_path):
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s.decode()) + "\n" for s in SAMPLES))
    (tmp_path / "m.txt").write_bytes(MESSAGE)
    built = run(
        "dict", "build", "samples.jsonl", "-o", "log.ncd", "--tokens", "100", "--limit", "400", cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr
    assert b"dictionary" in built.stderr and b"samples" in built.stderr
    fingerprint = Dictionary.read(tmp_path / "log.ncd").fingerprint.hex()
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "log.ncd").stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file
    assert run("compress", "-q", "--dict", "log.ncd", "m.txt", cwd=tmp_path).returncode == 0
    assert run("test", "-q", "--dict", "log.ncd", "m.txt.nc", cwd=tmp_path).returncode == 0
    missing = run(
        "test", "m.txt.nc", cwd=tmp_path, env={DICTS_ENV: str(tmp_path / "none"), "HOME": str(tmp_path)}
    )
    err = missing.stderr.decode()
    assert missing.returncode == 1 and "Traceback" not in err and err.count("\n") == 1
    assert fingerprint in err
    again = run("dict", "build", "samples.jsonl", "-o", "log.ncd", cwd=tmp_path)
    assert again.returncode == 2 and b"exists" in again.stderr


def test_cli_wrong_dictionary_names_both_and_where_it_looked(tmp_path, own_cache):
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s.decode()) + "\n" for s in SAMPLES))
    (tmp_path / "reversed.jsonl").write_text("".join(json.dumps(s.decode()) + "\n" for s in SAMPLES[::-1]))
    # A text the tiny model codes well: the file is surely neural, and needs its dictionary.
    (tmp_path / "m.txt").write_bytes(tiny_text(600, seed=3))
    for samples, name in (("samples.jsonl", "right.ncd"), ("reversed.jsonl", "other.ncd")):
        built = run("dict", "build", samples, "-o", name, "--tokens", "60", "--llm-only", cwd=tmp_path)
        assert built.returncode == 0, built.stderr
    right, other = (Dictionary.read(tmp_path / n).fingerprint.hex() for n in ("right.ncd", "other.ncd"))
    assert run("compress", "-q", "--dict", "right.ncd", "m.txt", cwd=tmp_path).returncode == 0
    assert Header.read(io.BytesIO((tmp_path / "m.txt.nc").read_bytes())).dict_id is not None
    (tmp_path / "m.txt").unlink()
    searched = os.pathsep.join([str(tmp_path / "none"), str(tmp_path / "shared")])
    wrong = run("decompress", "--dict", "other.ncd", "m.txt.nc", cwd=tmp_path, env={DICTS_ENV: searched})
    err = wrong.stderr.decode()
    assert wrong.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"needs dictionary {right}" in err and f"{other} (other.ncd)" in err
    assert f"${DICTS_ENV} ({searched})" in err and str(own_cache / "dicts") in err
    assert not (tmp_path / "m.txt").exists()
    unset = run("decompress", "m.txt.nc", cwd=tmp_path, env={DICTS_ENV: ""})
    assert unset.returncode == 1 and f"${DICTS_ENV} (not set)" in unset.stderr.decode()


def test_progress_is_one_line_that_never_passes_its_total():
    out = io.StringIO()
    line = BuildProgress(out, width=60)
    report = BuildReport(planned_bytes=4259, seconds=1.0)
    for done in (1000, 4096, 4259, 5000):  # past the plan: shown as the plan
        report.trained_bytes, report.trained_samples, report.trained_tokens = done, done // 400, done // 3
        line.show(report)
    line.close()
    writes = out.getvalue().split("\r")[1:]
    # Closed: the line cleared, the cursor at its start.
    assert "\n" not in out.getvalue() and writes[-1] == ""
    shown = writes[:-2]
    assert len(shown) == 4 and all(len(w) <= 59 for w in shown)  # cut to the width, less its last column
    assert "1,000/4,259 bytes" in shown[0] and " 23%" in shown[0]
    assert "4,259/4,259 bytes" in shown[-1] and "100%" in shown[-1]
    assert BuildProgress.text(report).endswith(", 1666 tok/s, 0:00 left")
    longer = BuildProgress(io.StringIO(), width=200)
    longer.show(dataclasses.replace(report, trained_tokens=10**9))
    longer.show(report)  # shorter: padded over the one before
    first, second = longer.stream.getvalue().split("\r")[1:]  # type: ignore[attr-defined]
    assert len(second) == len(first) and second.rstrip() == BuildProgress.text(report)


def run_in_terminal(args: list[str], cwd: Path, columns: int) -> tuple[int, str]:
    """nacrith with its stderr on a pseudo-terminal of this width; its exit status and what it showed."""
    return run_in_pty(
        args, stderr_tty=True, env={**os.environ, "NACRITH_THREADS": "1"}, cwd=cwd, columns=columns
    )


def test_cli_build_progress_on_a_terminal(tmp_path):
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s.decode()) + "\n" for s in SAMPLES))
    args = ["dict", "build", "samples.jsonl", "-o", "d.ncd", "--tokens", "60", "--limit", "400"]
    code, shown = run_in_terminal(args, tmp_path, columns=50)
    assert code == 0, shown
    progress, summary = shown.replace("\r\n", "\n").rsplit("\r", 1)  # the terminal ends lines with CR LF
    assert "\n" not in progress and summary.startswith("d.ncd: dictionary") and summary.count("\n") == 1
    lines = [line.rstrip() for line in progress.split("\r") if line.strip()]
    assert len(lines) >= 2 and all(len(line) <= 49 for line in lines)
    planned = 0
    for sample in SAMPLES:  # the samples until the one that reaches the limit, that one whole
        planned += len(sample)
        if planned >= 400:
            break
    assert lines[-1].startswith(f"nacrith: dictionary 100%, {planned}/{planned} bytes")
    for line in lines:
        done, total = line.split(", ")[1].split(" ")[0].split("/")
        assert int(done) <= int(total) == planned


def test_a_worker_keeps_one_copy_of_a_dictionary(dictionary):
    """Sent with every frame, a dictionary unpickles to one object per process,
    whose learned state is unpacked once."""
    first, second = pickle.loads(pickle.dumps(dictionary)), pickle.loads(pickle.dumps(dictionary))
    assert first is second and first == dictionary
    assert first.learned is second.learned


def test_workers_code_and_decode_dictionary_frames(model, dictionary, tiny_model_file):
    """Two worker processes: the same file as one process makes, and back."""
    local = Codec.from_model(model, dict=dictionary).compress(MESSAGE * 2)
    with Codec(tiny_model_file, 1, workers=2, dict=dictionary) as pool:
        assert pool.compress(MESSAGE * 2) == local
        assert pool.decompress(local) == MESSAGE * 2


def test_samples_beyond_the_limit_are_counted(model):
    """The n-gram, match and unigram models learn every sample; the model codes only the first."""
    options = CompressOptions()
    encoded = [model.symbols.encode(s) for s in SAMPLES]
    counted = count_samples(model.symbols.n_vocab, ESCAPE_SYMBOLS, options.ensemble, options.coding, encoded)
    fresh = count_samples(model.symbols.n_vocab, ESCAPE_SYMBOLS, options.ensemble, options.coding, [])
    assert len(counted) == len(fresh) and counted != fresh
    again = count_samples(model.symbols.n_vocab, ESCAPE_SYMBOLS, options.ensemble, options.coding, encoded)
    assert again == counted  # deterministic
