"""What ``nacrith info`` (``-l``) shows of a Nacrith file or a dictionary: rows
for people, a dictionary of plain values for scripts (``--json``). Nothing here
loads a model: a version-2 file's model is named by finding its fingerprint
among the models this machine knows (models/registry.py)."""

from __future__ import annotations

from typing import Any

from nacrith.dictionary import Dictionary
from nacrith.format import Environment, FrameType, Header
from nacrith.reader import FileInfo
from nacrith.settings import Arithmetic, EnsembleSettings

__all__ = ["dictionary_report", "environment_text", "file_report", "rows_text"]

Rows = list[tuple[str, str]]


def rows_text(rows: Rows) -> str:
    return "\n".join(f"{k:<14}{v}" for k, v in rows)


def file_report(name: str, fi: FileInfo, extra_models: list[str]) -> tuple[Rows, dict[str, Any]]:
    """A Nacrith file's header and frames: rows (the frame table follows them
    in the text) and the same facts as plain values."""
    h, t = fi.header, fi.trailer
    bpb = 8 * fi.file_size / t.content_size if t.content_size else 0.0
    layout = "compact, one frame" if h.single != FrameType.END else "frames and an index"
    container = fi.file_size - sum(e.payload_size for e in t.entries)
    rows: Rows = [("file", name), ("format", f"version {h.version} ({layout})")]
    facts: dict[str, Any] = {
        "file": name,
        "kind": "file",
        "format_version": h.version,
        "one_frame": h.single != FrameType.END,
    }
    if h.model_id is None:
        rows.append(("model", "none (no neural frames: zstd and stored only)"))
        facts["model"] = None
    else:
        model_rows, facts["model"] = _model(h, extra_models)
        rows += [
            *model_rows,
            ("context", f"{h.context} tokens, slides by {h.slide}, starts from {_start_text(h)}"),
            ("temperature", f"{h.temperature:g}"),
            (
                "lanes",
                f"{h.lanes}: up to {h.lanes} streams per text frame, of at least {h.min_stream} symbols"
                if h.lanes > 1
                else "1 (one stream per text frame)",
            ),
            ("ensemble", _ensemble_text(h.ensemble)),
            ("coding", _coding_text(h)),
            ("made with", environment_text(h.environment)),
        ]
        facts["settings"] = {
            "context": h.context,
            "slide": h.slide,
            "start_token": h.start_token,
            "temperature": h.temperature,
            "lanes": h.lanes,
            "min_stream": h.min_stream,
            "ensemble": None if h.ensemble is None else _ensemble_values(h.ensemble),
            "arithmetic": h.coding.arith,
            "shared_ensemble": h.coding.shared,
        }
        facts["environment"] = h.environment
        if h.dict_id is not None:
            facts["dictionary"] = h.dict_id.hex()
    rows += [
        ("original", f"{t.content_size} bytes"),
        ("compressed", f"{fi.file_size} bytes ({bpb:.3f} bpb)"),
        ("container", f"{container} bytes besides the payloads"),
        ("frames", str(len(t.entries))),
        ("checked", fi.checked),
    ]
    facts |= {
        "original_bytes": t.content_size,
        "compressed_bytes": fi.file_size,
        "bpb": round(bpb, 6),
        "container_bytes": container,
        "checked": fi.checked,
        "frames": [
            {"type": e.type.name.lower(), "original_bytes": e.raw_size, "payload_bytes": e.payload_size}
            for e in t.entries
        ],
    }
    return rows, facts


def frame_table(fi: FileInfo) -> str:
    out = [f"  {'#':>4}  {'type':<12}{'original':>12}{'payload':>12}{'bpb':>8}"]
    for i, e in enumerate(fi.trailer.entries, 1):
        bits = f"{8 * e.payload_size / e.raw_size:>8.3f}" if e.raw_size else f"{'-':>8}"
        out.append(f"  {i:>4}  {e.type.name.lower():<12}{e.raw_size:>12}{e.payload_size:>12}{bits}")
    return "\n".join(out)


