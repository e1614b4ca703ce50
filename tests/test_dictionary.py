"""Dictionaries: their file (docs/dictionary.md), building one, and files made with one.

Mechanics run on the tiny model through real llama.cpp: a dictionary's
frames start from a primed window (evaluated once, then restored from
llama.cpp's saved sequence state) and a learned ensemble, and decode only
with the same dictionary. What a dictionary gains on real messages is the
default model's business: ``nacrith bench --corpus changelogs --dict``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from nacrith.api import Codec
from nacrith.dictbuild import build_dictionary, choose_priming, read_samples
from nacrith.dictionary import DICTS_ENV, Dictionary, find_dictionary
from nacrith.engine import Primer, count_samples, encode_streams
from nacrith.errors import CorpusError, DictionaryError
from nacrith.format import ESCAPE_SYMBOLS, FrameType, Header
from nacrith.frames import CompressOptions
from nacrith.settings import EnsembleSettings

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


@pytest.fixture(scope="module")
def dictionary(model) -> Dictionary:
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
    data[4] = 2
    with pytest.raises(DictionaryError, match="version 2"):
        Dictionary.read(bytes(data))


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


def test_primed_state_restored_codes_as_computed(model, dictionary, dict_codec):
    """The second frame restores the primed window from llama.cpp's saved state;
    a fresh predictor computes it: the files and their decodes are the same."""
    first = dict_codec.compress(MESSAGE)
    second = dict_codec.compress(MESSAGE)  # restored priming
    model.release_contexts()  # a fresh context: the priming is computed again
    assert dict_codec.compress(MESSAGE) == first == second
    model.release_contexts()
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
    predictor = model.predictor(2048, 512, model.start_token, CompressOptions().batch, 1, primed=True)
    kept: list[bytes] = []
    symbols = model.symbols.encode(b"x")
    encode_streams(
        predictor,
        [symbols],
        ESCAPE_SYMBOLS,
        1.0,
        dictionary.ensemble,
        CompressOptions().coding,
        None,
        Primer(dictionary.tokens, dictionary.learned),
        kept.append,
    )
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
