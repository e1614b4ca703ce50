"""`nacrith bench`: bits per byte, speed and memory, side by side with classical compressors.

Every compressor, ours included, runs on the same bytes in the same run, in a
child process of its own (so peak RSS is its own), and must give back the
input exactly: a run that does not verify is reported as a failure, never as
a number.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import lzma
import math
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from nacrith import __version__
from nacrith.corpora import corpus, load_manifest, locate
from nacrith.crash import run_in_child
from nacrith.errors import CorpusError, WorkerError
from nacrith.settings import EnsembleSettings

__all__ = ["BenchInput", "Result", "builtin_peers", "entropies", "resolve_inputs", "run_bench"]

NACRITH = "nacrith"
SCHEMA = "nacrith-bench/1"


@dataclass(frozen=True)
class BenchInput:
    """Bytes to benchmark, and how to name them honestly."""

    label: str
    path: str
    size: int  # bytes benchmarked (a prefix when limited)
    full_size: int

    @property
    def is_prefix(self) -> bool:
        return self.size < self.full_size

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read(self.size)


@dataclass
class Result:
    input: str
    compressor: str
    original: int
    compressed: int | None = None
    compress_s: float | None = None
    decompress_s: float | None = None
    #: Symbols the model coded while compressing (frames that lost to zstd included).
    compress_tokens: int | None = None
    #: Symbols the model decoded: those of the neural frames in the file.
    tokens: int | None = None
    #: Tokens coded without the language model (the ensemble's confidence skip).
    skipped_tokens: int | None = None
    peak_rss_mib: float | None = None
    #: How nacrith split the input: segments and bytes by kind ("text", "binary"),
    #: and whether the file went out as zstd alone.
    segments: dict[str, int] | None = None
    segment_bytes: dict[str, int] | None = None
    zstd_only: bool | None = None
    verified: bool = False
    error: str | None = None

    @property
    def bpb(self) -> float | None:
        if not self.verified or self.compressed is None or not self.original:
            return None
        return 8 * self.compressed / self.original

    def rate(self, seconds: float | None, per: int | None) -> float | None:
        return per / seconds if self.verified and seconds and per is not None else None

    def to_json(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d.update(
            bpb=self.bpb,
            compress_bytes_per_s=self.rate(self.compress_s, self.original),
            decompress_bytes_per_s=self.rate(self.decompress_s, self.original),
            compress_tokens_per_s=self.rate(self.compress_s, self.compress_tokens),
            decompress_tokens_per_s=self.rate(self.decompress_s, self.tokens),
        )
        return d


# --- inputs -----------------------------------------------------------------


def _prefix_label(label: str, size: int, full: int) -> str:
    return label if size >= full else f"{label} (first {size:,} bytes)"


def resolve_inputs(specs: Sequence[str], limit: int | None) -> list[BenchInput]:
    """Corpus names ("canterbury"), corpus files ("canterbury/alice29.txt") or paths."""
    inputs = []
    manifest = load_manifest()
    for spec in specs:
        name, _, file_name = spec.partition("/")
        if name in manifest and not Path(spec).exists():
            c = corpus(name)
            wanted = [c.file(file_name)] if file_name else list(c.files)
            for f in wanted:
                path = locate(c.name, f.name)
                # The enwik8 prefix slice is not enwik8: say so in every label.
                base = "enwik8 prefix" if c.name == "enwik8-prefix" else f.name
                size = min(f.size, limit or f.size)
                inputs.append(BenchInput(_prefix_label(base, size, f.size), str(path), size, f.size))
        else:
            path = Path(spec)
            if not path.is_file():
                raise CorpusError(f"{spec}: not a corpus name ({', '.join(manifest)}) nor a file")
            full = path.stat().st_size
            size = min(full, limit or full)
            inputs.append(BenchInput(_prefix_label(path.name, size, full), str(path), size, full))
    return inputs


# --- entropy reference lines --------------------------------------------------


def entropies(data: bytes) -> dict[str, float]:
    """Empirical order-0, -1 and -2 byte entropies in bits per byte: H(X_i | k previous bytes)."""
    arr = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    out = {}
    for order in range(3):
        if len(arr) <= order:
            out[f"H{order}"] = 0.0
            continue
        ctx = np.zeros(len(arr) - order, dtype=np.int64)
        for k in range(order):
            ctx = (ctx << 8) | arr[k : len(arr) - order + k]
        joint = (ctx << 8) | arr[order:]
        _, joint_counts = np.unique(joint, return_counts=True)
        _, ctx_counts = np.unique(ctx, return_counts=True)
        n = len(joint)
        h_joint = -np.sum(joint_counts * np.log2(joint_counts / n))
        h_ctx = -np.sum(ctx_counts * np.log2(ctx_counts / n)) if order else 0.0
        out[f"H{order}"] = float((h_joint - h_ctx) / len(arr))
    return out


# --- compressors --------------------------------------------------------------

PeerCodec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def builtin_peers() -> dict[str, PeerCodec]:
    """The classical peers available in this Python, named as their command lines."""
    peers: dict[str, PeerCodec] = {
        "gzip -9": (lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
        "bzip2 -9": (lambda d: bz2.compress(d, 9), bz2.decompress),
        "xz -9e": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd -19": (
            lambda d: zstandard.ZstdCompressor(level=19).compress(d),
            lambda b: zstandard.ZstdDecompressor().decompress(b),
        ),
        "zstd -22": (
            lambda d: zstandard.ZstdCompressor(level=22).compress(d),
            lambda b: zstandard.ZstdDecompressor().decompress(b),
        ),
    }
    try:
        import brotli

        peers["brotli -q 11"] = (lambda d: brotli.compress(d, quality=11), brotli.decompress)
    except ImportError:
        pass
    return peers


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_builtin(inp: BenchInput, name: str) -> Result:
    """In a child process: one peer on one input."""
    result = Result(inp.label, name, inp.size)
    data = inp.read()
    compress, decompress = builtin_peers()[name]
    try:
        start = time.perf_counter()
        blob = compress(data)
        result.compress_s = time.perf_counter() - start
        result.compressed = len(blob)
        start = time.perf_counter()
        back = decompress(blob)
        result.decompress_s = time.perf_counter() - start
        result.verified = back == data
        if not result.verified:
            result.error = "round trip differs from the input"
    except Exception as exc:  # a peer's failure is reported, whatever it is
        result.error = f"{type(exc).__name__}: {exc}"
    result.peak_rss_mib = _rss_mib()
    return result


def nacrith_variants() -> dict[str, EnsembleSettings | None]:
    """Every nacrith configuration the bench knows, by short name: the language
    model alone, each part of the ensemble added alone, the full ensemble
    without its confidence skip (what the skip costs and saves), and in full."""
    full = EnsembleSettings()
    none = full.without("ngram", "match", "bias", "skip", "apm")
    return {
        "llm-only": None,
        "+ngram": replace(none, ngram=True),
        "+match": replace(none, match=True),
        "+bias": replace(none, bias=True),
        "+apm": replace(none, apm=True),
        "+match+skip": replace(none, match=True, skip=True),
        "full-skip": full.without("skip"),
        "full": full,
    }


#: What ``--ablation`` runs: the model alone, each part alone, the full ensemble.
ABLATION = ("llm-only", "+ngram", "+match", "+bias", "+apm", "+match+skip", "full")


def variant_label(name: str) -> str:
    """The compressor column of a variant; the full ensemble is plain "nacrith"."""
    return NACRITH if name == "full" else f"{NACRITH} {name}"


def named_variants(names: Sequence[str] = ABLATION) -> dict[str, EnsembleSettings | None]:
    """The named variants (see nacrith_variants), labelled for the report."""
    catalogue = nacrith_variants()
    if unknown := [n for n in names if n not in catalogue]:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(catalogue)}")
    return {variant_label(n): catalogue[n] for n in dict.fromkeys(names)}


def _run_nacrith(
    inp: BenchInput,
    name: str,
    model: str | None,
    threads: int | None,
    show_progress: bool,
    ensemble: EnsembleSettings | None = None,
) -> Result:
    """In a child process: our codec on one input, with a progress line on a terminal."""
    import io

    from nacrith.api import Codec
    from nacrith.progress import ProgressLine

    result = Result(inp.label, name, inp.size)
    data = inp.read()
    try:
        codec = Codec(model, threads)
        codec.model  # load before timing  # noqa: B018
        progress = ProgressLine(f"{inp.label} compress", inp.size) if show_progress else None
        out = io.BytesIO()
        start = time.perf_counter()
        summary = codec.compress_stream(
            io.BytesIO(data),
            out,
            content_size=len(data),
            progress=progress.update if progress else None,
            ensemble=ensemble,
        )
        result.compress_s = time.perf_counter() - start
        if progress:
            progress.close()
        blob = out.getvalue()
        result.compressed = len(blob)
        # None, not 0: the model did no work to measure.
        result.compress_tokens = summary.model_symbols or None
        result.tokens = summary.stats.symbols or None
        result.skipped_tokens = summary.stats.skipped if summary.stats.symbols else None
        result.segments, result.segment_bytes = summary.segments, summary.segment_bytes
        result.zstd_only = summary.zstd_only
        progress = ProgressLine(f"{inp.label} decompress", inp.size) if show_progress else None
        restored = io.BytesIO()
        start = time.perf_counter()
        codec.decompress_stream(io.BytesIO(blob), restored, progress=progress.update if progress else None)
        result.decompress_s = time.perf_counter() - start
        if progress:
            progress.close()
        result.verified = restored.getvalue() == data
        if not result.verified:
            result.error = "round trip differs from the input"
    except Exception as exc:  # reported in the table, never dropped
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    result.peak_rss_mib = _rss_mib()
    return result


def _run_external(name: str, compress_cmd: str, decompress_cmd: str | None, inp: BenchInput) -> Result:
    """An external compressor given as 'cmd {in} {out}'; its peak RSS comes from wait4."""
    result = Result(inp.label, name, inp.size)
    data = inp.read()
    with tempfile.TemporaryDirectory(prefix="nacrith-bench-") as tmp:
        src, packed, unpacked = Path(tmp, "input"), Path(tmp, "packed"), Path(tmp, "unpacked")
        src.write_bytes(data)
        steps = [("compress", compress_cmd, src, packed)]
        if decompress_cmd:
            steps.append(("decompress", decompress_cmd, packed, unpacked))
        peak = 0.0
        for step, template, a, b in steps:
            cmd = template.format(**{"in": shlex.quote(str(a)), "out": shlex.quote(str(b))})
            # stderr goes to a file: a pipe read only after wait4 would block a chatty peer.
            with open(Path(tmp, "stderr"), "w+b") as errfile:
                start = time.perf_counter()
                proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=errfile)
                _, status, usage = os.wait4(proc.pid, 0)
                elapsed = time.perf_counter() - start
                errfile.seek(0)
                err = errfile.read().decode(errors="replace").strip().splitlines()
            peak = max(peak, usage.ru_maxrss / 1024)
            code = os.waitstatus_to_exitcode(status)
            if code != 0 or not b.exists():
                result.error = f"{step} failed (exit {code}){': ' + err[-1] if err else ''}"
                break
            if step == "compress":
                result.compress_s, result.compressed = elapsed, b.stat().st_size
            else:
                result.decompress_s = elapsed
        result.peak_rss_mib = peak
        if result.error is None:
            if decompress_cmd is None:
                result.error = "no decompress command given (--peer-decompress), so not verified"
            else:
                result.verified = unpacked.read_bytes() == data
                if not result.verified:
                    result.error = "round trip differs from the input"
    return result


def _in_child(fn: Callable[..., Result], inp: BenchInput, comp: str, *args: object) -> Result:
    """Run fn(inp, comp, *args) in a fresh process so that its peak RSS is its
    own; a child that dies (llama.cpp killed by a signal) gives a failed row."""
    try:
        return run_in_child(fn, inp, comp, *args)
    except WorkerError as exc:
        return Result(inp.label, comp, inp.size, error=str(exc))


# --- the run --------------------------------------------------------------------


@dataclass
class BenchReport:
    inputs: list[BenchInput]
    results: list[Result]
    entropy: dict[str, dict[str, float]]
    compressors: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def ok(self) -> bool:
        return all(r.verified for r in self.results)

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Total bpb (all bytes together) and mean bpb (of files) per compressor; None if any run failed."""
        out: dict[str, dict[str, float | None]] = {}
        for comp in self.compressors:
            rs = [r for r in self.results if r.compressor == comp]
            if rs and all(r.verified for r in rs):
                total = 8 * sum(r.compressed or 0 for r in rs) / max(1, sum(r.original for r in rs))
                mean = sum(r.bpb or 0.0 for r in rs) / len(rs)
                out[comp] = {"total_bpb": total, "mean_bpb": mean}
            else:
                out[comp] = {"total_bpb": None, "mean_bpb": None}
        return out

    @classmethod
    def from_json(cls, doc: dict) -> BenchReport:
        """A report written by write_json (schema nacrith-bench/1)."""
        if doc.get("schema") != SCHEMA:
            raise CorpusError(f"not a nacrith bench report (schema {doc.get('schema')!r}, want {SCHEMA})")
        try:
            inputs, entropy = [], {}
            for i in doc["inputs"]:
                inputs.append(BenchInput(i["label"], i["path"], i["size"], i["full_size"]))
                entropy[i["label"]] = {k: i[k] for k in ("H0", "H1", "H2")}
            fields = {f.name for f in dataclasses.fields(Result)}
            results = [Result(**{k: v for k, v in r.items() if k in fields}) for r in doc["results"]]
            meta_keys = set(doc) - {"schema", "inputs", "compressors", "results", "summary"}
            return cls(inputs, results, entropy, list(doc["compressors"]), {k: doc[k] for k in meta_keys})
        except (KeyError, TypeError) as exc:
            raise CorpusError(f"malformed bench report: {type(exc).__name__}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            **self.meta,
            "inputs": [
                {**dataclasses.asdict(i), "is_prefix": i.is_prefix, **self.entropy[i.label]}
                for i in self.inputs
            ],
            "compressors": self.compressors,
            "results": [r.to_json() for r in self.results],
            "summary": self.summary(),
        }


