"""Measure where text inside binary data pays for a neural frame, and where a
binary gap inside text is cheaper to code in place than to split around.

    python benchmarks/segment_thresholds.py [--corpus DIR] [--threads N]

Islands: a text snippet of L bytes between two pieces of binary data costs
either its share of the shared zstd stream (the binary bytes around it with
and without it, as segment.py's binary frames code them) or a neural frame of
its own plus that frame's header and index entry.

Gaps: a text of 2 x 600 bytes with a gap of G binary bytes in the middle
costs either one neural frame over all of it (the gap's bytes as tokens or
escapes) or two neural frames with the gap in the zstd stream.

The printed tables are what segment.py's thresholds were set from.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import zstandard

from nacrith.engine import encode_streams
from nacrith.format import ESCAPE_SYMBOLS, FrameHeader, FrameType, pack_varint
from nacrith.frameparams import FrameParams
from nacrith.models.llm import LanguageModel
from nacrith.settings import Coding, EnsembleSettings
from nacrith.zstdio import ZSTD_LEVEL

TEXTS = ("alice29.txt", "cp.html", "fields.c")
BINARIES = ("kennedy.xls", "sum", "ptt5")
LENGTHS = (8, 16, 24, 32, 48, 64, 96, 128, 256)
GAPS = (1, 2, 4, 8, 16, 32, 64)
SAMPLES = 6


def frame_overhead(ftype: FrameType, raw: int, payload: int) -> int:
    """Bytes a frame adds besides its payload: its header and its index entry."""
    header = FrameHeader(ftype, raw, payload, raw if ftype == FrameType.NEURAL else 0, 0).pack()
    return len(header) + 1 + len(pack_varint(raw)) + len(pack_varint(payload))


def zstd_stream_size(*parts: bytes) -> int:
    """Bytes of one zstd stream over parts, flushed after each (as binary frames are)."""
    c = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False, write_checksum=False)
    obj = c.compressobj()
    n = 0
    for part in parts:
        n += len(obj.compress(part)) + len(obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    return n


def neural_size(model: LanguageModel, data: bytes) -> int:
    symbols = model.symbols.encode(data)
    params = FrameParams(2048, 512, 1.0, EnsembleSettings(), Coding(), 1, 0, model.start_token)
    payloads, _ = encode_streams(model.predictor(params), params, [symbols], ESCAPE_SYMBOLS)
    return len(payloads[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpora/canterbury"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(5)
    texts = [(args.corpus / n).read_bytes() for n in TEXTS]
    binaries = [(args.corpus / n).read_bytes() for n in BINARIES]
    model = LanguageModel(threads=args.threads)

    print("islands: bytes a text snippet of L bytes costs, averaged over samples")
    print(f"{'L':>5} {'in zstd':>9} {'neural+frame':>13}")
    for length in LENGTHS:
        in_zstd = neural = 0
        for _ in range(SAMPLES):
            text = rng.choice(texts)
            start = rng.randrange(len(text) - length)
            snippet = text[start : start + length]
            binary = rng.choice(binaries)
            at = rng.randrange(len(binary) - 8192)
            before, after = binary[at : at + 4096], binary[at + 4096 : at + 8192]
            in_zstd += zstd_stream_size(before + snippet + after) - zstd_stream_size(before, after)
            n = neural_size(model, snippet)
            neural += n + frame_overhead(FrameType.NEURAL, length, n)
        print(f"{length:>5} {in_zstd / SAMPLES:>9.1f} {neural / SAMPLES:>13.1f}", flush=True)

    print("\ngaps: bytes of 600 + G + 600 bytes, the gap coded in place or split out")
    print(f"{'G':>5} {'kind':>7} {'in place':>9} {'split':>9}")
    for gap in GAPS:
        for kind in ("nul", "binary"):
            in_place = split = 0
            for _ in range(SAMPLES // 2):
                text = rng.choice(texts)
                start = rng.randrange(len(text) - 1200)
                left, right = text[start : start + 600], text[start + 600 : start + 1200]
                if kind == "nul":
                    middle = bytes(gap)
                else:
                    binary = rng.choice(binaries)
                    at = rng.randrange(len(binary) - gap)
                    middle = binary[at : at + gap]
                whole = neural_size(model, left + middle + right)
                in_place += whole + frame_overhead(FrameType.NEURAL, 1200 + gap, whole)
                a, b = neural_size(model, left), neural_size(model, right)
                binary = rng.choice(binaries)
                at = rng.randrange(len(binary) - 4096)
                prefix = binary[at : at + 4096]  # the stream the gap joins has seen binary before
                z = zstd_stream_size(prefix, middle) - zstd_stream_size(prefix)
                split += a + b + z
                split += frame_overhead(FrameType.NEURAL, 600, a) + frame_overhead(FrameType.NEURAL, 600, b)
                split += frame_overhead(FrameType.ZSTD, gap, z)
            n = SAMPLES // 2
            print(f"{gap:>5} {kind:>7} {in_place / n:>9.1f} {split / n:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
