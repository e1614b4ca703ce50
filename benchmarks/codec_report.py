"""Measure the codec on one file: size, bpb, speed both ways, peak memory, coder overhead.

    python benchmarks/codec_report.py FILE [--threads N] [--context TOKENS]

Compresses, decompresses and verifies the round trip; a run that does not
verify reports a failure, never a number. "Model bpb" is the cross-entropy of
the model's own (unquantised) probabilities over the coded symbols; the gap
to it splits into CDF quantisation, coder overhead and container bytes.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
from pathlib import Path

from nacrith.api import Codec
from nacrith.options import CompressOptions


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--context", type=int, default=CompressOptions.context)
    args = parser.parse_args()

    data = args.file.read_bytes()
    codec = Codec(threads=args.threads)
    codec.model  # load outside the timed region  # noqa: B018

    start = time.perf_counter()
    out = io.BytesIO()
    summary = codec.compress_stream(io.BytesIO(data), out, content_size=len(data), context=args.context)
    t_compress = time.perf_counter() - start
    blob = out.getvalue()

    start = time.perf_counter()
    restored = codec.decompress(blob)
    t_decompress = time.perf_counter() - start
    if restored != data:
        print(f"FAILED: {args.file} did not round-trip", file=sys.stderr)
        return 1

    st = summary.stats
    n = len(data)
    neural_bits = 8 * st.payload_bytes
    rows = [
        ("file", f"{args.file.name} ({n} bytes, {st.symbols} symbols, {st.escapes} escapes)"),
        ("model", f"{codec.model.name}, {codec.model.threads} thread(s), context {args.context}"),
        ("compressed", f"{len(blob)} bytes = {8 * len(blob) / n:.4f} bpb, frames {summary.frames}"),
        ("model bpb", f"{st.model_bits / n:.4f}  (cross-entropy of the model's own probabilities)"),
        ("coded bpb", f"{st.coded_bits / n:.4f}  (integer CDF, before the coder)"),
        ("payload bpb", f"{neural_bits / n:.4f}  (coder output of neural frames)"),
        ("CDF cost", f"{100 * (st.coded_bits / st.model_bits - 1):+.4f}% vs model"),
        ("coder overhead", f"{100 * (neural_bits - st.coded_bits) / st.coded_bits:+.4f}% vs coded"),
        ("container", f"{len(blob) - st.payload_bytes} bytes of headers, index and non-neural frames"),
        ("total vs model", f"{100 * (8 * len(blob) / st.model_bits - 1):+.3f}%"),
        ("compress", f"{t_compress:.1f} s, {st.symbols / t_compress:.1f} tok/s, {n / t_compress:.0f} B/s"),
        (
            "decompress",
            f"{t_decompress:.1f} s, {st.symbols / t_decompress:.1f} tok/s, {n / t_decompress:.0f} B/s",
        ),
        ("peak RSS", f"{peak_rss_mib():.0f} MiB"),
        ("round trip", "verified"),
    ]
    for key, value in rows:
        print(f"{key:<16}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
