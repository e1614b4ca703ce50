"""The report for people: Markdown tables, and a bar chart of bits per byte."""

from __future__ import annotations

import math
from pathlib import Path

from nacrith.bench.report import BenchReport
from nacrith.errors import CorpusError


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def markdown(report: BenchReport) -> str:
    """Two tables: bpb of every file under every compressor, then speed, memory and verification."""
    comps = report.compressors
    by = {(r.input, r.compressor): r for r in report.results}
    lines = [
        "| file | bytes | " + " | ".join(comps) + " | H0 | H1 | H2 |",
        "|---|---:|" + "---:|" * (len(comps) + 3),
    ]
    for inp in report.inputs:
        cells = [_fmt(by[(inp.label, c)].bpb) if by[(inp.label, c)].verified else "FAIL" for c in comps]
        h = report.entropy[inp.label]
        lines.append(
            f"| {inp.label} | {inp.size:,} | "
            + " | ".join(cells)
            + f" | {h['H0']:.3f} | {h['H1']:.3f} | {h['H2']:.3f} |"
        )
    summary = report.summary()
    total = sum(i.size for i in report.inputs)
    lines.append(
        f"| **total** | {total:,} | " + " | ".join(_fmt(summary[c]["total_bpb"]) for c in comps) + " | | | |"
    )
    lines.append("| **mean** | | " + " | ".join(_fmt(summary[c]["mean_bpb"]) for c in comps) + " | | | |")
    lines += [
        "",
        "| file | compressor | compressed | bpb | compress B/s | decompress B/s | compress tok/s | "
        "decompress tok/s | peak RSS MiB | round trip |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        cells = [
            r.input,
            r.compressor,
            "—" if r.compressed is None else str(r.compressed),
            _fmt(r.bpb),
            _fmt(r.rate(r.compress_s, r.original), ",.0f"),
            _fmt(r.rate(r.decompress_s, r.original), ",.0f"),
            _fmt(r.rate(r.compress_s, r.compress_tokens), ".1f"),
            _fmt(r.rate(r.decompress_s, r.tokens), ".1f"),
            _fmt(r.peak_rss_mib, ".0f"),
            "verified" if r.verified else f"FAILED: {r.error}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    segmented = [r for r in report.results if r.segments is not None]
    messages = {i.label: i.messages for i in report.inputs if i.messages}
    if segmented:
        lines += [
            "",
            "| file | compressor | text segments | text bytes | binary segments | binary bytes "
            "| written as |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for r in segmented:
            seg, nbytes = r.segments or {}, r.segment_bytes or {}
            if r.input in messages:
                written = f"{r.messages_zstd_only or 0} of {messages[r.input]:,} zstd alone"
            else:
                written = "zstd alone" if r.zstd_only else "segments"
            lines.append(
                f"| {r.input} | {r.compressor} | {seg.get('text', 0)} | {nbytes.get('text', 0):,} | "
                f"{seg.get('binary', 0)} | {nbytes.get('binary', 0):,} | {written} |"
            )
    bpb_note = (
        "bpb = 8 * compressed bytes / original bytes, container included; the model file is not counted"
    )
    notes = [f"{bpb_note} ({_model_names(report.meta)})."]
    for inp in report.inputs:
        if inp.messages:
            dictionaries = ", ".join(
                f"{r.compressor} {r.dictionary_bytes:,} bytes"
                for r in report.results
                if r.input == inp.label and r.dictionary_bytes is not None
            )
            uncounted = f" (not counted: the dictionaries, {dictionaries})" if dictionaries else ""
            notes.append(
                f"{inp.label}: {inp.messages:,} messages of {inp.size / inp.messages:,.1f} bytes on average, "
                f"each compressed as a file of its own; its compressed bytes are the sum of those files"
                f"{uncounted}."
            )
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def _model_names(meta: dict) -> str:
    metas = meta.get("merged", [meta])
    names = dict.fromkeys(m.get("model", {}).get("name", "no model") for m in metas)
    return "; ".join(names)


def write_chart(report: BenchReport, path: Path) -> None:
    """A grouped bar chart of bpb per file per compressor (needs the 'plot' extra: matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CorpusError("--chart needs matplotlib: pip install 'nacrith[plot]'") from None
    labels = [i.label for i in report.inputs]
    by = {(r.input, r.compressor): r.bpb for r in report.results}
    width = 0.8 / max(1, len(report.compressors))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) + 2), 4.5))
    for k, comp in enumerate(report.compressors):
        values = [by.get((label, comp)) or 0.0 for label in labels]
        ax.bar([i + k * width for i in range(len(labels))], values, width, label=comp)
    ax.set_xticks([i + width * (len(report.compressors) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("bits per byte (lower is better)")
    ax.set_title("nacrith bench: bits per byte (failed runs show no bar)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
