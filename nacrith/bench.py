"""`nacrith bench`: bits per byte, speed and memory, side by side with classical compressors.

Every compressor, ours included, runs on the same bytes in the same run, in a
child process of its own (so peak RSS is its own), and must give back the
input exactly: a run that does not verify is reported as a failure, never as
a number.

An input is a file, or a message set (a ``.jsonl`` file, see
nacrith.corpora): then every message is compressed as a file of its own, as
a service compresses requests, and the sizes of those files are summed.
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
from nacrith.corpora import (
    MESSAGES_SUFFIX,
    Corpus,
    CorpusFile,
    corpus,
    is_message_set,
    load_manifest,
    locate,
    read_messages,
)
from nacrith.crash import run_in_child
from nacrith.dictionary import Dictionary
from nacrith.errors import CorpusError, WorkerError
from nacrith.options import CompressOptions
from nacrith.progress import ProgressLine
from nacrith.reports import ProgressInfo
from nacrith.settings import EnsembleSettings

__all__ = [
    "BenchInput",
    "Result",
    "builtin_peers",
    "default_peers",
    "dictionary_peer",
    "entropies",
    "resolve_inputs",
    "run_bench",
    "runnable_peers",
]

NACRITH = "nacrith"
SCHEMA = "nacrith-bench/1"


@dataclass(frozen=True)
class BenchInput:
    """Bytes to benchmark, and how to name them honestly."""

    label: str
    path: str
    size: int  # bytes benchmarked (a prefix when limited); of a message set, its messages' bytes
    full_size: int
    #: Of a message set: how many of its messages are benchmarked (the first
    #: ones), each compressed as a file of its own. None: the input is one file.
    messages: int | None = None
    #: Of a message set: its train split, on which peers are built before
    #: measuring (zstd's dictionaries); None when it has none.
    train: str | None = None

    @property
    def is_prefix(self) -> bool:
        return self.size < self.full_size

    def read(self) -> bytes:
        """All the bytes benchmarked (of a message set, its messages end to end)."""
        if self.messages is not None:
            return b"".join(self.units())
        with open(self.path, "rb") as f:
            return f.read(self.size)

    def units(self) -> list[bytes]:
        """What is compressed, each as a file of its own: the messages of a
        message set, else the whole input."""
        if self.messages is None:
            return [self.read()]
        return read_messages(self.path, self.messages)


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


# --- inputs -----------------------------------------------------------------


def _prefix_label(label: str, size: int, full: int) -> str:
    return label if size >= full else f"{label} (first {size:,} bytes)"


#: The splits of a message set's corpus: dictionaries are built on the train
#: split, and only the test split is measured.
TRAIN_SPLIT, TEST_SPLIT = f"train{MESSAGES_SUFFIX}", f"test{MESSAGES_SUFFIX}"


def _measured(c: Corpus) -> list[CorpusFile]:
    """The files of a corpus that are benchmarked: the test split of one that has splits."""
    names = {f.name for f in c.files}
    return [c.file(TEST_SPLIT)] if {TRAIN_SPLIT, TEST_SPLIT} <= names else list(c.files)


def _message_input(label: str, path: Path, limit: int | None, train: Path | None) -> BenchInput:
    """A message set; ``limit`` counts messages (the first ones), not bytes."""
    messages = read_messages(path)
    if not messages:
        raise CorpusError(f"{path}: no messages (one JSON string per line)")
    count = min(len(messages), limit or len(messages))
    if count < len(messages):
        label = f"{label} (first {count:,} of {len(messages):,} messages)"
    size, full = sum(map(len, messages[:count])), sum(map(len, messages))
    return BenchInput(label, str(path), size, full, count, None if train is None else str(train))


def resolve_inputs(specs: Sequence[str], limit: int | None) -> list[BenchInput]:
    """Corpus names ("canterbury"), corpus files ("canterbury/alice29.txt") or
    paths. ``limit`` keeps the first bytes of a file, the first messages of a
    message set."""
    inputs = []
    manifest = load_manifest()
    for spec in specs:
        name, _, file_name = spec.partition("/")
        if name in manifest and not Path(spec).exists():
            c = corpus(name)
            for f in [c.file(file_name)] if file_name else _measured(c):
                path = locate(c.name, f.name)
                if is_message_set(f.name):
                    has_train = f.name != TRAIN_SPLIT and TRAIN_SPLIT in {g.name for g in c.files}
                    train = locate(c.name, TRAIN_SPLIT) if has_train else None
                    inputs.append(_message_input(f"{c.name}/{f.name}", path, limit, train))
                    continue
                # The enwik8 prefix slice is not enwik8: say so in every label.
                base = "enwik8 prefix" if c.name == "enwik8-prefix" else f.name
                size = min(f.size, limit or f.size)
                inputs.append(BenchInput(_prefix_label(base, size, f.size), str(path), size, f.size))
        else:
            path = Path(spec)
            if not path.is_file():
                raise CorpusError(f"{spec}: not a corpus name ({', '.join(manifest)}) nor a file")
            if is_message_set(path):
                # Named as a corpus's message set is ("changelogs/test.jsonl"), however it was given;
                # its train split is the train.jsonl beside it, unless it is that file.
                sibling = path.with_name(TRAIN_SPLIT)
                train = sibling if sibling.is_file() and not sibling.samefile(path) else None
                inputs.append(_message_input(f"{path.resolve().parent.name}/{path.name}", path, limit, train))
                continue
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
    """The classical peers available in this Python, named as their command lines.
    zstd's contexts are made once and reused, as a program compressing many
    messages keeps them: making one per call would be most of the time on a
    message of a few hundred bytes."""
    zstd19, zstd22 = zstandard.ZstdCompressor(level=19), zstandard.ZstdCompressor(level=22)
    unzstd = zstandard.ZstdDecompressor()
    peers: dict[str, PeerCodec] = {
        "gzip -9": (lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
        "bzip2 -9": (lambda d: bz2.compress(d, 9), bz2.decompress),
        "xz -9e": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd -19": (zstd19.compress, unzstd.decompress),
        "zstd -22": (zstd22.compress, unzstd.decompress),
    }
    try:
        import brotli

        peers["brotli -q 11"] = (lambda d: brotli.compress(d, quality=11), brotli.decompress)
    except ImportError:
        pass
    return peers


#: How to get each peer that may be missing: the optional ones.
INSTALL_HINTS = {"brotli -q 11": "pip install 'nacrith[peers]', or put brotli on PATH"}


#: zstd -19 with a dictionary trained on the message set's train split, by the
#: dictionary's size: 110K is zstd's default (--maxdict), 16K a small one. The
#: dictionary's own bytes are not counted, as zstd users do not count them (it
#: is shipped once, not with every message): hence its size in the label.
DICTIONARY_PEERS = {"zstd -19 +dict 110K": 112_640, "zstd -19 +dict 16K": 16_384}

#: The peers of a run not given --peers. For files, the classical compressors
#: at their strongest; for message sets, what small messages are compressed
#: with in practice, zstd alone and with a dictionary, and xz -9e.
FILE_PEERS = ("gzip -9", "bzip2 -9", "xz -9e", "zstd -22", "brotli -q 11")
MESSAGE_PEERS = ("zstd -19", "zstd -19 +dict 16K", "zstd -19 +dict 110K", "xz -9e")


def runnable_peers() -> list[str]:
    """The built-in peers this Python can run, the dictionary peers among them."""
    return [*builtin_peers(), *DICTIONARY_PEERS]


def default_peers(inputs: Sequence[BenchInput]) -> list[str]:
    """FILE_PEERS for files, MESSAGE_PEERS for message sets; the dictionary
    peers only when every input has a train split to build one on."""
    peers = [*(FILE_PEERS if any(i.messages is None for i in inputs) else ())]
    peers += MESSAGE_PEERS if any(i.messages is not None for i in inputs) else ()
    if not all(i.train for i in inputs):
        peers = [p for p in peers if p not in DICTIONARY_PEERS]
    return list(dict.fromkeys(peers))


def dictionary_peer(dictionary: zstandard.ZstdCompressionDict) -> PeerCodec:
    """zstd -19 with a dictionary; one compressor and decompressor for all
    messages, as a deployment keeps them."""
    compressor = zstandard.ZstdCompressor(level=19, dict_data=dictionary)
    decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
    return compressor.compress, decompressor.decompress


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _record_sizes(result: Result, inp: BenchInput, blobs: list[bytes]) -> None:
    """The compressed size of an input: of a message set, the sum of its messages' files."""
    result.compressed = sum(map(len, blobs))
    if inp.messages is not None:
        result.sizes = [len(b) for b in blobs]


