"""Round trips through llama.cpp (the tiny test model): every input comes back byte for byte."""

from __future__ import annotations

import io
import os
import random
from dataclasses import replace

import pytest
from tiny_model import tiny_text

import nacrith
from nacrith.format import FrameType, Header
from nacrith.models.llm import LanguageModel
from nacrith.options import CONTEXT_HEADS_MIN_INPUT
from nacrith.reader import read_info
from nacrith.settings import EnsembleSettings

pytestmark = pytest.mark.llm

SPECIAL_TOKEN_TEXT = (
    b"<|endoftext|><|im_start|>user\nhi<|im_end|>\n<repo_name>x<file_sep><filename>a.py"
    b"<gh_stars>10<issue_start><jupyter_code><empty_output><reponame>"
)

CASES = {
    "empty": b"",
    "one_byte": b"a",
    "ascii": b"The quick brown fox jumps over the lazy dog.\n",
    "unicode": "Zoë's café — naïve 東京 Привет 😀👍🏽 e\u0301 \ufeffBOM\n".encode(),
    "crlf": b"line one\r\nline two\r\n\r\nline four\r\n",
    "nul_bytes": b"before\x00\x00after\x00 text with a NUL\n",
    "invalid_utf8": b"valid text \xff\xfe\xc3\x28 then \x80\x81 more text and \xed\xa0\x80 surrogate\n",
    "special_tokens": SPECIAL_TOKEN_TEXT,
    "long_whitespace": b"header\n"
    + b" " * 48
    + b"indented\n"
    + b"\t" * 40
    + b"tabs\n"
    + b" " * 300
    + b"end\n",
    # Bytes and characters with no token in SmolLM2's vocabulary.
    "untokenizable": "ctrl \x04\x06\x13\x14\x16\x1d chars, plane 4 \U00040000 and \U000bffff.\n".encode(),
    "binary": bytes(random.Random(7).randrange(256) for _ in range(300)),
}


def frame_types(blob: bytes) -> list[FrameType]:
    return [e.type for e in read_info(io.BytesIO(blob)).trailer.entries]


@pytest.mark.parametrize("segment", [True, False], ids=["segmented", "frames"])
@pytest.mark.parametrize("llm_only", [False, True], ids=["ensemble", "llm_only"])
@pytest.mark.parametrize("name", CASES)
def test_round_trip(codec, name, llm_only, segment):
    data = CASES[name]
    blob = codec.compress(data, segment=segment, **({"ensemble": None} if llm_only else {}))
    header = Header.read(io.BytesIO(blob))
    if header.model_id is not None:  # (segmented inputs this short are mostly zstd alone)
        assert (header.ensemble is None) == llm_only
    else:
        assert segment and FrameType.NEURAL not in frame_types(blob)
    if not segment:
        assert header.model_id is not None
    assert codec.decompress(blob) == data


def test_text_goes_through_the_model(codec):
    """Short English text must be coded by the model, and beat zstd and stored frames.

    (Fixed-size frames: with segmentation, zstd alone, in a file whose header
    names no model, is smaller for a text this short.)
    """
    data = b"It was the best of times, it was the worst of times, it was the age of wisdom.\n" * 2
    blob = codec.compress(data, segment=False)
    assert frame_types(blob) == [FrameType.NEURAL]
    assert codec.decompress(blob) == data


def test_special_token_strings_are_plain_text(codec, model):
    """Literal special-token strings are tokenized as text, never as control tokens."""
    symbols = model.symbols.encode(SPECIAL_TOKEN_TEXT)
    assert all(s < model.symbols.n_vocab for s in symbols), "no escapes needed"
    assert all(model.symbols.token_bytes[s] is not None for s in symbols), "no control tokens"
    # After text the model codes well, so that the frame is neural whatever the model.
    data = tiny_text(200, seed=1) + SPECIAL_TOKEN_TEXT
    blob = codec.compress(data, segment=False)
    assert frame_types(blob) == [FrameType.NEURAL]
    assert codec.decompress(blob) == data


@pytest.mark.parametrize(
    ("before", "after"),
    [(b"", b"\x1a"), (b"\x1b", b""), (b"\xff\xfe", b"\x00\x00\r\n\x04"), (b"", b"\x04" * 11)],
)
def test_a_short_binary_run_at_an_end_is_coded_in_the_text(codec, before, after):
    """A DOS end-of-file mark after a text (alice29.txt ends so), an escape
    before it: one neural frame, not a binary segment costing a frame, and back
    byte for byte, escapes for the bytes the tokenizer lacks included."""
    data = before + tiny_text(1500, seed=4) + after
    blob = codec.compress(data)
    assert frame_types(blob) == [FrameType.NEURAL]
    assert codec.decompress(blob) == data


def test_empty_input_is_eleven_bytes(codec):
    """Version 2: an empty stored frame, no model (docs/format.md's example)."""
    blob = codec.compress(b"")
    assert frame_types(blob) == [FrameType.STORED] and len(blob) == 11
    assert codec.decompress(blob) == b""
    assert codec.decompress(codec.compress(b"", format_version=1)) == b""


