"""docs/format.md against the code: the spec is normative, and a
disagreement between the two is a bug in one of them, found here.

The worked example's hex dump is read from the document, parsed with the
code's readers, and written again with the code's writers, which must give
the same bytes; every row of the example's byte tables must match the dump.
No model is needed: the example's neural payload is only carried, not decoded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import struct
import zlib
from pathlib import Path

import pytest

from nacrith.format import (
    FOOTER_MAGIC,
    MAGIC,
    FrameHeader,
    FrameType,
    Header,
    IndexEntry,
    SingleFrame,
    Trailer,
    pack_ensemble,
    pack_single,
)
from nacrith.options import CompressOptions
from nacrith.settings import ENSEMBLE_LAYOUT, HYPERPARAMETERS, WIRE_MAX, Coding

SPEC = Path(__file__).resolve().parent.parent / "docs" / "format.md"
CONTENT = b"Hello, world!\n"


def example_section() -> str:
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("\nWorked example\n")
    end = text.index("**An empty file**", start)
    return text[start:end]


def example_dump() -> bytes:
    """The bytes of the example's first hex dump (xxd layout)."""
    section = example_section()
    block = section[section.index("```\n") + 4 :]
    block = block[: block.index("```")]
    data = bytearray()
    for line in block.splitlines():
        match = re.match(r"([0-9a-f]{8}): (.*?)(?:  |$)", line)
        assert match, f"not a hex dump line: {line!r}"
        assert int(match.group(1), 16) == len(data), "hex dump offsets are not contiguous"
        data += bytes.fromhex(match.group(2))
    return bytes(data)


def table_rows() -> list[tuple[int, str]]:
    """(offset, bytes column) of every row of the example's byte tables."""
    rows = []
    for line in example_section().splitlines():
        match = re.match(r"\| `0x([0-9A-F]+)` \| ([^|]*)\|", line)
        if match:
            rows.append((int(match.group(1), 16), match.group(2).strip()))
    return rows


DUMP = example_dump()
#: Where the example's parts start, as its tables give them.
HEADER_END, FRAME_END = 0x8B, 0x9A


def test_the_example_is_a_whole_file():
    assert len(DUMP) == 180
    assert DUMP.startswith(MAGIC) and DUMP.endswith(FOOTER_MAGIC)


@pytest.mark.parametrize(
    ("offset", "column"), table_rows(), ids=lambda v: hex(v) if isinstance(v, int) else ""
)
def test_every_table_row_matches_the_dump(offset, column):
    """A row's bytes (before any elision "…") are the dump's bytes at its offset."""
    shown = column.split("…")[0]
    hex_bytes = "".join(re.findall(r"`([0-9A-F ]+)`", shown)) or shown.replace("`", "")
    expected = bytes.fromhex(hex_bytes)
    assert expected, f"row at {offset:#x} shows no bytes"
    assert DUMP[offset : offset + len(expected)] == expected


def test_the_code_reads_the_example_header_as_the_spec_describes():
    header = Header.read(io.BytesIO(DUMP))
    assert header.model_id == bytes.fromhex(
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    )
    assert (header.vocab_size, header.context, header.slide) == (49152, 2048, 512)
    assert (header.temperature, header.escapes, header.frame_size) == (1.0, 256, 1 << 20)
    assert (header.start_token, header.content_size) == (0, 14)
    assert header.model_name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert header.environment == "0.3.36 cpu 2ce1275d avx2"
    assert header.ensemble is None and header.lanes == 1 and not header.zstd_stream


def test_the_code_writes_the_example_header_byte_for_byte():
    """The tags in the spec's order, the spec's varints and checksum."""
    header = Header.read(io.BytesIO(DUMP))
    assert header.pack() == DUMP[:HEADER_END]
    assert struct.unpack("<I", DUMP[HEADER_END - 4 : HEADER_END])[0] == zlib.crc32(DUMP[: HEADER_END - 4])


def test_the_code_reads_and_writes_the_example_frame():
    src = io.BytesIO(DUMP[HEADER_END:])
    fh = FrameHeader.read_after_type(src, FrameHeader.read_type(src), 1 << 20)
    assert fh == FrameHeader(FrameType.NEURAL, 14, 3, 5, zlib.crc32(CONTENT))
    assert fh.pack() + DUMP[FRAME_END - 3 : FRAME_END] == DUMP[HEADER_END:FRAME_END]


