"""What every command shares: its exit statuses, the refusal that exits 2,
how stdin and stdout are named, and the line it says on stderr."""

from __future__ import annotations

import argparse
import signal
import sys

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Its reader gone (`nacrith bench | head`): what a shell reports for gzip or xz,
#: which SIGPIPE stops.
EXIT_READER_GONE = 128 + signal.SIGPIPE


class UsageError(Exception):
    """The command line asks for something we refuse to do; exit 2."""


def _is_std(name: str | None) -> bool:
    return name == "-"


def _display_name(name: str) -> str:
    return "(stdin)" if _is_std(name) else name


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        print(line, file=sys.stderr)