def _verify(result: Result, inp: BenchInput, units: list[bytes], back: list[bytes]) -> None:
    """Verified only when every unit (every message) came back exactly."""
    wrong = [k for k, (a, b) in enumerate(zip(units, back, strict=True)) if a != b]
    result.verified = not wrong
    if wrong:
        which = f"message {wrong[0] + 1} of {len(units)}: " if inp.messages is not None else ""
        result.error = f"{which}round trip differs from the input"


def _run_builtin(inp: BenchInput, name: str) -> Result:
    """In a child process: one peer on one input."""
    result = Result(inp.label, name, inp.size)
    units = inp.units()
    try:
        if name in DICTIONARY_PEERS:
            if inp.train is None:
                raise CorpusError(f"needs a message set with a train split ({TRAIN_SPLIT} beside it)")
            # Trained before the clock starts: a dictionary is built once, not per message.
            dictionary = zstandard.train_dictionary(DICTIONARY_PEERS[name], read_messages(inp.train))
            # Smaller than asked when the train split is small: the report says so.
            result.dictionary_bytes = len(dictionary.as_bytes())
            compress, decompress = dictionary_peer(dictionary)
        else:
            compress, decompress = builtin_peers()[name]
        start = time.perf_counter()
        blobs = [compress(u) for u in units]
        result.compress_s = time.perf_counter() - start
        _record_sizes(result, inp, blobs)
        start = time.perf_counter()
        back = [decompress(b) for b in blobs]
        result.decompress_s = time.perf_counter() - start
        _verify(result, inp, units, back)
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


