"""`nacrith bench`: its options, and the run or merge of reports they ask for
(nacrith.bench does the measuring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nacrith.cli.common import EXIT_DATA, EXIT_OK, UsageError, _say
from nacrith.cli.options import Subcommands, _size
from nacrith.dictionary import Dictionary
from nacrith.settings import EnsembleSettings

if TYPE_CHECKING:
    from nacrith.bench import BenchReport


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