def run_bench(
    inputs: Sequence[BenchInput],
    peers: Sequence[str],
    external: dict[str, tuple[str, str | None]],
    model: str | None = None,
    threads: int | None = None,
    with_nacrith: bool = True,
    show_progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
    variants: dict[str, EnsembleSettings | None] | None = None,
) -> BenchReport:
    """Run every compressor on every input. ``variants`` names the nacrith
    settings to run (default: nacrith with its default ensemble)."""
    variants = ({NACRITH: EnsembleSettings()} if variants is None else variants) if with_nacrith else {}
    meta: dict[str, Any] = {
        "nacrith_version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "threads": threads,
    }
    if with_nacrith:  # before any work: a missing model fails at once, with its own message
        from nacrith.files import file_sha256
        from nacrith.models.llm import resolve_model_path

        path = resolve_model_path(model)
        meta["model"] = {"name": path.name, "sha256": file_sha256(path).hex()}
    available = builtin_peers()
    unknown = [p for p in peers if p not in available]
    compressors = list(variants) + [p for p in peers if p in available] + list(external)
    results: list[Result] = []
    entropy = {}
    for inp in inputs:
        entropy[inp.label] = entropies(inp.read())
        for comp in compressors:
            log(f"{inp.label}: {comp}")
            if comp in variants:
                results.append(
                    _in_child(_run_nacrith, inp, comp, model, threads, show_progress, variants[comp])
                )
            elif comp in external:
                results.append(_run_external(comp, *external[comp], inp))
            else:
                results.append(_in_child(_run_builtin, inp, comp))
        for name in unknown:  # asked for but not installed: a failure row, not a silent gap
            results.append(
                Result(inp.label, name, inp.size, error="not available (not importable, not on PATH)")
            )
    compressors += unknown
    return BenchReport(list(inputs), results, entropy, compressors, meta)


