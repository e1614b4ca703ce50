"""Bytes <-> symbols: lossless for any input, with the real SmolLM2 vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nacrith.tokens import SymbolCodec

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

# Bytes with no token in SmolLM2's byte-level BPE alphabet (found by scanning its vocabulary).
SMOLLM2_UNCARRIED = {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)}


def test_uncarried_bytes_of_smollm2(model):
    assert set(model.symbols.uncarried_bytes) == SMOLLM2_UNCARRIED


def test_token_table_matches_vocabulary(model):
    """Plain text tokens map to the bytes llama.cpp's own tokenizer consumed for them."""
    codec = model.symbols
    assert codec.n_vocab == 49152
    for word in [b"hello", b" world", b"\n\n", b" " * 16, "café".encode()]:
        tokens = codec.encode(word)
        assert codec.decode(tokens) == word
        assert all(t < codec.n_vocab for t in tokens)


@pytest.mark.skipif(
    not (CORPORA / "canterbury" / "alice29.txt").exists(), reason="Canterbury corpus not present"
)
def test_alice29_round_trips_where_the_detokenizer_loses_bytes(model):
    """llama-cpp-python's detokenize drops 98 bytes of this file (long whitespace tokens); we must not."""
    data = (CORPORA / "canterbury" / "alice29.txt").read_bytes()
    symbols = model.symbols.encode(data)
    assert model.symbols.decode(symbols) == data
    assert all(s < model.symbols.n_vocab for s in symbols), "plain ASCII needs no escapes"
    assert len(symbols) < len(data) / 3


def test_escapes_carry_untokenizable_bytes(model):
    codec = model.symbols
    data = b"a\x04b\xffc" + "\U00040000".encode()
    symbols = codec.encode(data)
    escapes = [s - codec.n_vocab for s in symbols if s >= codec.n_vocab]
    assert escapes == [0x04, 0xFF, *"\U00040000".encode()]
    assert codec.decode(symbols) == data


TRICKY = st.sampled_from(
    [
        "\x00",
        "\x04",
        "\r\n",
        "\t",
        " " * 40,
        "<|endoftext|>",
        "😀",
        "e\u0301",
        "\U00050000",
        "東",
        "\ufeff",
        "ÿ",
    ]
)


@given(st.lists(st.one_of(st.text(max_size=20), TRICKY, st.binary(max_size=8)), max_size=30))
def test_any_mixture_round_trips(model, parts):
    data = b"".join(p if isinstance(p, bytes) else p.encode("utf-8", "surrogatepass") for p in parts)
    symbols = model.symbols.encode(data)
    assert model.symbols.decode(symbols) == data
    assert all(0 <= s < model.symbols.n_symbols for s in symbols)


class StubTokenizer:
    """A deliberately faulty stand-in tokenizer, to exercise the verification fallback.

    It splits text into single bytes but silently drops every 'X', as a lossy
    tokenizer would. Real llama.cpp has no such known loss for carried text,
    so this path cannot be reached with it.
    """

    def __init__(self) -> None:
        self.token_bytes = [bytes([b]) for b in range(256)]

    def __call__(self, text: bytes) -> list[int]:
        return [b for b in text if b != ord("X")]


def test_failed_verification_falls_back_to_escapes():
    stub = StubTokenizer()
    codec = SymbolCodec(stub.token_bytes, stub)
    data = b"abcXdef" * 5
    symbols = codec.encode(data)
    assert codec.decode(symbols) == data
    escaped = [s - codec.n_vocab for s in symbols if s >= codec.n_vocab]
    assert escaped == [ord("X")] * 5, "only the lossy characters are escaped"


def test_missing_multibyte_lead_bytes_escape_only_their_characters():
    """A vocabulary without the bytes 0xE0 and 0xF0 escapes the characters
    whose UTF-8 starts with them, and nothing else: ASCII stays tokens."""
    token_bytes = [bytes([b]) for b in range(256) if b not in (0xE0, 0xF0)]
    ids = {tb: i for i, tb in enumerate(token_bytes)}
    codec = SymbolCodec(token_bytes, lambda raw: [ids[bytes([b])] for b in raw])
    data = "plain ASCII, \u0800 and \U00010000, then é".encode()
    symbols = codec.encode(data)
    assert codec.decode(symbols) == data
    escaped = bytes(s - codec.n_vocab for s in symbols if s >= codec.n_vocab)
    assert escaped == "\u0800\U00010000".encode()
