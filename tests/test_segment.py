"""The text/binary segmenter on its own: no model needed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nacrith.segment import BINARY_SEGMENT_COST, MAX_GAP_COST, MIN_TEXT, RUN_PER_GAP_COST, Segmenter, segments

PROSE = (
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading.\n"
)
#: The bytes SmolLM2's tokenizer has no token for.
SMOLLM2_UNCARRIED = frozenset([0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 256)])


_NEVER_TEXT = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), *range(0xF8, 0x100)])


def noise(n: int, seed: int = 0) -> bytes:
    """Binary bytes none of which can be part of text, so a test knows where text ends."""
    rng = random.Random(seed)
    return bytes(rng.choice(_NEVER_TEXT) for _ in range(n))


def split(data: bytes, max_size: int = 1 << 20, block: int | None = None, uncarried=SMOLLM2_UNCARRIED):
    block = block or max_size
    return list(segments((data[i : i + block] for i in range(0, len(data), block)), max_size, uncarried))


def kinds(segs) -> list[tuple[bool, int]]:
    return [(s.text, len(s.data)) for s in segs]


def test_empty_input_has_no_segments():
    assert split(b"") == []


def test_text_alone_is_one_text_segment():
    assert kinds(split(PROSE * 3)) == [(True, 3 * len(PROSE))]


def test_utf8_is_text():
    text = "Été à Zürich, 東京で寿司を食べた, emoji 🎉 and Ελληνικά.\n".encode() * 4
    assert kinds(split(text)) == [(True, len(text))]


def test_text_between_binary_is_its_own_segment():
    data = noise(500) + PROSE * 2 + noise(400, 1)
    segs = split(data)
    assert [s.text for s in segs] == [False, True, False]
    assert segs[1].data == PROSE * 2


def test_short_text_island_stays_binary():
    island = PROSE[: MIN_TEXT - 1]
    data = noise(300) + island + noise(300, 1)
    assert kinds(split(data)) == [(False, len(data))]
    data = noise(300) + PROSE[:MIN_TEXT] + noise(300, 1)
    assert [s.text for s in split(data)] == [False, True, False]


def test_short_gap_in_text_is_bridged():
    data = PROSE + b"\x00\x00\x01" + PROSE
    assert kinds(split(data)) == [(True, len(data))]


def test_long_gap_splits_text():
    data = PROSE * 2 + bytes(MAX_GAP_COST + 1) + PROSE * 2
    assert [s.text for s in split(data)] == [True, False, True]


def test_gap_next_to_short_text_splits_it():
    """A run must be RUN_PER_GAP_COST times the gap's cost to be worth bridging it."""
    short = PROSE[:100]
    data = PROSE * 2 + bytes(40) + short
    assert len(short) < RUN_PER_GAP_COST * 40
    assert [s.text for s in split(data)] == [True, False, True]


def test_bytes_the_tokenizer_lacks_cost_more():
    """0x04 has no token: a gap of them is escaped, so the budget runs out three times faster."""
    long_text = PROSE * 2  # long enough to pay for the largest gap
    cheap = long_text + bytes(MAX_GAP_COST) + long_text
    assert [s.text for s in split(cheap)] == [True]
    costly = long_text + b"\x04" * (MAX_GAP_COST // 3 + 1) + long_text
    assert [s.text for s in split(costly)] == [True, False, True]


def test_text_made_of_missing_bytes_is_binary():
    """U+40000..U+BFFFF start with 0xF1/0xF2, which SmolLM2 lacks: never a text run."""
    rare = "\U00050000".encode() * 200
    assert kinds(split(rare)) == [(False, len(rare))]
    assert kinds(split(rare, uncarried=())) == [(True, len(rare))]


def test_scattered_printable_bytes_in_binary_do_not_chain_into_text():
    """Binary with printable bytes here and there (tables of small integers) stays binary."""
    data = b"".join(bytes([0x41 + i % 26, 0, 0, 0]) for i in range(2000))
    assert kinds(split(data)) == [(False, len(data))]
    utf16 = "A text in UTF-16 little-endian, as Windows writes it. ".encode("utf-16-le") * 10
    assert kinds(split(utf16)) == [(False, len(utf16))]


def test_segments_respect_max_size_and_cut_text_after_a_line():
    data = PROSE * 40
    segs = split(data, max_size=1000)
    assert all(len(s.data) <= 1000 for s in segs)
    assert all(s.text for s in segs)
    assert all(s.data.endswith(b"\n") for s in segs[:-1])
    assert b"".join(s.data for s in segs) == data


def test_text_cut_never_splits_a_character():
    data = "ü".encode() * 3000
    segs = split(data, max_size=1001)
    assert all(s.data.decode() for s in segs)


def test_long_runs_come_out_before_the_input_ends():
    """Memory stays bounded: a segmenter fed 10 MB of text hands most of it out on the way."""
    segmenter = Segmenter(1 << 16, SMOLLM2_UNCARRIED)
    out = 0
    for _ in range(160):
        out += sum(len(s.data) for s in segmenter.feed(PROSE * 350))
        assert len(segmenter._buf) <= 3 * (1 << 16) + len(PROSE) * 350
    assert out > 150 * len(PROSE) * 350


def test_a_long_text_after_a_short_binary_start_comes_out_on_the_way():
    """The input's first text may yet join a short binary run before it, so that
    run waits; one too dear to join never holds back the text after it."""
    segmenter = Segmenter(1 << 16, SMOLLM2_UNCARRIED)
    out = segmenter.feed(b"\xff" * 40)  # escapes, 3 bytes each: dearer than a segment
    for _ in range(100):
        out += segmenter.feed(PROSE * 100)
        assert len(segmenter._buf) <= 3 * (1 << 16) + len(PROSE) * 100
    assert kinds(out[:1]) == [(False, 40)] and all(seg.text for seg in out[1:]) and len(out) > 20


@pytest.mark.parametrize("block", [1 << 16, 4096, 777])
def test_same_split_however_the_input_arrives(block):
    """Blocks smaller than a segment give the same split as the whole input at once."""
    data = noise(5000) + PROSE * 5 + bytes(10) + PROSE + noise(3000, 2) + PROSE[:50] + noise(100, 3)
    assert kinds(split(data, max_size=1 << 16, block=block)) == kinds(split(data, max_size=1 << 16))


PIECES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([PROSE, PROSE[:40], "naïve café ☕\n".encode(), b"\r\n", b"<|endoftext|>"]),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\x00" * 30, b"\x04\x06\x13", "\U00040000".encode(), b"\xff\xfe", b"\xc0\xaf"]),
)


