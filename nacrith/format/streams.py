"""How a neural frame is split into streams, and its payload of several
streams' coded bytes (docs/format.md, "Lanes"): a function of the frame and
the header only, never of the machine."""

from __future__ import annotations

import io

from nacrith.errors import FormatError, TruncatedError
from nacrith.format.primitives import Cursor, pack_varint


def stream_bounds(n_symbols: int, lanes: int, min_stream: int) -> list[int]:
    """The split of a neural frame's symbols into streams: ``S + 1`` bounds,
    stream k holding symbols ``bounds[k] … bounds[k+1] - 1``.

    ``S = min(lanes, max(1, n_symbols // min_stream))`` streams of equal size,
    the first ``n_symbols mod S`` one symbol longer. It depends only on the
    frame and the header, never on the machine that codes it.
    """
    if lanes <= 1 or n_symbols < 2 * min_stream:
        return [0, n_symbols]
    count = min(lanes, n_symbols // min_stream)
    size, longer = divmod(n_symbols, count)
    bounds = [0]
    for k in range(count):
        bounds.append(bounds[-1] + size + (1 if k < longer else 0))
    return bounds


def pack_streams(payloads: list[bytes]) -> bytes:
    """A neural frame's payload of several streams: the sizes of all but the
    last stream's coded bytes (varints), then the coded bytes in order."""
    return b"".join(pack_varint(len(p)) for p in payloads[:-1]) + b"".join(payloads)


def unpack_streams(payload: bytes, count: int) -> list[bytes]:
    """Inverse of pack_streams for ``count`` streams; FormatError when the sizes do not fit."""
    if count == 1:
        return [payload]
    cur = Cursor(io.BytesIO(payload), "neural frame")
    sizes = []
    try:
        for _ in range(count - 1):
            sizes.append(cur.varint())
    except TruncatedError:
        raise FormatError("corrupt neural frame: its stream sizes run past the payload") from None
    pos = len(cur.seen)
    rest = len(payload) - pos - sum(sizes)
    if rest < 1 or any(size < 1 for size in sizes):
        raise FormatError("corrupt neural frame: its stream sizes do not fit the payload")
    parts = []
    for size in [*sizes, rest]:
        parts.append(payload[pos : pos + size])
        pos += size
    return parts