def merge_reports(reports: Sequence[BenchReport]) -> BenchReport:
    """One report from runs made apart (other files, other variants, other
    times): inputs and compressors in order of first appearance. A file
    measured twice by the same compressor is refused rather than silently
    picked, and so is one label naming inputs of different sizes."""
    inputs: dict[str, BenchInput] = {}
    entropy: dict[str, dict[str, float]] = {}
    compressors: list[str] = []
    results: dict[tuple[str, str], Result] = {}
    for rep in reports:
        for inp in rep.inputs:
            seen = inputs.setdefault(inp.label, inp)
            if seen.size != inp.size:
                raise CorpusError(f"{inp.label}: {seen.size:,} bytes in one report, {inp.size:,} in another")
            entropy.setdefault(inp.label, rep.entropy[inp.label])
        compressors += [c for c in rep.compressors if c not in compressors]
        for r in rep.results:
            if (r.input, r.compressor) in results:
                raise CorpusError(f"{r.input} under {r.compressor} is in more than one report")
            results[(r.input, r.compressor)] = r
    for label in inputs:  # a compressor missing for a file: a failure row, not a silent gap
        for comp in compressors:
            if (label, comp) not in results:
                results[(label, comp)] = Result(label, comp, inputs[label].size, error="not measured")
    order = {label: k for k, label in enumerate(inputs)}
    rows = sorted(results.values(), key=lambda r: (order[r.input], compressors.index(r.compressor)))
    meta: dict[str, Any] = {"merged": [rep.meta for rep in reports]}
    return BenchReport(list(inputs.values()), rows, entropy, compressors, meta)