@given(st.lists(PIECES, max_size=12), st.sampled_from([64, 500, 1 << 20]), st.sampled_from([64, 333, 4096]))
def test_segments_cover_the_input_exactly(pieces, max_size, block):
    data = b"".join(pieces)
    segs = split(data, max_size=max_size, block=block)
    assert b"".join(s.data for s in segs) == data
    assert all(0 < len(s.data) <= max_size for s in segs)


@given(st.lists(PIECES, max_size=12))
def test_text_segments_hold_only_cheap_gaps(pieces):
    """Inside a text segment, the bytes that are not text characters form only gaps
    within budget; a text segment starts and ends with text, except at the input's
    own ends, where a binary run joins it only when cheaper than a segment of its own."""
    data = b"".join(pieces)
    segmenter = Segmenter(1 << 20, SMOLLM2_UNCARRIED)
    segs = split(data)
    for i, seg in enumerate(segs):
        if not seg.text:
            continue
        assert len(seg.data) >= MIN_TEXT
        pos = 0
        for m in segmenter._pattern.finditer(seg.data):
            gap = seg.data[pos : m.start()]
            assert segmenter._gap_cost(gap) <= MAX_GAP_COST
            if pos == 0 and gap:
                assert i == 0 and segmenter._cheaper_in_place(gap, 0, len(gap)), (
                    "text starts with text, but at the input's start"
                )
            pos = m.end()
        end = seg.data[pos:]
        assert not end or (i == len(segs) - 1 and segmenter._cheaper_in_place(end, 0, len(end))), (
            "text ends with text"
        )


def test_a_short_binary_run_at_an_end_of_the_input_is_coded_in_place():
    """alice29.txt ends with a DOS end-of-file mark (0x1A): a binary segment of its
    own would cost a frame, about BINARY_SEGMENT_COST bytes; in the text, about one."""
    text = PROSE * 2
    assert kinds(split(text + b"\x1a")) == [(True, len(text) + 1)]
    assert kinds(split(b"\x1b[1m" + text + b"\x00\x00")) == [(True, len(text) + 6)]
    # A byte the tokenizer lacks is an escape of about 3 bytes: a run of them joins
    # while that costs less than the segment would, its bytes included.
    lacking = bytes([0x04])
    joined = (BINARY_SEGMENT_COST - 1) // 2
    assert 3 * joined < BINARY_SEGMENT_COST + joined <= 3 * (joined + 1) - 1
    assert kinds(split(text + lacking * joined)) == [(True, len(text) + joined)]
    assert kinds(split(text + lacking * (joined + 1))) == [(True, len(text)), (False, joined + 1)]
    assert kinds(split(lacking * (joined + 1) + text)) == [(False, joined + 1), (True, len(text))]
    long = bytes(MAX_GAP_COST + 1)
    assert kinds(split(text + long)) == [(True, len(text)), (False, len(long))]
    # Only the input's ends: binary next to text inside it is a gap or a segment as before.
    middle = text + long + b"\x1a" + text
    assert kinds(split(middle)) == [(True, len(text)), (False, len(long) + 1), (True, len(text))]


@given(
    st.lists(st.one_of(PIECES, st.sampled_from([PROSE * 3, noise(97), bytes(95)])), max_size=14),
    st.sampled_from([1, 7, 64, 333]),
    st.sampled_from([64, 200, 1 << 16]),
)
def test_same_split_in_any_blocks(pieces, block, max_size):
    """However the input arrives, its split is the same: at its ends, across gaps
    whose text after them is still arriving, and through a long text's pieces
    handed out on the way."""
    data = b"".join(pieces)
    whole = split(data, max_size=max_size, block=max(1, len(data)))
    assert kinds(split(data, max_size=max_size, block=block)) == kinds(whole)


@pytest.mark.parametrize("block", [1 << 16, 5000])
def test_long_binary_comes_out_whole_in_full_segments(block):
    """Binary is handed out on the way (memory stays bounded) but gathered into segments
    of max_size: each binary segment costs a frame and a zstd block boundary."""
    data = noise(300_000) + PROSE * 3 + noise(100_000, 1)
    segs = split(data, max_size=1 << 16, block=block)
    assert b"".join(s.data for s in segs) == data
    first_text = next(i for i, s in enumerate(segs) if s.text)
    assert [len(s.data) for s in segs[:first_text]] == [1 << 16] * 4 + [300_000 - 4 * (1 << 16)]
    assert segs[first_text].data == PROSE * 3
