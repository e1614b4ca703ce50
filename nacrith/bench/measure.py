"""One compressor on one input, in a child process of its own (so that its
peak RSS is its own), timed, and verified: the round trip must give back
every byte, or the row is a failure."""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zstandard

from nacrith.bench.inputs import TRAIN_SPLIT, BenchInput
from nacrith.bench.peers import DICTIONARY_PEERS, builtin_peers, dictionary_peer
from nacrith.bench.report import Result
from nacrith.corpora import read_messages
from nacrith.crash import run_in_child
from nacrith.errors import CorpusError, WorkerError
from nacrith.options import CompressOptions
from nacrith.progress import ProgressLine
from nacrith.reports import ProgressInfo
from nacrith.settings import EnsembleSettings


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
