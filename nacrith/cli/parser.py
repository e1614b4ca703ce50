"""The top-level parser (every command's, the version, the completion script),
and what main does to a command line before argparse reads it: gzip's mode
flags, and the compression levels nacrith does not have."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

import shtab

from nacrith import __version__, listing
from nacrith.cli.bench import _add_bench
from nacrith.cli.common import UsageError
from nacrith.cli.compress import _add_compress
from nacrith.cli.corpora import _add_corpora
from nacrith.cli.dicts import _add_dict
from nacrith.cli.info import _add_info, _add_models
from nacrith.cli.options import (
    _dict_options,
    _input_options,
    _model_options,
    _output_options,
    _worker_options,
)
from nacrith.cli.serve import _add_serve
from nacrith.errors import NacrithError, one_line
from nacrith.format import FORMAT_VERSION


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
    _add_models(sub)
    _add_info(sub)
    _add_bench(sub, [model])
    _add_serve(sub, [model, workers])
    _add_corpora(sub)
    return parser


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
        # A command (compress, info, ...) starts with no "-": it ends the search too.
        if arg == "--" or not arg.startswith("-"):
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