def read_json(path: Path) -> BenchReport:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read a bench report: {exc}") from None
    if not isinstance(doc, dict):
        raise CorpusError(f"{path}: not a nacrith bench report")
    return BenchReport.from_json(doc)


# --- output -----------------------------------------------------------------------


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
    if segmented:
        lines += [
            "",
            "| file | compressor | text segments | text bytes | binary segments | binary bytes "
            "| written as |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for r in segmented:
            seg, nbytes = r.segments or {}, r.segment_bytes or {}
            lines.append(
                f"| {r.input} | {r.compressor} | {seg.get('text', 0)} | {nbytes.get('text', 0):,} | "
                f"{seg.get('binary', 0)} | {nbytes.get('binary', 0):,} | "
                f"{'zstd alone' if r.zstd_only else 'segments'} |"
            )
    bpb_note = (
        "bpb = 8 * compressed bytes / original bytes, container included; the model file is not counted"
    )
    return "\n".join(lines) + f"\n\n{bpb_note} ({_model_names(report.meta)}).\n"


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


def write_json(report: BenchReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def external_on_path() -> dict[str, tuple[str, str | None]]:
    """brotli's command line, when the Python module is missing but the program is there."""
    if "brotli -q 11" not in builtin_peers() and shutil.which("brotli"):
        return {"brotli -q 11": ("brotli -q 11 -c {in} > {out}", "brotli -d -c {in} > {out}")}
    return {}