def test_sliding_window_small_context(codec):
    """A window of 64 tokens sliding by 16 slides dozens of times over this text."""
    data = tiny_text(3000, seed=2)
    blob = codec.compress(data, context=64, slide=16, segment=False)
    header = Header.read(io.BytesIO(blob))
    assert (header.context, header.slide) == (64, 16)
    assert frame_types(blob) == [FrameType.NEURAL]
    assert codec.decompress(blob) == data


def test_crosses_default_window(codec, model):
    """More than 3,000 tokens with the default 2,048-token window: the KV cache slides."""
    data = tiny_text(14_000, seed=3)
    n_tokens = len(model.symbols.encode(data))
    assert n_tokens > 3000
    blob = codec.compress(data)
    assert frame_types(blob) == [FrameType.NEURAL]
    assert codec.decompress(blob) == data


def test_context_heads_only_for_inputs_large_enough_to_pay_for_them(codec, monkeypatch):
    """From CONTEXT_HEADS_MIN_INPUT bytes the ensemble has its context heads,
    which the header records; a smaller input is coded without them, so its
    file keeps version 2's default ensemble and is what it was before they
    existed. (The threshold is lowered to 4,000 bytes here: coding 32 KiB
    three times on the test model takes a minute.)"""
    assert CONTEXT_HEADS_MIN_INPUT > 4000
    monkeypatch.setattr("nacrith.options.CONTEXT_HEADS_MIN_INPUT", 4000)
    monkeypatch.setattr("nacrith.writer.CONTEXT_HEADS_MIN_INPUT", 4000)
    large = tiny_text(4000, seed=5)
    blob = codec.compress(large, segment=False)
    assert Header.read(io.BytesIO(blob)).ensemble.bias_contexts == EnsembleSettings().bias_contexts > 0
    assert codec.decompress(blob) == large
    small = large[:3000]
    blob = codec.compress(small)
    assert Header.read(io.BytesIO(blob)).ensemble.bias_contexts == 0
    assert blob == codec.compress(small, ensemble=replace(EnsembleSettings(), bias_contexts=0))
    assert codec.decompress(blob) == small
    # From a pipe, whose size is not known, the writer reads that far ahead to decide.
    for data in (small, large):
        out = io.BytesIO()
        codec.compress_stream(io.BytesIO(data), out, segment=False)
        assert out.getvalue() == codec.compress(data, segment=False)


def test_several_frames(codec):
    data = b"Frames are independent: each restarts the model from its first token.\n" * 6
    blob = codec.compress(data, frame_size=100, segment=False)
    assert len(frame_types(blob)) == 5
    assert codec.decompress(blob) == data


def test_temperature_round_trips_through_float32(codec):
    """0.9 is not a float32; the encoder must code with the value the header stores."""
    data = b"A temperature that float32 cannot hold exactly.\n"
    blob = codec.compress(data, temperature=0.9, segment=False)
    assert Header.read(io.BytesIO(blob)).temperature != 0.9
    assert codec.decompress(blob) == data


def test_deterministic(codec):
    data = CASES["unicode"] + CASES["ascii"]
    assert codec.compress(data, segment=False) == codec.compress(data, segment=False)
    assert codec.compress(data) == codec.compress(data)


def test_thread_count_does_not_change_the_file(codec, model):
    """A file made with 1 thread decodes with 2, and 2 threads make the same bytes."""
    data = b"Threads split the matrix work, but every logit must come out the same.\n"
    blob = codec.compress(data, segment=False)
    assert frame_types(blob) == [FrameType.NEURAL]
    with LanguageModel(model.path, threads=2) as model2:
        codec2 = nacrith.Codec.from_model(model2)
        assert codec2.decompress(blob) == data
        assert codec2.compress(data, segment=False) == blob


def test_module_level_api(model):
    data = b"nacrith.compress and nacrith.decompress use a cached default model.\n"
    blob = nacrith.compress(data, threads=1)
    assert nacrith.decompress(blob, threads=1) == data


def test_file_api_is_atomic_and_keeps_source(codec, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(CASES["crlf"])
    dst = tmp_path / "in.txt.nc"
    codec.compress_file(src, dst)
    assert src.read_bytes() == CASES["crlf"]
    with pytest.raises(FileExistsError):
        codec.compress_file(src, dst)
    out = tmp_path / "out.txt"
    codec.decompress_file(dst, out)
    assert out.read_bytes() == CASES["crlf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "in.txt.nc", "out.txt"]
    assert os.stat(out).st_mtime == os.stat(dst).st_mtime


def test_input_that_changes_size_is_an_error(codec):
    """A file that grows or shrinks while being read must not yield a file that lies about its size."""
    with pytest.raises(nacrith.InputChangedError, match="expected 5 bytes, read 4"):
        codec.compress_stream(io.BytesIO(b"\x00\xff\x00\xff"), io.BytesIO(), content_size=5)
