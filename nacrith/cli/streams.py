"""Opening a command's input and output: files, pipes, stdin and stdout, in
the conventions of gzip, xz and zstd, and the output's default name."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nacrith.cli.common import UsageError, _is_std, _say
from nacrith.errors import InputSkipped, OutputError
from nacrith.files import atomic_output, same_file

SUFFIX = ".nc"


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