def dictionary_report(
    name: str, d: Dictionary, file_size: int, extra_models: list[str]
) -> tuple[Rows, dict[str, Any]]:
    """A dictionary file (docs/dictionary.md): what it primes the model with,
    the ensemble it brings, and what its parts cost."""
    from nacrith.models.registry import find_model

    found = find_model(d.model_id, extra_models)
    model = found.path.name if found is not None else f"not found here (fingerprint {d.model_id.hex()})"
    state = (
        f"{d.state_size:,} bytes when loaded"
        if d.state_size
        else "none (a priming text only: files made with it use no ensemble)"
    )
    parts = d.parts()
    rows: Rows = [
        ("file", name),
        ("format", f"dictionary version {d.version} (docs/dictionary.md)"),
        ("fingerprint", f"{d.fingerprint.hex()} (what a file made with it names)"),
        ("model", model),
        ("vocabulary", f"{d.vocab_size} tokens"),
        ("priming text", f"{len(d.tokens)} tokens"),
        ("ensemble", _ensemble_text(d.ensemble)),
        ("coding", f"arithmetic {d.arith}"),
        ("learned state", state),
        ("size", f"{file_size:,} bytes: " + ", ".join(f"{part} {size:,}" for part, size in parts)),
    ]
    facts = {
        "file": name,
        "kind": "dictionary",
        "version": d.version,
        "fingerprint": d.fingerprint.hex(),
        "model": {"id": d.model_id.hex(), "name": found.path.name if found is not None else None},
        "vocab_size": d.vocab_size,
        "priming_tokens": len(d.tokens),
        "ensemble": None if d.ensemble is None else _ensemble_values(d.ensemble),
        "arithmetic": d.arith,
        "state_bytes": d.state_size,
        "file_bytes": file_size,
        "parts": dict(parts),
    }
    return rows, facts


def _model(h: Header, extra: list[str]) -> tuple[Rows, dict[str, Any]]:
    """The file's model: as version 1 records it, or (version 2, a fingerprint
    only) as found among the models this machine knows."""
    assert h.model_id is not None
    if h.version == 1:
        rows = [
            ("model", h.model_name or "(unnamed)"),
            ("model sha256", h.model_id.hex()),
            ("vocabulary", f"{h.vocab_size} tokens + {h.escapes} escapes"),
        ]
        return rows, {"id": h.model_id.hex(), "name": h.model_name or None}
    from nacrith.models.registry import find_model

    if h.dict_id is not None:
        return [("model", f"the one dictionary {h.dict_id.hex()} was built for")], {"id": None, "name": None}
    found = find_model(h.model_id, extra)
    if found is None:
        rows = [("model", f"not found here (fingerprint {h.model_id.hex()}); name it with --model PATH")]
        return rows, {"id": h.model_id.hex(), "name": None}
    rows = [("model", found.path.name), ("model sha256", found.sha256.hex())]
    return rows, {"id": found.sha256.hex(), "name": found.path.name}


def _start_text(h: Header) -> str:
    return "the model's start token" if h.start_token is None else f"token {h.start_token}"


def _coding_text(h: Header) -> str:
    """The CODING parameter: the arithmetic, and whether a frame's streams share the ensemble."""
    arith = {
        Arithmetic.EXACT_DOUBLE: "arithmetic 1 (double)",
        Arithmetic.FLOAT32: "arithmetic 2 (float, vectorised)",
    }[Arithmetic(h.coding.arith)]
    if h.ensemble is None or h.lanes == 1:
        return arith
    return (
        f"{arith}, {'one ensemble shared by' if h.coding.shared else 'an ensemble for each of'} the streams"
    )


def _ensemble_values(ensemble: EnsembleSettings) -> dict[str, Any]:
    return {
        "parts": list(ensemble.enabled),
        **{k: v for k, v in vars(ensemble).items() if not k.startswith("_")},
    }


def _ensemble_text(ensemble: EnsembleSettings | None) -> str:
    if ensemble is None:
        return "none (the language model alone)"
    parts = []
    for part in ensemble.enabled:
        if part == "ngram":
            parts.append(f"n-gram orders {ensemble.ngram_min_order}-{ensemble.ngram_max_order}")
        elif part == "bias" and ensemble.bias_contexts:
            parts.append(f"bias with {ensemble.bias_contexts} context heads")
        elif part == "skip":
            agree = f" with the n-gram agreeing at {ensemble.skip_agree:.2g}" if ensemble.skip_agree else ""
            solo = f" or >= {ensemble.skip_solo_min_len} alone" if ensemble.skip_solo_min_len else ""
            parts.append(f"skip at match >= {ensemble.skip_min_len} tokens{agree}{solo}")
        else:
            parts.append(part)
    return ", ".join(parts) or "mixer only"


def environment_text(text: str) -> str:
    """Spell out an ENVIRONMENT string; show one of another form as it is."""
    env = Environment.parse(text)
    if env is None:
        return text or "(not recorded)"
    if not env.kernels:
        kernels = "kernel policy not recorded (extra buffer types allowed)"
    elif env.kernels == "avx2":
        kernels = "avx2 kernels (the pinned build profile)"
    else:
        kernels = f"{env.kernels} kernels"
    return f"llama-cpp-python {env.version}, {env.backend} backend, {kernels}, system info {env.system}"
