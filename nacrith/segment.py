"""Splits any input into text and binary segments, reading it block by block.

Text is what the language model can code well: printable ASCII, tabs and
line breaks, and well-formed UTF-8 outside the control characters, made only
of bytes the tokenizer carries. Everything else is binary. Three rules then
smooth the split, with thresholds measured by benchmarks/segment_thresholds.py
(docs/measurements.md, "Segmentation"):

- A binary gap inside text is coded in place (as tokens, or as escapes for
  bytes the tokenizer lacks, which never reach the model) when that is
  cheaper than ending the text frame and starting another.
- A short binary run at the start or end of the input, next to text, is
  coded in place too when that is cheaper than a binary segment of its own
  (BINARY_SEGMENT_COST bytes beyond its data): alice29.txt's last byte, a DOS
  end-of-file mark (0x1A), would otherwise cost a frame.
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

__all__ = [
    "BINARY_SEGMENT_COST",
    "MAX_GAP_COST",
    "MIN_RUN",
    "MIN_TEXT",
    "RUN_PER_GAP_COST",
    "Segment",
    "Segmenter",
    "segments",
]

#: Shortest text run worth a neural frame of its own (bytes): shorter ones cost
#: less inside the zstd stream (docs/measurements.md, "Segmentation").
MIN_TEXT = 96
#: Largest cost of a gap coded inside text (see Segmenter._gap_cost: 1 per
#: control byte the tokenizer carries, 3 per escaped byte): docs/measurements.md.
MAX_GAP_COST = 96
#: A gap is bridged only between text runs at least this many times its cost
#: long: shorter runs cannot pay for it (docs/measurements.md, "Segmentation").
RUN_PER_GAP_COST = 3
#: What a short binary segment costs beyond its bytes, at least: its frame's
#: header and index entry, and zstd's frame around the bytes; more where it
#: turns a file of one frame into one of several (docs/measurements.md,
#: "Segmentation"). A binary run at an end of the input is coded in place
#: when its gap cost is less than this plus its length.
BINARY_SEGMENT_COST = 23
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


def _text_char(uncarried: frozenset[int]) -> bytes:
    """A pattern of one text character made only of bytes the tokenizer carries."""
    alternatives = [_byte_class(bytes(b for b in _ASCII_TEXT if b not in uncarried))]
    # (A tokenizer lacking a continuation byte is not known; its multi-byte text is left binary.)
    if not uncarried & set(range(0x80, 0xC0)):
        for leads, tail in _MULTIBYTE:
            kept = bytes(b for b in leads if b not in uncarried)
            if kept:
                alternatives.append(_byte_class(kept) + tail)
    return b"(?:" + b"|".join(alternatives) + b")"


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
        char = _text_char(self.uncarried)
        self._pattern = re.compile(char + b"{%d,}" % MIN_RUN)  # runs of text characters
        self._chars = re.compile(char + b"*")
        self._buf = b""
        self._binary = b""  # final binary bytes not yet handed out
        self._consumed = 0  # bytes of input before self._buf
        #: Bytes of the text span that self._buf starts inside, handed out
        #: already (a long text span's first pieces), and how much of self._buf
        #: is known to be that span's: the span goes on as when the whole input
        #: is looked at at once, its length counting for the gaps after it.
        self._text_before = 0
        self._text_held = 0

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

    def _bounded_gap_cost(self, buf: bytes, start: int, end: int) -> int:
        """The gap cost of buf[start:end], or MAX_GAP_COST + 1 for one longer than
        MAX_GAP_COST bytes, too dear whatever its bytes (and not sliced: it may
        be a whole block of binary)."""
        if end - start > MAX_GAP_COST:
            return MAX_GAP_COST + 1
        return self._gap_cost(buf[start:end])

    def _cheaper_in_place(self, buf: bytes, start: int, end: int) -> bool:
        """Whether the binary run buf[start:end], next to text, costs less coded
        in it than as a segment of its own."""
        cost = self._bounded_gap_cost(buf, start, end)
        return cost <= MAX_GAP_COST and cost < BINARY_SEGMENT_COST + end - start

    def _chains(self, buf: bytes) -> list[list[int]]:
        """The runs of text in buf, those bridged by cheap gaps joined into
        chains: [start, end]. A chain from before buf (the text span handed
        out so far) starts before 0."""
        chains: list[list[int]] = []
        if self._text_before:
            # The text span handed out so far, as a run, as far as its text characters go.
            held = self._chars.match(buf, self._text_held)
            chains.append([-self._text_before, held.end() if held else self._text_held])
        for m in self._pattern.finditer(buf, chains[0][1] if chains else 0):
            start, end = m.span()
            if chains:
                left = chains[-1]
                cost = self._bounded_gap_cost(buf, left[1], start)
                # Bridge a cheap gap between runs that each save more than it costs.
                if cost <= MAX_GAP_COST and min(left[1] - left[0], end - start) >= RUN_PER_GAP_COST * cost:
                    left[1] = end
                    continue
            chains.append([start, end])
        return chains

    def _spans(
        self, buf: bytes, final: bool = False, chains: list[list[int]] | None = None
    ) -> list[tuple[bool, int, int]]:
        """(is_text, start, end) covering buf, adjacent spans of different kinds.
        ``final``: buf ends the input, so a binary run at its end is at the input's end."""
        spans: list[tuple[bool, int, int]] = []
        pos = 0
        for start, end in self._chains(buf) if chains is None else chains:
            if end - start < MIN_TEXT:
                continue  # an island: stays binary
            # The span handed out so far may end where buf starts: it stays, empty,
            # so that what follows it is still next to text.
            start = max(start, 0)
            if start > pos:
                spans.append((False, pos, start))
            spans.append((True, start, end))
            pos = end
        if pos < len(buf):
            spans.append((False, pos, len(buf)))
        # The input's own ends: a short binary run there joins the text next to it.
        # (Known only there: the start before anything is handed out, the end at finish.)
        if (
            len(spans) >= 2
            and self._consumed == 0
            and not spans[0][0]
            and self._cheaper_in_place(buf, 0, spans[0][2])
        ):
            spans[:2] = [(True, 0, spans[1][2])]
        if (
            final
            and len(spans) >= 2
            and not spans[-1][0]
            and self._cheaper_in_place(buf, spans[-1][1], len(buf))
        ):
            spans[-2:] = [(True, spans[-2][1], len(buf))]
        return spans

    def _undecided_from(self, buf: bytes, chains: list[list[int]]) -> int:
        """Where the bytes that more input may still re-classify begin: the chain
        that a run still arriving at buf's end (or starting there) may yet be
        bridged to, or that run's own chain. A run still arriving decides its
        gap once it is long enough; until then it may be an island."""
        growing = bool(chains) and chains[-1][1] >= len(buf) - 3  # within a character of the end
        if growing and not self._one_run(buf, chains[-1]):
            return max(0, chains[-1][0])  # its gap before is bridged already: the chain can only grow
        if growing:
            before, run_start = (chains[-2] if len(chains) >= 2 else None), chains[-1][0]
        else:
            # Buf's last bytes may start a run: up to MIN_RUN - 1 characters and
            # part of another, 4 bytes each at most.
            before, run_start = (chains[-1] if chains else None), max(0, len(buf) - 4 * MIN_RUN + 1)
        decided = chains[-1][0] if growing else len(buf)
        if before is None:
            return decided
        cost = self._bounded_gap_cost(buf, before[1], max(before[1], run_start))
        # The chain before is complete: too short for the gap, it never will be long enough.
        if cost > MAX_GAP_COST or before[1] - before[0] < RUN_PER_GAP_COST * cost:
            return decided
        return before[0]

    def _one_run(self, buf: bytes, chain: list[int]) -> bool:
        """Whether a chain is a single run of text, bridged to nothing before it."""
        run = self._pattern.match(buf, chain[0]) if chain[0] >= 0 else None
        return run is not None and run.end() == chain[1]

    def _keep_from(self, buf: bytes, spans: list[tuple[bool, int, int]], chains: list[list[int]]) -> int:
        """Where the bytes that must wait for more input begin: the last span,
        which may still grow or turn out to be a gap or an island, and whatever
        the text still arriving may yet join."""
        is_text, start, end = spans[-1]
        keep_from = start
        if not is_text and end - start > _BINARY_HOLD:
            # Only the end of a long binary span can still change (into a gap or an island).
            keep_from = end - _BINARY_HOLD
        elif not is_text and len(spans) >= 2 and self._cheaper_in_place(buf, start, end):
            keep_from = spans[-2][1]  # if the input ends here, the text before takes it in
        keep_from = max(0, min(keep_from, self._undecided_from(buf, chains)))
        first = chains[0][0] if chains else len(buf)
        if self._consumed == 0 and keep_from <= first and self._cheaper_in_place(buf, 0, first):
            keep_from = 0  # the input's first text may yet join the short run before it
        # Text is handed out in whole spans (or in the pieces of _take), never cut here.
        return next((a for t, a, b in spans if t and a < keep_from < b), keep_from)

    def _take(self, final: bool) -> list[Segment]:
        buf = self._buf
        chains = self._chains(buf)
        spans = self._spans(buf, final, chains)
        keep_from = len(buf) if final or not spans else self._keep_from(buf, spans, chains)
        del chains  # an entry per run of text, many in binary data: not kept while handing out
        out: list[Segment] = []
        for is_text, start, end in spans:
            if start >= keep_from:
                break
            self._emit(is_text, buf[start : min(end, keep_from)], out)
        rest = buf[keep_from:]
        self._consumed += keep_from
        if keep_from:  # what is left starts after the text handed out
            self._text_before = self._text_held = 0
        if not final and len(rest) > 2 * self.max_size:
            # A long text span: hand out its first pieces now, so memory stays bounded.
            # (Binary kept back is at most _BINARY_HOLD and a few gaps' worth, and may
            # still change: it waits.)
            is_text, _, text_end = self._spans(rest)[0]
            done = rest[: min(len(rest) - self.max_size, text_end)] if is_text else b""
            pieces = self._pieces(True, done, final=False)
            taken = sum(len(p.data) for p in pieces)
            for p in pieces:
                self._emit(p.text, p.data, out)
            rest = rest[taken:]
            self._consumed += taken
            self._text_before += taken
            self._text_held = text_end - taken if taken else self._text_held
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