def test_the_code_reads_and_writes_the_example_trailer():
    trailer = Trailer.read_from_end(io.BytesIO(DUMP))
    assert trailer == Trailer(
        14, hashlib.sha256(CONTENT).digest()[:8], (IndexEntry(FrameType.NEURAL, 14, 3),)
    )
    assert trailer.pack() == DUMP[FRAME_END:]


def test_the_default_ensemble_tag_is_the_one_the_spec_gives():
    """The example's note: the default header adds ENSEMBLE, `0A 02 02 1F`."""
    match = re.search(r"`ENSEMBLE` tag, `0A 02 ([0-9A-F ]+)`", example_section().replace("\n", " "))
    assert match, "the example no longer gives the default ENSEMBLE tag"
    # The example's text is short: the default ensemble, without the context heads.
    assert pack_ensemble(CompressOptions().for_input(len(CONTENT)).ensemble) == bytes.fromhex(match.group(1))


# --- the ENSEMBLE settings' table ------------------------------------------------

#: The spec's names of the wire formats (settings.Hyperparameter.wire).
WIRE_NAMES = {"B": "uint8", "H": "uint16", "I": "uint32", "f": "float32"}


def ensemble_table() -> tuple[list[str], list[list[str]]]:
    """The header and rows of the spec's table of ENSEMBLE settings, cells stripped of backquotes."""
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("| Index | Setting")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return lines[0], lines[2:]


def spec_bounds(cell: str) -> tuple[float, float, bool, bool] | None:
    """(low, high, open_low, open_high) of a Range cell that gives plain numbers;
    None where it names another setting or SLIDE (a rule the table's bounds leave to the code)."""
    interval = re.match(r"([(\[])([\d.]+), ([\d.]+)([)\]])", cell)
    if interval:
        low, high = float(interval.group(2)), float(interval.group(3))
        return low, high, interval.group(1) == "(", interval.group(4) == ")"
    numbers = re.match(r"(\d+) … (\d+)", cell)
    if numbers:
        return int(numbers.group(1)), int(numbers.group(2)), False, False
    return None


def test_the_ensemble_table_of_the_spec_is_the_codes():
    """docs/format.md's table of ENSEMBLE settings and settings.HYPERPARAMETERS
    give the same index, name, value type, layout defaults and bounds for
    every setting: a row added to one is added to the other."""
    header, rows = ensemble_table()
    layouts = [i for i, name in enumerate(header) if name.startswith("Layout ")]
    assert [header[i] for i in layouts] == [f"Layout {n}" for n in range(1, ENSEMBLE_LAYOUT + 1)]
    by_tag = sorted(HYPERPARAMETERS, key=lambda row: row.tag)
    assert [int(cells[0]) for cells in rows] == [row.tag for row in by_tag]
    for cells, row in zip(rows, by_tag, strict=True):
        assert cells[1] == row.name
        assert cells[2] == WIRE_NAMES[row.wire], row.name
        assert [row.kind(cells[i]) for i in layouts] == list(row.layouts), row.name
        bounds = spec_bounds(cells[header.index("Range")])
        if cells[header.index("Range")].startswith("any"):
            assert (row.bounds.low, row.bounds.high) == (0, WIRE_MAX[row.wire]), row.name
        elif bounds is not None:
            b = row.bounds
            assert bounds == (b.low, b.high, b.open_low, b.open_high), row.name
    assert f"An index ≥ {len(by_tag)} is" in SPEC.read_text(encoding="utf-8").replace("\n", " ")


# --- version 2 ----------------------------------------------------------------


def worked_example(version: int) -> str:
    """The section "Worked example, version N", up to the next one."""
    text = SPEC.read_text(encoding="utf-8")
    text = text[text.index(f"\nWorked example, version {version}\n") :]
    following = text.find(f"\nWorked example, version {version + 1}\n")
    return text if following < 0 else text[:following]


def v2_section() -> str:
    return worked_example(2)