class _Progress:
    """One progress line over the units of an input: each unit's own progress,
    offset by the units before it."""

    def __init__(self, line: ProgressLine | None) -> None:
        self.line = line
        self.base = self.last = ProgressInfo(0, 0, 0.0)

    def update(self, info: ProgressInfo) -> None:
        b = self.base
        self.last = ProgressInfo(
            b.bytes_done + info.bytes_done, b.symbols + info.symbols, b.coded_bits + info.coded_bits
        )
        if self.line:
            self.line.update(self.last)

    def unit_done(self, size: int) -> None:
        self.base = ProgressInfo(self.base.bytes_done + size, self.last.symbols, self.last.coded_bits)

    def close(self) -> None:
        if self.line:
            self.line.close()


def _run_nacrith(
    inp: BenchInput,
    name: str,
    model: str | None,
    threads: int | None,
    show_progress: bool,
    ensemble: EnsembleSettings | None = None,
    options: CompressOptions | None = None,
) -> Result:
    """In a child process: our codec on one input, with a progress line on a
    terminal. ``ensemble`` is the variant's; ``options``, the compress options
    every variant shares (default CompressOptions()): where a setting that is
    not an ensemble's, such as a dictionary to prime the model with, comes in.

    The model is loaded once, before the clock starts, and serves every
    message of a message set: each message is a file of its own, so the model
    starts from an empty window on each, but is not loaded again."""
    import io

    from nacrith.api import Codec

    result = Result(inp.label, name, inp.size)
    units = inp.units()
    try:
        # The round trips below need the dictionary, if the options have one.
        codec = Codec(model, threads, dict=options.dictionary if options is not None else None)
        codec.model  # load before timing  # noqa: B018
        progress = _Progress(ProgressLine(f"{inp.label} compress", inp.size) if show_progress else None)
        blobs: list[bytes] = []
        model_symbols = symbols = skipped = zstd_only = 0
        segments: dict[str, int] = {}
        segment_bytes: dict[str, int] = {}
        start = time.perf_counter()
        for unit in units:
            out = io.BytesIO()
            summary = codec.compress_stream(
                io.BytesIO(unit),
                out,
                options,
                content_size=len(unit),
                progress=progress.update if show_progress else None,
                ensemble=ensemble,
            )
            blobs.append(out.getvalue())
            progress.unit_done(len(unit))
            model_symbols += summary.model_symbols
            symbols += summary.stats.symbols
            skipped += summary.stats.skipped
            zstd_only += summary.zstd_only
            for kind, n in summary.segments.items():
                segments[kind] = segments.get(kind, 0) + n
            for kind, n in summary.segment_bytes.items():
                segment_bytes[kind] = segment_bytes.get(kind, 0) + n
        result.compress_s = time.perf_counter() - start
        progress.close()
        _record_sizes(result, inp, blobs)
        # None, not 0: the model did no work to measure.
        result.compress_tokens = model_symbols or None
        result.tokens = symbols or None
        result.skipped_tokens = skipped if symbols else None
        result.segments, result.segment_bytes = segments, segment_bytes
        if inp.messages is None:
            result.zstd_only = bool(zstd_only)
        else:
            result.messages_zstd_only = zstd_only
        progress = _Progress(ProgressLine(f"{inp.label} decompress", inp.size) if show_progress else None)
        back = []
        start = time.perf_counter()
        for unit, blob in zip(units, blobs, strict=True):
            restored = io.BytesIO()
            codec.decompress_stream(
                io.BytesIO(blob), restored, progress=progress.update if show_progress else None
            )
            back.append(restored.getvalue())
            progress.unit_done(len(unit))
        result.decompress_s = time.perf_counter() - start
        progress.close()
        _verify(result, inp, units, back)
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
    options: CompressOptions | None = None,
    dictionary: Dictionary | None = None,
) -> BenchReport:
    """Run every compressor on every input. ``variants`` names the nacrith
    settings to run (default: nacrith with its default ensemble); ``options``,
    the compress options they share (default CompressOptions()). With a
    ``dictionary``, nacrith also runs with it ("nacrith +dict"), which brings
    its own ensemble."""
    variants = ({NACRITH: EnsembleSettings()} if variants is None else variants) if with_nacrith else {}
    with_dict = {}
    if dictionary is not None and with_nacrith:
        base = options or CompressOptions()
        with_dict[f"{NACRITH} +dict"] = dataclasses.replace(base, dictionary=dictionary)
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
    available = runnable_peers()
    unknown = [p for p in peers if p not in available]
    compressors = list(variants) + list(with_dict) + [p for p in peers if p in available] + list(external)
    results: list[Result] = []
    entropy = {}
    for inp in inputs:
        entropy[inp.label] = entropies(inp.read())
        for comp in compressors:
            log(f"{inp.label}: {comp}")
            if comp in variants:
                results.append(
                    _in_child(_run_nacrith, inp, comp, model, threads, show_progress, variants[comp], options)
                )
            elif comp in with_dict:
                primed = with_dict[comp]
                run = (model, threads, show_progress, primed.ensemble, primed)
                results.append(_in_child(_run_nacrith, inp, comp, *run))
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


def write_json(report: BenchReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def external_on_path() -> dict[str, tuple[str, str | None]]:
    """brotli's command line, when the Python module is missing but the program is there."""
    if "brotli -q 11" not in builtin_peers() and shutil.which("brotli"):
        return {"brotli -q 11": ("brotli -q 11 -c {in} > {out}", "brotli -d -c {in} > {out}")}
    return {}
