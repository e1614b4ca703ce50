"""A whole run: every compressor on every input, into one report."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from nacrith import __version__
from nacrith.bench.entropy import entropies
from nacrith.bench.inputs import BenchInput
from nacrith.bench.measure import _in_child, _run_builtin, _run_external, _run_nacrith
from nacrith.bench.peers import runnable_peers
from nacrith.bench.report import BenchReport, Result
from nacrith.bench.variants import NACRITH
from nacrith.dictionary import Dictionary
from nacrith.options import CompressOptions
from nacrith.settings import EnsembleSettings


def run_bench(
    inputs: Sequence[BenchInput],
    peers: Sequence[str],
    external: dict[str, tuple[str, str | None]],
    model: str | None = None,
    threads: int | None = None,
    with_nacrith: bool = True,
    show_progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
    variants: dict[str, EnsembleSettings | None] | None = None,
    options: CompressOptions | None = None,
    dictionary: Dictionary | None = None,
) -> BenchReport:
    """Run every compressor on every input. ``variants`` names the nacrith
    settings to run (default: nacrith with its default ensemble); ``options``,
    the compress options they share (default CompressOptions()). With a
    ``dictionary``, nacrith also runs with it ("nacrith +dict"), which brings
    its own ensemble."""
    variants = ({NACRITH: EnsembleSettings()} if variants is None else variants) if with_nacrith else {}
    with_dict = {}
    if dictionary is not None and with_nacrith:
        base = options or CompressOptions()
        with_dict[f"{NACRITH} +dict"] = dataclasses.replace(base, dictionary=dictionary)
    meta: dict[str, Any] = {
        "nacrith_version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "threads": threads,
    }
    if with_nacrith:  # before any work: a missing model fails at once, with its own message
        from nacrith.files import file_sha256
        from nacrith.models.llm import resolve_model_path

        path = resolve_model_path(model)
        meta["model"] = {"name": path.name, "sha256": file_sha256(path).hex()}
    available = runnable_peers()
    unknown = [p for p in peers if p not in available]
    compressors = list(variants) + list(with_dict) + [p for p in peers if p in available] + list(external)
    results: list[Result] = []
    entropy = {}
    for inp in inputs:
        entropy[inp.label] = entropies(inp.read())
        for comp in compressors:
            log(f"{inp.label}: {comp}")
            if comp in variants:
                results.append(
                    _in_child(_run_nacrith, inp, comp, model, threads, show_progress, variants[comp], options)
                )
            elif comp in with_dict:
                primed = with_dict[comp]
                run = (model, threads, show_progress, primed.ensemble, primed)
                results.append(_in_child(_run_nacrith, inp, comp, *run))
            elif comp in external:
                results.append(_run_external(comp, *external[comp], inp))
            else:
                results.append(_in_child(_run_builtin, inp, comp))
        for name in unknown:  # asked for but not installed: a failure row, not a silent gap
            results.append(
                Result(inp.label, name, inp.size, error="not available (not importable, not on PATH)")
            )
    compressors += unknown
    return BenchReport(list(inputs), results, entropy, compressors, meta)
