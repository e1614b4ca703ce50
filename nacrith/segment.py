"""Splits any input into text and binary segments, reading it block by block.

Text is what the language model can code well: printable ASCII, tabs and
line breaks, and well-formed UTF-8 outside the control characters, made only
of bytes the tokenizer carries. Everything else is binary. Two rules then
smooth the split, with thresholds measured by benchmarks/segment_thresholds.py
(SmolLM2-135M, the default ensemble, zstd level 19, on Canterbury text inside
Canterbury binaries):

- A binary gap inside text is coded in place (as tokens, or as escapes for
  bytes the tokenizer lacks, which never reach the model) when that is
  cheaper than ending the text frame and starting another. Splitting costs
  about 50 bytes (frame headers, a zstd block, the model starting cold);
  coding a gap in place costs about 0.3 bytes per random byte more than zstd
  does, so in place won for every gap measured, up to 64 bytes.
- A text island shorter than MIN_TEXT bytes stays in the binary data: below
  it, a neural frame of its own (frame header, index entry, a cold model)
  costs more than zstd does with the island in place.

The split depends only on the input and these constants, never on how the
input arrives: blocks are re-joined and only segments whose classification
can no longer change are handed out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["MAX_GAP_COST", "MIN_RUN", "MIN_TEXT", "RUN_PER_GAP_COST", "Segment", "Segmenter", "segments"]

#: Shortest text run worth a neural frame of its own (bytes): shorter ones cost
#: less inside the zstd stream (docs/measurements.md, "Segmentation").
MIN_TEXT = 96
#: Largest cost of a gap coded inside text (see Segmenter._gap_cost: 1 per
#: control byte the tokenizer carries, 3 per escaped byte): docs/measurements.md.
MAX_GAP_COST = 96
#: A gap is bridged only between text runs at least this many times its cost
#: long: a text byte saves about 0.35 bytes as neural rather than zstd, so
#: shorter runs cannot pay for the gap.
RUN_PER_GAP_COST = 3
#: Shorter runs of text characters are not looked at: binary data is full of
#: them; longer ones miss short names in binaries (docs/measurements.md).
MIN_RUN = 3

#: How much of the end of a binary span is kept back for the next block. Only
#: text runs near the end can still join into text: a chain of runs under
#: MIN_TEXT bytes joined by gaps, less than MIN_TEXT * (1 + MAX_GAP_COST / MIN_RUN)
#: bytes long.
_BINARY_HOLD = 4096

# Characters that count as text, before the tokenizer's missing bytes are
# taken out: \t \n \f \r, printable ASCII, and UTF-8 sequences of 2 to 4
# bytes that are well formed (no overlongs, no surrogates) and not C1
# controls, as (lead bytes, continuation pattern).
_ASCII_TEXT = b"\t\n\x0c\r" + bytes(range(0x20, 0x7F))
_MULTIBYTE = (
    (b"\xc2", rb"[\xa0-\xbf]"),
    (bytes(range(0xC3, 0xE0)), rb"[\x80-\xbf]"),
    (b"\xe0", rb"[\xa0-\xbf][\x80-\xbf]"),
    (bytes([*range(0xE1, 0xED), 0xEE, 0xEF]), rb"[\x80-\xbf]{2}"),
    (b"\xed", rb"[\x80-\x9f][\x80-\xbf]"),
    (b"\xf0", rb"[\x90-\xbf][\x80-\xbf]{2}"),
    (bytes(range(0xF1, 0xF4)), rb"[\x80-\xbf]{3}"),
    (b"\xf4", rb"[\x80-\x8f][\x80-\xbf]{2}"),
)


def _byte_class(allowed: bytes) -> bytes:
    return b"[" + b"".join(re.escape(bytes([b])) for b in allowed) + b"]"


def _text_pattern(uncarried: frozenset[int]) -> re.Pattern[bytes]:
    """Runs of text characters made only of bytes the tokenizer carries."""
    alternatives = [_byte_class(bytes(b for b in _ASCII_TEXT if b not in uncarried))]
    # (A tokenizer lacking a continuation byte is not known; its multi-byte text is left binary.)
    if not uncarried & set(range(0x80, 0xC0)):
        for leads, tail in _MULTIBYTE:
            kept = bytes(b for b in leads if b not in uncarried)
            if kept:
                alternatives.append(_byte_class(kept) + tail)
    return re.compile(b"(?:" + b"|".join(alternatives) + b"){%d,}" % MIN_RUN)


@dataclass(frozen=True)
class Segment:
    text: bool
    data: bytes


class Segmenter:
    """Feed blocks of input; get back segments of at most ``max_size`` bytes, in order.

    ``uncarried``: the bytes the tokenizer has no token for. They are never
    part of a text run, and cost extra where a gap holding them is bridged.
    """

    def __init__(self, max_size: int, uncarried: Iterable[int] = ()) -> None:
        if max_size < 1:
            raise ValueError("segments must be allowed at least 1 byte")
        self.max_size = max_size
        self.uncarried = frozenset(uncarried)
        self._pattern = _text_pattern(self.uncarried)
        self._buf = b""
        self._binary = b""  # final binary bytes not yet handed out

    def feed(self, block: bytes) -> list[Segment]:
        """Segments that are final now that ``block`` has been read."""
        self._buf += block
        return self._take(final=False)

    def finish(self) -> list[Segment]:
        """The remaining segments, at the end of the input."""
        return self._take(final=True)

    def _gap_cost(self, gap: bytes) -> int:
        """Bytes a gap costs coded inside text: about 1 for a control character
        the tokenizer carries, 3 for one it escapes (24 bits or more)."""
        return sum(1 if b < 0x80 and b not in self.uncarried else 3 for b in gap)

    def _spans(self, buf: bytes) -> list[tuple[bool, int, int]]:
        """(is_text, start, end) covering buf, adjacent spans of different kinds."""
        text: list[list[int]] = []
        for m in self._pattern.finditer(buf):
            start, end = m.span()
            if text:
                left = text[-1]
                gap = buf[left[1] : start]
                cost = self._gap_cost(gap) if len(gap) <= MAX_GAP_COST else MAX_GAP_COST + 1
                # Bridge a cheap gap between runs that each save more than it costs.
                if cost <= MAX_GAP_COST and min(left[1] - left[0], end - start) >= RUN_PER_GAP_COST * cost:
                    left[1] = end
                    continue
            text.append([start, end])
        spans: list[tuple[bool, int, int]] = []
        pos = 0
        for start, end in text:
            if end - start < MIN_TEXT:
                continue  # an island: stays binary
            if start > pos:
                spans.append((False, pos, start))
            spans.append((True, start, end))
            pos = end
        if pos < len(buf):
            spans.append((False, pos, len(buf)))
        return spans

    def _take(self, final: bool) -> list[Segment]:
        buf = self._buf
        spans = self._spans(buf)
        keep_from = len(buf)
        if not final and spans:
            # The last span may still grow, or turn out to be a gap or an island: keep it,
            # and the text before a short trailing gap, which that gap may yet join to more text.
            is_text, start, end = spans[-1]
            keep_from = start
            if not is_text and end - start > _BINARY_HOLD:
                # Only the end of a long binary span can still change (into a gap or an island).
                keep_from = end - _BINARY_HOLD
            elif len(spans) >= 2 and not is_text and end - start <= MAX_GAP_COST:
                keep_from = spans[-2][1]
        out: list[Segment] = []
        for is_text, start, end in spans:
            if start >= keep_from:
                break
            self._emit(is_text, buf[start : min(end, keep_from)], out)
        rest = buf[keep_from:]
        if not final and len(rest) > 2 * self.max_size:
            # A long text run: hand out its first pieces now, so memory stays bounded.
            done = rest[: len(rest) - self.max_size]
            pieces = self._pieces(self._spans(rest)[0][0], done, final=False)
            taken = sum(len(p.data) for p in pieces)
            for p in pieces:
                self._emit(p.text, p.data, out)
            rest = rest[taken:]
        self._buf = rest
        if final:
            self._emit(True, b"", out)  # flush the binary bytes still pending
        return out

    def _emit(self, is_text: bool, data: bytes, out: list[Segment]) -> None:
        """Hand out final bytes. Binary bytes are gathered into segments of max_size:
        each binary segment costs a frame header and a zstd block boundary."""
        if not is_text:
            self._binary += data
            while len(self._binary) >= self.max_size:
                out.append(Segment(False, self._binary[: self.max_size]))
                self._binary = self._binary[self.max_size :]
            return
        if self._binary:
            out.append(Segment(False, self._binary))
            self._binary = b""
        out += self._pieces(True, data, final=True)

    def _pieces(self, is_text: bool, data: bytes, final: bool) -> list[Segment]:
        """data cut into segments of at most max_size; text is cut after a line break
        or between characters. Without ``final``, the last piece may be left out."""
        out = []
        while data and (final or len(data) > self.max_size):
            cut = min(len(data), self.max_size)
            if is_text and cut < len(data):
                cut = _text_cut(data, cut)
            out.append(Segment(is_text, data[:cut]))
            data = data[cut:]
        return out


def _text_cut(data: bytes, limit: int) -> int:
    """Where to end a text piece of at most limit bytes: after the last line
    break in its last quarter, else before a UTF-8 lead byte."""
    newline = data.rfind(b"\n", limit - limit // 4, limit)
    if newline >= 0:
        return newline + 1
    cut = limit
    while cut > limit - 3 and cut > 1 and 0x80 <= data[cut] <= 0xBF:
        cut -= 1
    return cut


def segments(blocks: Iterable[bytes], max_size: int, uncarried: Iterable[int] = ()) -> Iterator[Segment]:
    """The segments of the input given as blocks, in order."""
    segmenter = Segmenter(max_size, uncarried)
    for block in blocks:
        yield from segmenter.feed(block)
    yield from segmenter.finish()
