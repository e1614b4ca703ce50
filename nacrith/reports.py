"""What a compress or decompress call reports: its progress as it goes, and
its summary at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nacrith.engine import FrameStats, Progress

__all__ = ["ProgressFor", "ProgressInfo", "StreamProgress", "Summary", "frame_progress"]


@dataclass
class Summary:
    """What a compress or decompress call did."""

    raw_bytes: int = 0
    coded_bytes: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    #: Cost of the frames written as neural (what a decoder runs the model over).
    stats: FrameStats = field(default_factory=FrameStats)
    #: Symbols the model coded, including frames that then went out as zstd or stored.
    model_symbols: int = 0
    #: Segments the input was split into, and their bytes, by kind ("text", "binary").
    segments: dict[str, int] = field(default_factory=dict)
    segment_bytes: dict[str, int] = field(default_factory=dict)
    #: The segmented file lost to zstd alone, which was written instead.
    zstd_only: bool = False

    @property
    def bpb(self) -> float:
        return 8 * self.coded_bytes / self.raw_bytes if self.raw_bytes else 0.0


@dataclass(frozen=True)
class ProgressInfo:
    """Where a compress or decompress call stands, for progress displays."""

    #: Raw bytes done; inside a frame, estimated from the share of its symbols done.
    bytes_done: int
    #: Symbols coded so far, all frames together.
    symbols: int
    #: Bits written so far (compression only; 0 when decoding).
    coded_bits: float
    #: The bytes the whole call will have done, when known beforehand (a
    #: decoder knows it from the file; a compressor's caller knows the input's size).
    total_bytes: int | None = None


StreamProgress = Callable[[ProgressInfo], None]
#: Given a frame's symbol count, the engine's progress callback for it (or None).
ProgressFor = Callable[[int], "Progress | None"]


def frame_progress(
    progress: StreamProgress | None, summary: Summary, frame_bytes: int, frame_symbols: int
) -> Progress | None:
    """Adapt the engine's per-frame callback to whole-stream progress."""
    if progress is None or frame_symbols == 0:
        return None
    base_bytes, base_symbols = summary.raw_bytes, summary.model_symbols
    base_bits = 8 * summary.coded_bytes

    def report(symbols: int, bits: float) -> None:
        progress(
            ProgressInfo(
                base_bytes + frame_bytes * symbols // frame_symbols,
                base_symbols + symbols,
                base_bits + bits if bits else 0.0,  # decoding reports no bits
            )
        )

    return report