def v2_dump(section: str | None = None) -> bytes:
    section = section or v2_section()
    block = section[section.index("```\n") + 4 :]
    data = bytearray()
    for line in block[: block.index("```")].splitlines():
        match = re.match(r"([0-9a-f]{8}): (.*?)(?:  |$)", line)
        assert match, f"not a hex dump line: {line!r}"
        data += bytes.fromhex(match.group(2))
    return bytes(data)


V2_DUMP = v2_dump()


def v2_rows(section: str | None = None) -> list[tuple[int, str]]:
    rows = []
    for line in (section or v2_section()).splitlines():
        match = re.match(r"\| `0x([0-9A-F]+)` \| ([^|]*)\|", line)
        if match:
            rows.append((int(match.group(1), 16), match.group(2).strip()))
    return rows


@pytest.mark.parametrize(("offset", "column"), v2_rows(), ids=lambda v: hex(v) if isinstance(v, int) else "")
def test_every_version_2_row_matches_its_dump(offset, column):
    expected = bytes.fromhex(column.replace("`", ""))
    assert V2_DUMP[offset : offset + len(expected)] == expected


def test_the_code_reads_and_writes_the_version_2_example():
    """Default settings throughout: the header is 14 bytes, the file 23."""
    header, header_bytes = Header.read_bytes(io.BytesIO(V2_DUMP))
    assert header_bytes == V2_DUMP[:14] and header.pack() == header_bytes
    assert header.version == 2 and header.single == FrameType.NEURAL
    assert header.model_id == bytes.fromhex("b179c9523d0e6a0f")
    assert (header.context, header.slide, header.temperature, header.frame_size) == (2048, 512, 1.0, 1 << 20)
    assert header.vocab_size is None and header.start_token is None  # the model's
    assert header.ensemble == CompressOptions().for_input(len(CONTENT)).ensemble
    assert header.coding == Coding(2, True)
    assert (header.lanes, header.min_stream) == (16, 10240)
    assert header.environment == "0.3.36 cpu 2ce1275d avx2"
    stream = io.BytesIO(V2_DUMP)
    Header.read(stream)
    one = SingleFrame.read(stream, header, header_bytes)
    assert one.header == FrameHeader(FrameType.NEURAL, 14, 3, 5, 0)
    assert one.matches(CONTENT) and not one.matches(b"Hello, world?\n")
    assert pack_single(header, CONTENT, one.payload, 5) == V2_DUMP
    assert struct.unpack("<I", V2_DUMP[-4:])[0] == zlib.crc32(V2_DUMP[:-4] + CONTENT)


def test_the_version_2_empty_file_is_the_one_the_spec_gives():
    section = v2_section()
    block = section[section.index("**An empty file**") :]
    block = block[block.index("```\n") + 4 :]
    shown = bytes.fromhex(
        "".join(
            re.match(r"((?:[0-9A-F]{2} )+)", line).group(1)
            for line in block[: block.index("```")].splitlines()
        )
    )
    header = Header.without_model(1 << 25, zstd_stream=False, version=2)
    assert pack_single(dataclasses.replace(header, single=FrameType.STORED), b"", b"", 0) == shown


# --- version 3 ----------------------------------------------------------------

V3_DUMP = v2_dump(worked_example(3))


@pytest.mark.parametrize(
    ("offset", "column"), v2_rows(worked_example(3)), ids=lambda v: hex(v) if isinstance(v, int) else ""
)
def test_every_version_3_row_matches_its_dump(offset, column):
    expected = bytes.fromhex(column.replace("`", ""))
    assert V3_DUMP[offset : offset + len(expected)] == expected


def test_the_code_reads_and_writes_the_version_3_example():
    """Version 2's example with its version byte and Payload_Size: 24 bytes."""
    header, header_bytes = Header.read_bytes(io.BytesIO(V3_DUMP))
    assert header.version == 3 and header_bytes == V3_DUMP[:14] and header.pack() == header_bytes
    assert dataclasses.replace(header, version=2).pack() == V2_DUMP[:14]
    stream = io.BytesIO(V3_DUMP)
    Header.read(stream)
    one = SingleFrame.read(stream, header, header_bytes)
    assert one.header == FrameHeader(FrameType.NEURAL, 14, 3, 5, 0) and one.payload == V2_DUMP[16:19]
    assert one.matches(CONTENT)
    assert pack_single(header, CONTENT, one.payload, 5) == V3_DUMP
