"""A run's results: one row per input and compressor, their summary, and the
report as JSON (written, read back, merged from runs made apart)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacrith.bench.inputs import BenchInput
from nacrith.errors import CorpusError

SCHEMA = "nacrith-bench/1"


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
    #: Of a message set: each message's compressed size, in order (their sum is
    #: ``compressed``), and how many of them nacrith wrote as zstd alone.
    sizes: list[int] | None = None
    messages_zstd_only: int | None = None
    #: Bytes of the dictionary the compressor was given (not counted in ``compressed``).
    dictionary_bytes: int | None = None
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
                inputs.append(
                    BenchInput(
                        i["label"], i["path"], i["size"], i["full_size"], i.get("messages"), i.get("train")
                    )
                )
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
                {
                    **dataclasses.asdict(i),
                    "is_prefix": i.is_prefix,
                    **({"mean_message_bytes": i.size / i.messages} if i.messages else {}),
                    **self.entropy[i.label],
                }
                for i in self.inputs
            ],
            "compressors": self.compressors,
            "results": [r.to_json() for r in self.results],
            "summary": self.summary(),
        }


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


def write_json(report: BenchReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
