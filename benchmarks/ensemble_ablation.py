"""The ensemble against the model alone, and its variants against each other, from one model pass per text.

    .venv/bin/python benchmarks/ensemble_ablation.py TEXT[:BYTES]... [--context 2048] \\
        [--variants default,no-apm,...] [--cache DIR] [--no-verify] [--json FILE]

Each TEXT (a path, or a corpus file such as ``canterbury/alice29.txt``;
``:BYTES`` keeps its first BYTES bytes) is split into the streams the coder
would make (``frames.DEFAULT_LANES`` of at least ``DEFAULT_MIN_STREAM``
symbols), the model's logits are recorded once per text and context
(lane_policy.record: the coder's windows and slides, kept in --cache), and
every variant is coded from the recording by the real engine, then decoded
again unless --no-verify. A variant is the default ensemble with some
settings changed (VARIANTS); "llm only" is the model alone.

Bits per byte are the payloads' (no container). "vs llm" is the variant's
size against the model alone's: the promise is that the default ensemble is
never more than 0.1% above it. Host µs/token is the ensemble's own time per
token, beside the model's (the recording's) time per token.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import sys
from pathlib import Path

from lane_policy import code_replayed, recording

from nacrith.corpora import locate
from nacrith.format import stream_bounds
from nacrith.models.llm import LanguageModel
from nacrith.options import DEFAULT_LANES, DEFAULT_MIN_STREAM, SLIDE_FRACTION
from nacrith.settings import Coding, EnsembleSettings

#: Name -> the default ensemble's settings to change (None: the model alone).
VARIANTS: dict[str, dict[str, object] | None] = {
    "llm only": None,
    "default": {},
    "no apm": {"apm": False},
    "no bias": {"bias": False},
    "no ngram": {"ngram": False},
    "no skip": {"skip": False},
    "no match": {"match": False, "skip": False},
}


def text_of(spec: str) -> tuple[str, bytes]:
    """A label and the bytes of TEXT[:BYTES]."""
    name, _, cut = spec.partition(":")
    path = Path(name)
    if not path.exists() and "/" in name:
        path = locate(*name.split("/", 1))
    data = path.read_bytes()
    if cut:
        data = data[: int(cut)]
    return f"{path.name}{f':{cut}' if cut else ''}", data


def settings_of(name: str) -> EnsembleSettings | None:
    """A named variant, or the default with ``setting=value[+setting=value...]``."""
    if name in VARIANTS:
        changes = VARIANTS[name]
    else:
        changes = {}
        known = {f.name: f.type for f in dataclasses.fields(EnsembleSettings)}
        for part in name.split("+"):
            key, eq, value = part.partition("=")
            if not eq or key not in known:
                raise SystemExit(
                    f"unknown variant {name!r}; known: {', '.join(VARIANTS)}, or SETTING=VALUE[+...]"
                )
            kind = known[key]
            changes[key] = value == "1" if kind == "bool" else float(value) if kind == "float" else int(value)
    return None if changes is None else dataclasses.replace(EnsembleSettings(), **changes)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+", metavar="TEXT[:BYTES]")
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--slide", type=int, help="default: a quarter of the context")
    parser.add_argument("--variants", default="llm only,default")
    parser.add_argument("--cache", type=Path, default=Path("lane-cache"), help="where recordings are kept")
    parser.add_argument("-T", "--threads", type=int)
    parser.add_argument("--model", help="GGUF file (default: the bundled model)")
    parser.add_argument("--no-verify", action="store_true", help="skip decoding (sweeps)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    context = args.context
    slide = args.slide or max(1, context // SLIDE_FRACTION)
    model = LanguageModel(args.model, threads=args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.variants.split(",")]
    for name in names:
        settings_of(name)
    results = []
    for spec in args.texts:
        label, data = text_of(spec)
        symbols = model.symbols.encode(data)
        bounds = stream_bounds(len(symbols), DEFAULT_LANES, DEFAULT_MIN_STREAM)
        streams = [symbols[a:b] for a, b in itertools.pairwise(bounds)]
        key = hashlib.sha256(data + model.sha256 + f"{context}/{slide}".encode()).hexdigest()[:12]
        what = f"{label} ({len(symbols):,} symbols, {len(streams)} lanes)"
        rec = args.cache / f"{key}-{len(streams)}.npy"
        rows, offsets, model_s = recording(model, streams, rec, what, context=context, slide=slide)
        for name in names:
            ensemble = settings_of(name)
            payloads, stats, host_s, ok = code_replayed(
                rows,
                offsets,
                streams,
                model.start_token,
                ensemble,
                Coding(),
                context,
                slide,
                not args.no_verify,
            )
            size = sum(len(p) for p in payloads)
            row = {
                "text": label,
                "context": context,
                "lanes": len(streams),
                "variant": name,
                "bytes": len(data),
                "payload_bytes": size,
                "bpb": 8 * size / max(1, len(data)),
                "model_us_per_token": 1e6 * model_s / max(1, len(symbols)),
                "host_us_per_token": 1e6 * host_s / max(1, len(symbols)),
                "skipped": stats.skipped,
                "verified": ok,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"\ncontext {context}, slide {slide}; payload bits per byte\n")
    print(
        "| text | lanes | variant | bytes | bpb | vs llm | vs default "
        "| model µs/tok | host µs/tok | verified |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        same = [b for b in results if b["text"] == r["text"]]
        llm = next((b for b in same if b["variant"] == "llm only"), None)
        default = next((b for b in same if b["variant"] == "default"), None)

        def rel(other: dict | None, size: int = r["payload_bytes"]) -> str:
            return f"{100 * (size / other['payload_bytes'] - 1):+.2f}%" if other else "-"

        print(
            f"| {r['text']} | {r['lanes']} | {r['variant']} | {r['payload_bytes']:,} | {r['bpb']:.4f} "
            f"| {rel(llm)} | {rel(default)} | {r['model_us_per_token']:.0f} | {r['host_us_per_token']:.0f} "
            f"| {r['verified']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
