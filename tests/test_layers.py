"""Imports point one way (DESIGN.md, "Layout"): from the command line, the
service and the benchmark down to the frame codec, the engine, the format
and the settings, never back up. Read from the source with ``ast``, run-time
imports only (a name imported for type checking alone is no dependency);
an import inside a function counts, unless it is one of LAZY below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The top: what users run. Nothing else may import these.
TOP = ("nacrith.cli", "nacrith.server", "nacrith.bench", "nacrith.__main__")
#: The codec's core, below the container and the API: it codes frames and
#: knows nothing of files, workers, options or what a call reports.
CORE = (
    "nacrith.errors",
    "nacrith.settings",
    "nacrith.format",
    "nacrith.tokens",
    "nacrith.zstdio",
    "nacrith.segment",
    "nacrith._native",
    "nacrith.mixer",
    "nacrith.models",
    "nacrith.engine",
    "nacrith.frameparams",
)
#: What the core may not import: the container, the API and their helpers.
ABOVE_CORE = (
    "nacrith.options",
    "nacrith.reports",
    "nacrith.identity",
    "nacrith.framecodec",
    "nacrith.writer",
    "nacrith.reader",
    "nacrith.parallel",
    "nacrith.api",
    "nacrith.dictbuild",
    "nacrith.listing",
    "nacrith.progress",
)
#: Imports allowed although they point up or into test support, each with its reason.
LAZY = {
    # The model factory puts the tests' hooks around a model when a test asks for them.
    ("nacrith.models.llm", "nacrith.support.testhooks"),
}


def module_name(path: Path) -> str:
    """The import name of a source file (server/ is installed as nacrith.server)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "server":
        parts = ["nacrith", *parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    files = [*(ROOT / "nacrith").rglob("*.py"), *(ROOT / "server").rglob("*.py")]
    return {module_name(p): p for p in files if "_ext" not in p.name}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The nacrith modules a module imports at run time."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("nacrith")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("nacrith"):
                continue
            named = {f"{base}.{a.name}" for a in node.names} & known
            # `from nacrith import __version__`: the package's version, not its modules.
            if named or (base == "nacrith" and {a.name for a in node.names} <= {"__version__"}):
                out |= named
            else:
                out.add(base)
    return out - {name}


GRAPH = {name: imports(name, path, set(sources())) for name, path in sources().items()}


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


#: Each rule: whether the import of ``dep`` by ``name`` breaks it.
RULES = {
    "top": lambda name, dep: not under(name, TOP) and under(dep, TOP),
    "server": lambda name, dep: under(name, ("nacrith.server",)) and under(dep, ("nacrith.cli",)),
    "core": lambda name, dep: under(name, CORE) and under(dep, ABOVE_CORE),
    "format": lambda name, dep: (
        under(name, ("nacrith.format",))
        and not under(dep, ("nacrith.format", "nacrith.errors", "nacrith.settings"))
    ),
    "support": lambda name, dep: not under(name, ("nacrith.support",)) and under(dep, ("nacrith.support",)),
    "engine": lambda name, dep: name == "nacrith.engine" and under(dep, ("nacrith.models",)),
}


def violations(rule: str) -> list[str]:
    breaks = RULES[rule]
    return [
        f"{name} imports {dep}"
        for name, deps in sorted(GRAPH.items())
        for dep in sorted(deps)
        if (name, dep) not in LAZY and breaks(name, dep)
    ]


@pytest.mark.parametrize(
    ("rule", "what"),
    [
        ("top", "nothing below the CLI, the service and the benchmark imports them"),
        ("server", "the service does not import the command line"),
        ("core", "the codec's core imports nothing of the container, the workers or the API"),
        ("format", "the format imports only the errors and the settings"),
        ("support", "test support is imported by the tests and benchmarks, not the codec"),
        ("engine", "the engine drives a Predictor, not a model of its own choosing"),
    ],
)
def test_imports_point_down(rule, what):
    assert violations(rule) == [], what


def test_the_rules_see_an_import_that_points_up(tmp_path, monkeypatch):
    """The check itself: an engine that imported the CLI, or the writer, is caught."""
    fake = tmp_path / "engine.py"
    fake.write_text(
        "import os\nfrom nacrith.cli import main\nif TYPE_CHECKING:\n    from nacrith.api import Codec\n"
    )
    deps = imports("nacrith.engine", fake, set(GRAPH))
    assert deps == {"nacrith.cli"}
    monkeypatch.setitem(GRAPH, "nacrith.engine", deps | {"nacrith.writer"})
    assert violations("top") == ["nacrith.engine imports nacrith.cli"]
    assert violations("core") == ["nacrith.engine imports nacrith.writer"]
