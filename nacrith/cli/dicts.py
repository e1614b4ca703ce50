"""`nacrith dict build`: a dictionary that primes the model for a domain."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nacrith.cli.common import EXIT_OK, UsageError, _say
from nacrith.cli.options import Subcommands, _positive_int, _size
from nacrith.dictbuild import DEFAULT_LIMIT, DEFAULT_TOKENS
from nacrith.files import atomic_output
from nacrith.models.llm import open_model
from nacrith.options import CompressOptions
from nacrith.progress import human_duration


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
