"""`nacrith compress|decompress|test|info|bench|serve|corpora`, the first four in the
conventions of gzip, xz and zstd.

Exit codes: 0 success, 1 data or I/O error, 2 usage error, 130 interrupted, 128 + N
stopped by signal N (SIGTERM, SIGHUP, SIGQUIT), 141 the reader of stdout gone.

One module per command family. What only one command needs (uvicorn and the
service, Ray, the model registry) is imported inside that command, so that
`nacrith compress` starts without loading it.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from nacrith.cli.bench import cmd_bench
from nacrith.cli.common import (
    EXIT_DATA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_READER_GONE,
    EXIT_USAGE,
    UsageError,
    _display_name,
)
from nacrith.cli.compress import cmd_compress, cmd_decompress, cmd_test, ensemble_from_args
from nacrith.cli.corpora import cmd_corpora
from nacrith.cli.dicts import cmd_dict
from nacrith.cli.info import cmd_info, cmd_models
from nacrith.cli.parser import MODE_FLAGS, build_parser, refuse_levels, with_mode_flag
from nacrith.cli.serve import cmd_serve
from nacrith.cli.streams import SUFFIX
from nacrith.crash import install_guard
from nacrith.errors import NacrithError, one_line
from nacrith.interrupts import Terminated, terminating_signals

__all__ = [
    "COMMANDS",
    "EXIT_DATA",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_READER_GONE",
    "EXIT_USAGE",
    "MODE_FLAGS",
    "SUFFIX",
    "UsageError",
    "build_parser",
    "ensemble_from_args",
    "main",
    "refuse_levels",
    "with_mode_flag",
]

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
