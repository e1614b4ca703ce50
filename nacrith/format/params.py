"""What both header layouts read alike: the tag-length-value parameter block
and the values of LANES and CODING, each with the one spelling a header has
(a value at its default is left out, so one written at it is corrupt)."""

from __future__ import annotations

import io

from nacrith.errors import FormatError, TruncatedError, UnsupportedVersionError
from nacrith.format.constants import TAG_IGNORABLE, Tag
from nacrith.format.primitives import Cursor, pack_varint
from nacrith.settings import ARITHMETICS, LEGACY_CODING, Coding, check_lanes


def put_param(params: bytearray, tag: int, value: bytes) -> None:
    """Append one parameter: its tag, the length of its value (varint), the value."""
    params.extend(bytes([tag]) + pack_varint(len(value)) + value)


def parse_params(params: bytes) -> dict[int, bytes]:
    """Tag-length-value triples: each tag once; an unknown one only if ignorable."""
    cur = Cursor(io.BytesIO(params), "file header")
    fields: dict[int, bytes] = {}
    while len(cur.seen) < len(params):
        try:
            tag = cur.u8()
            length = cur.varint()
            value = cur.take(length)
        except TruncatedError:
            # The block's size was read, so this is a malformed parameter list, not a short file.
            raise FormatError("corrupt file header: a parameter runs past the parameter block") from None
        if tag in fields:
            raise FormatError(f"corrupt file header: parameter {tag:#04x} appears twice")
        if tag not in Tag._value2member_map_ and not tag & TAG_IGNORABLE:
            raise UnsupportedVersionError(
                f"file needs header parameter {tag:#04x}, which this nacrith does not know"
            )
        fields[tag] = value
    return fields


def coding_from(value: bytes, default: Coding = LEGACY_CODING) -> Coding:
    """The CODING value; FormatError for one written at `default` (a header has one spelling)."""
    cur = Cursor(io.BytesIO(value), "header parameter CODING")
    try:
        arith, shared = cur.varint(), cur.u8()
    except TruncatedError:
        raise FormatError("corrupt file header: CODING cut short") from None
    if len(cur.seen) != len(value):
        raise FormatError("corrupt file header: trailing bytes in CODING")
    if arith not in ARITHMETICS:
        known = ", ".join(map(str, ARITHMETICS))
        raise UnsupportedVersionError(f"file uses arithmetic {arith}; this nacrith knows arithmetics {known}")
    if shared > 1:
        raise FormatError(f"corrupt file header: CODING sharing flag {shared}")
    coding = Coding(arith, bool(shared))
    if coding == default:  # written by leaving the tag out: a header has one spelling
        raise FormatError("corrupt file header: CODING written at its default")
    return coding


def lanes_from(value: bytes, default: tuple[int, int] = (1, 0)) -> tuple[int, int]:
    """The LANES value (lanes, fewest symbols per stream); FormatError for one written at `default`."""
    cur = Cursor(io.BytesIO(value), "header parameter LANES")
    try:
        lanes, min_stream = cur.varint(), cur.varint()
    except TruncatedError:
        raise FormatError("corrupt file header: LANES cut short") from None
    if len(cur.seen) != len(value):
        raise FormatError("corrupt file header: trailing bytes in LANES")
    if (lanes, min_stream) == default:  # written by leaving the tag out: a header has one spelling
        raise FormatError("corrupt file header: LANES written at its default")
    try:
        if lanes < 1 or (lanes == 1 and min_stream != 0):  # one lane has no fewest symbols per stream
            raise ValueError
        if lanes > 1:
            check_lanes(lanes, min_stream)
    except ValueError:
        raise FormatError(f"corrupt file header: {lanes} lanes of at least {min_stream} symbols") from None
    return lanes, min_stream
