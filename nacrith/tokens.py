"""Bytes <-> symbols, lossless for any input.

A symbol is either a token id (``< n_vocab``) or an escape ``n_vocab + b``
carrying one raw byte ``b``. Text the tokenizer can carry is tokenized and
verified: the token bytes, joined, must give back exactly the input. What it
cannot carry (bytes with no token in the vocabulary, invalid UTF-8, or any
span whose tokenization does not round-trip) is escaped byte by byte.

Token bytes come from our own table built from the GGUF vocabulary, never from
llama.cpp's detokenizer, which drops bytes of long tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from nacrith.format import ESCAPE_SYMBOLS

__all__ = ["SymbolCodec", "byte_level_decoder"]


@lru_cache(maxsize=1)
def byte_level_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: the printable stand-in of each byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _lead_byte_range(b: int) -> tuple[int, int] | None:
    """Code points whose UTF-8 form starts with byte b (None for bytes that never lead)."""
    if b < 0x80:
        return b, b
    if 0xC2 <= b <= 0xDF:
        return (b & 0x1F) << 6, ((b & 0x1F) << 6) + 0x3F
    # Three- and four-byte forms start at U+0800 and U+10000: below, 0xE0 and
    # 0xF0 would claim ASCII and escape every character of plain text.
    if 0xE0 <= b <= 0xEF:
        lo = (b & 0x0F) << 12
        return max(lo, 0x800), lo + 0xFFF
    if 0xF0 <= b <= 0xF4:
        lo = (b & 0x07) << 18
        return max(lo, 0x10000), min(lo + 0x3FFFF, 0x10FFFF)
    return None


class SymbolCodec:
    """Turns bytes into coder symbols and back for one vocabulary.

    ``token_bytes[i]`` is the exact byte string of token i (None for tokens
    that never come out of plain-text tokenization, e.g. control tokens).
    ``tokenize`` maps valid UTF-8 bytes to token ids, with special-token
    strings treated as plain text.
    """

    def __init__(self, token_bytes: Sequence[bytes | None], tokenize: Callable[[bytes], list[int]]) -> None:
        self.token_bytes = list(token_bytes)
        self.n_vocab = len(self.token_bytes)
        self._tokenize = tokenize
        carried = {tb[0] for tb in self.token_bytes if tb is not None and len(tb) == 1}
        self.uncarried_bytes = frozenset(set(range(256)) - carried)
        self._bad_chars = self._bad_char_pattern()

    @property
    def n_symbols(self) -> int:
        return self.n_vocab + ESCAPE_SYMBOLS

    def _bad_char_pattern(self) -> re.Pattern[str]:
        # Invalid UTF-8 arrives as lone surrogates (surrogateescape): always escaped.
        ranges = [(0xDC80, 0xDCFF)]
        self._continuation_gap = False
        for b in sorted(self.uncarried_bytes):
            if 0x80 <= b <= 0xBF:
                self._continuation_gap = True  # rare: checked char by char in _split
            elif (r := _lead_byte_range(b)) is not None:
                ranges.append(r)
        body = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
        return re.compile(f"[{body}]+")

    def _char_is_bad(self, ch: str) -> bool:
        try:
            return any(b in self.uncarried_bytes for b in ch.encode())
        except UnicodeEncodeError:
            return True

    def _split(self, data: bytes) -> list[tuple[bool, str]]:
        """(is_text, chunk) pieces in order; escaped chunks hold the raw bytes as surrogateescape text."""
        text = data.decode("utf-8", "surrogateescape")
        pieces: list[tuple[bool, str]] = []
        pos = 0
        for m in self._bad_chars.finditer(text):
            if m.start() > pos:
                pieces.append((True, text[pos : m.start()]))
            pieces.append((False, m.group()))
            pos = m.end()
        if pos < len(text):
            pieces.append((True, text[pos:]))
        if not self._continuation_gap:
            return pieces
        refined: list[tuple[bool, str]] = []
        for is_text, chunk in pieces:
            if not is_text:
                refined.append((False, chunk))
                continue
            for ch in chunk:
                ok = not self._char_is_bad(ch)
                if refined and refined[-1][0] == ok:
                    refined[-1] = (ok, refined[-1][1] + ch)
                else:
                    refined.append((ok, ch))
        return refined

    def _escape(self, raw: bytes) -> list[int]:
        return [self.n_vocab + b for b in raw]

    def _tokenize_verified(self, text: str) -> list[int]:
        """Tokens whose bytes equal text's UTF-8; halves a failing span until it passes or is one char."""
        raw = text.encode()
        tokens = self._tokenize(raw)
        if self._bytes_of(tokens) == raw:
            return tokens
        if len(text) == 1:
            return self._escape(raw)
        mid = len(text) // 2
        return self._tokenize_verified(text[:mid]) + self._tokenize_verified(text[mid:])

    def _bytes_of(self, tokens: list[int]) -> bytes | None:
        parts = []
        for t in tokens:
            tb = self.token_bytes[t] if 0 <= t < self.n_vocab else None
            if tb is None:
                return None
            parts.append(tb)
        return b"".join(parts)

    def encode(self, data: bytes) -> list[int]:
        """Symbols for data; ``decode(encode(data)) == data`` for every input."""
        symbols: list[int] = []
        for is_text, chunk in self._split(data):
            if is_text:
                symbols += self._tokenize_verified(chunk)
            else:
                symbols += self._escape(chunk.encode("utf-8", "surrogateescape"))
        return symbols

    def symbol_bytes(self, symbol: int) -> bytes:
        if symbol >= self.n_vocab:
            return bytes([symbol - self.n_vocab])
        tb = self.token_bytes[symbol]
        if tb is None:
            # Only a decoder fed corrupt data gets here; the frame checksum reports it.
            return b""
        return tb

    def decode(self, symbols: Sequence[int]) -> bytes:
        return b"".join(self.symbol_bytes(s) for s in symbols)
