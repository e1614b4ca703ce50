"""`nacrith compress`, `decompress` and `test`, and the summaries they print."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, BinaryIO

from nacrith.api import Codec
from nacrith.cli.common import EXIT_OK, UsageError, _display_name, _is_std, _say
from nacrith.cli.options import Subcommands, _positive_int, _size
from nacrith.cli.streams import SUFFIX, Input, _open_input, _open_output, _output_name
from nacrith.dictionary import Dictionary
from nacrith.options import CompressOptions
from nacrith.progress import ProgressLine, human_bytes, human_duration
from nacrith.settings import EnsembleSettings


def _add_compress(sub: Subcommands, parents: list[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("compress", parents=parents, help="compress FILE to FILE.nc")
    c.add_argument(
        "--context",
        type=_positive_int,
        default=CompressOptions.context,
        metavar="TOKENS",
        help="model context window in tokens (default %(default)s)",
    )
    c.add_argument(
        "--frame-size",
        type=_size,
        default=CompressOptions.frame_size,
        metavar="BYTES",
        help="most bytes per frame, K/M/G suffixes allowed (default 1M)",
    )
    c.add_argument(
        "--lanes",
        type=_positive_int,
        default=CompressOptions.lanes,
        metavar="N",
        help="split each text frame into up to N streams coded side by side in one model context: "
        "faster, a little larger (default %(default)s; recorded in the file)",
    )
    c.add_argument(
        "--no-segment",
        dest="segment",
        action="store_false",
        help="no text/binary split: fixed-size frames, each the smallest of neural, zstd and stored",
    )
    ens = c.add_argument_group("ensemble (recorded in the file; decompress takes no such flags)")
    ens.add_argument("--llm-only", action="store_true", help="the language model alone, no ensemble")
    for part, what in (
        ("ngram", "the token n-gram model"),
        ("match", "the match model (and with it the confidence skip)"),
        ("bias", "the online bias head"),
        ("skip", "the confidence skip (always run the language model)"),
        ("apm", "the APM refinement of the mixture"),
    ):
        ens.add_argument(
            f"--no-{part}", dest="off", action="append_const", const=part, help=f"turn off {what}"
        )
    ens.add_argument(
        "--ensemble",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one ensemble hyperparameter, e.g. ngram_max_order=5 (see docs/format.md)",
    )


def _progress(args: argparse.Namespace, label: str, total: int | None) -> ProgressLine | None:
    if args.quiet or not sys.stderr.isatty():
        return None
    return ProgressLine(label, total)


def _rate(n_bytes: int, seconds: float) -> str:
    return f"{human_bytes(n_bytes / seconds)}/s" if seconds > 0 else "-"


def ensemble_from_args(llm_only: bool, off: list[str] | None, settings: list[str]) -> EnsembleSettings | None:
    """The ensemble a command line asks for; UsageError for a bad one."""
    if llm_only:
        if off or settings:
            raise UsageError("--llm-only takes no other ensemble flags")
        return None
    values: dict[str, Any] = {}  # each converted to its field's type below
    names = {f.name: f.type for f in dataclasses.fields(EnsembleSettings)}
    for item in settings:
        _, sep, text = item.partition("=")
        name = _setting_name(item)
        if not sep or name not in names or names[name] == "bool" or name == "layout":
            raise UsageError(f"--ensemble wants NAME=VALUE, NAME a hyperparameter, not {item!r}")
        try:
            values[name] = float(text) if names[name] == "float" else int(text)
        except ValueError:
            raise UsageError(f"--ensemble {name} needs a number, not {text!r}") from None
    try:
        return EnsembleSettings(**values).without(*(off or []))
    except ValueError as exc:
        raise UsageError(f"ensemble: {exc}") from None


def _setting_name(item: str) -> str:
    """The hyperparameter an --ensemble NAME=VALUE sets."""
    return item.partition("=")[0].strip().replace("-", "_")


def cmd_compress(args: argparse.Namespace) -> int:
    ensemble = ensemble_from_args(args.llm_only, args.off, args.settings)
    if args.file.endswith(SUFFIX) and not args.force:
        raise UsageError(f"{args.file} already has the {SUFFIX} suffix; -f compresses it again")
    dictionary = Dictionary.read(args.dict) if args.dict else None
    try:
        # With a dictionary, the library's one policy on its settings (options.DICTIONARY_SETTINGS).
        options = CompressOptions(
            context=args.context,
            frame_size=args.frame_size,
            ensemble=ensemble,
            segment=args.segment,
            lanes=args.lanes,
            dictionary=dictionary,
            # Heads asked for by name are coded whatever the input's size.
            fit_to_input=not any(_setting_name(item) == "bias_contexts" for item in args.settings),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    target = _output_name(args, compressing=True)
    with _codec(args, dictionary) as codec, _open_input(args, compressed=False) as source:
        progress = _progress(args, _display_name(args.file), source.size)
        start = time.monotonic()
        with _open_output(target, source, args, compressed=True) as dst:
            try:
                summary = codec.compress_stream(
                    source.stream,
                    dst,
                    options,
                    content_size=source.size,
                    progress=progress.update if progress else None,
                )
            finally:
                if progress:
                    progress.close()
    elapsed = time.monotonic() - start
    report = {
        "input": _display_name(args.file),
        "output": _display_name(target),
        "bytes_in": summary.raw_bytes,
        "bytes_out": summary.coded_bytes,
        "bpb": round(summary.bpb, 6),
        "frames": summary.frames,
        "zstd_alone": summary.zstd_only,
        "seconds": round(elapsed, 3),
        "tokens": summary.model_symbols,
        "tokens_without_model": summary.stats.skipped,
    }
    if args.json:
        _emit_json(report, target)
        return EXIT_OK
    sizes = f"{summary.raw_bytes:,} -> {summary.coded_bytes:,} bytes"
    if summary.raw_bytes:
        sizes += f" ({100 * summary.coded_bytes / summary.raw_bytes:.2f}%, {summary.bpb:.3f} bpb)"
    parts = [sizes + f" in {_frames_text(summary.frames)}", human_duration(elapsed)]
    if summary.raw_bytes:
        parts.append(_rate(summary.raw_bytes, elapsed))
    if summary.model_symbols:
        parts.append(f"{summary.model_symbols / max(elapsed, 1e-9):.0f} tok/s")
    if summary.stats.skipped:
        parts.append(
            f"{100 * summary.stats.skipped / summary.stats.symbols:.1f}% of tokens without the model"
        )
    if summary.zstd_only and summary.segments.get("text"):
        parts.append("without the model (its coding was larger)")
    _say(args, f"{_display_name(args.file)}: {', '.join(parts)}" + _arrow(target))
    return EXIT_OK


def _frames_text(frames: dict[str, int]) -> str:
    """ "1 neural frame", "2 neural frames and 1 zstd stream frame"."""
    named = [f"{n} {kind.replace('_', ' ')} frame{'s' if n != 1 else ''}" for kind, n in frames.items()]
    if len(named) > 1:
        return ", ".join(named[:-1]) + " and " + named[-1]
    return named[0] if named else "no frames"


def _arrow(target: str) -> str:
    return "" if _is_std(target) else f" -> {target}"


def _emit_json(report: dict[str, Any], target: str) -> None:
    """A command's summary for scripts, on one line: on stdout, unless the data
    itself went there, then on stderr, where the summary would have been."""
    stream = sys.stderr if _is_std(target) else sys.stdout
    print(json.dumps(report), file=stream)


def _codec(args: argparse.Namespace, dictionary: Dictionary | None = None) -> Codec:
    """The Codec of the command's options; with the dictionary it has read, if any (else --dict's file)."""
    try:
        return Codec(
            args.model, args.threads, workers=args.workers, gpus=args.gpus, dict=dictionary or args.dict
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _decode(args: argparse.Namespace, dst: BinaryIO, source: Input) -> tuple[int, float]:
    # The total, when the file says it, comes with the reader's first report (ProgressInfo.total).
    progress = _progress(args, _display_name(args.file), None)
    start = time.monotonic()
    with _codec(args) as codec:
        try:
            n = codec.decompress_stream(source.stream, dst, progress=progress.update if progress else None)
        finally:
            if progress:
                progress.close()
    return n, time.monotonic() - start


def _decode_report(args: argparse.Namespace, source: Input, target: str, n: int, elapsed: float) -> None:
    report: dict[str, Any] = {
        "input": _display_name(args.file),
        "output": None if args.command == "test" else _display_name(target),
        "bytes_in": source.size,
        "bytes_out": n,
        "seconds": round(elapsed, 3),
    }
    if args.json:
        _emit_json(report, target)
        return
    sizes = f"{source.size:,} -> {n:,} bytes" if source.size is not None else f"{n:,} bytes"
    if args.command == "test":
        line = f"OK, {sizes} verified in {human_duration(elapsed)}"
    else:
        line = f"{sizes}, {human_duration(elapsed)}, {_rate(n, elapsed)}" + _arrow(target)
    _say(args, f"{_display_name(args.file)}: {line}")


def cmd_decompress(args: argparse.Namespace) -> int:
    target = _output_name(args, compressing=False)
    with (
        _open_input(args, compressed=True) as source,
        _open_output(target, source, args, compressed=False) as dst,
    ):
        n, elapsed = _decode(args, dst, source)
    _decode_report(args, source, target, n, elapsed)
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    with _open_input(args, compressed=True) as source, open(os.devnull, "wb") as sink:
        n, elapsed = _decode(args, sink, source)
    _decode_report(args, source, os.devnull, n, elapsed)
    return EXIT_OK
