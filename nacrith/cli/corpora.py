"""`nacrith corpora list|fetch`: the benchmark corpora."""

from __future__ import annotations

import argparse
import contextlib

from nacrith.cli.common import EXIT_OK, UsageError
from nacrith.cli.options import Subcommands
from nacrith.errors import NacrithError


def _add_corpora(sub: Subcommands) -> None:
    corp = sub.add_parser("corpora", help="list or fetch benchmark corpora")
    corp.add_argument("action", choices=["list", "fetch"])
    corp.add_argument("name", nargs="?", help="corpus to fetch")


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
