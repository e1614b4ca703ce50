"""Regenerate the golden files of the current format version. Run by hand, then review the diff.

    python tests/golden/regen.py

Golden files of a released version must never change: a decoder keeps
reading them byte-exactly forever. Only add new cases: existing files are
never rewritten.

The files are written to ``v<version>-avx2``, with llama-cpp-python built
under the pinned profile (README, Quick start): that is what decodes them on
every machine. ``v1`` holds the first set, made before the profile was
pinned, by a build with AVX-512 kernels (tests/test_golden.py says what is
checked of it). ``v1-avx2`` holds version 1's cases (``cases(1)``), made
before version 2; ``v2-avx2`` version 2's, the compact layout; ``v3-avx2``
version 3's, the compact layout whose file of one neural frame says its
payload's size.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from nacrith.api import Codec
from nacrith.format import FORMAT_VERSION, ensemble_of_layout
from nacrith.models.llm import LanguageModel
from nacrith.settings import LEGACY_CODING, Coding

HERE = Path(__file__).parent / f"v{FORMAT_VERSION}-avx2"


def cases(version: int = FORMAT_VERSION) -> dict[str, tuple[bytes, dict[str, object]]]:
    if version in (2, 3):
        return compact_cases(version)
    return {
        **llm_only_cases(),
        **ensemble_cases(),
        **segmented_cases(),
        **lanes_cases(),
        **batch_cases(),
        **coding_cases(),
    }


def compact_cases(version: int) -> dict[str, tuple[bytes, dict[str, object]]]:
    """Version 2 or 3, the compact layout: files of one frame without frame
    header and index, a header that spells only what differs from version 2's
    defaults, and files of several frames. ``"format_version": 2`` (or 3)
    cases start from ``nacrith compress``'s defaults, not from version 1's.
    Version 3's cases are version 2's, named v3_..., written in version 3."""
    rng = random.Random(3)
    message = (
        b"nacrith (0.3.1-1) unstable; urgency=medium\n\n"
        b"  * New upstream release: a container of a few bytes for short messages.\n"
        b"  * Dictionaries prime the model for a domain.\n\n"
        b" -- Ada Lovelace <ada@example.org>  Tue, 01 Dec 2026 12:00:00 +0000\n"
    )
    noise = bytes(rng.randrange(256) for _ in range(300))
    v2: dict[str, object] = {"format_version": version}
    compact = {
        "hello": (b"Hello, world!\n", {**v2, "segment": False}),  # docs/format.md's example
        "message": (message, v2),
        "empty": (b"", v2),
        "stored": (noise[:40], v2),
        "zstd_stream": (noise[:60] * 8, v2),
        # Two frames and the index; the content size in the header.
        "frames": (noise + message * 2 + noise[::-1], v2),
        # Every setting away from its default.
        "settings": (
            message,
            {
                **v2,
                "context": 64,
                "slide": 16,
                "temperature": 0.9,
                "frame_size": 4096,
                "ensemble": {"ngram_max_order": 5},
                "lanes": 1,
                "coding": {"arith": 1, "shared": False},
            },
        ),
        "llm_only_lanes": (message * 2, {**v2, "ensemble": None, "lanes": 4, "min_stream": 16}),
    }
    return {f"v{version}_{name}": case for name, case in compact.items()}


def coding_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """Header parameter CODING: arithmetic 2 (csrc/vec.h), and streams that share
    one ensemble. The cases above have no "coding": arithmetic 1, an ensemble per stream."""
    text = (
        b"Arithmetic two computes the softmax in float, sixteen partial sums at a time, so that "
        b"a compiler may use any vector width and still produce the same frequencies. The lanes "
        b"of a frame share one ensemble, which learns from every stream in a fixed order.\n"
    )
    log = b"".join(f"12:00:{i:02d} INFO served /api/items in {i % 7 + 3} ms\n".encode() for i in range(24))
    coding = {"arith": 2, "shared": True}
    small = {"context": 64, "slide": 16, "coding": coding}
    skip = {"layout": 2, "skip_min_len": 8, "skip_confidence": 0.6, "skip_warmup": 0}
    return {
        "arith2_llm_only": (text + b"\x04 <|endoftext|>\n", {"ensemble": None, "coding": coding}),
        "arith2_ensemble": (text * 2, {"ensemble": {"layout": 2}, "coding": coding}),
        # 4 streams sharing one ensemble, one stream with an escape.
        "shared_lanes": (
            text + b"\x04" + text,
            {**small, "ensemble": {"layout": 2}, "lanes": 4, "min_stream": 8},
        ),
        # The same with the skip's catch-up batches across window slides.
        "shared_lanes_skip": (
            log * 2,
            {"context": 32, "slide": 8, "ensemble": skip, "lanes": 4, "min_stream": 16, "coding": coding},
        ),
        "arith2_lanes_llm_only": (text, {**small, "ensemble": None, "lanes": 3, "min_stream": 6}),
    }


def batch_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """Decodes of more than one token per llama.cpp call, the calls whose kernels
    differ most between CPUs (an AMX machine died on them): the confidence skip's
    catch-up batches, across window slides too, and 16 lanes in lockstep."""
    log = b"".join(f"12:00:{i:02d} INFO served /api/items in {i % 7 + 3} ms\n".encode() for i in range(24))
    skip = {"layout": 2, "skip_min_len": 8, "skip_confidence": 0.6, "skip_warmup": 0}
    text = (
        b"Sixteen lanes advance together: one llama.cpp call evaluates a token of every stream. "
        b"Each stream keeps its own window and its own coder, so a file made this way decodes "
        b"only when the decoder makes the very same calls, in the same order, with the same "
        b"kernels. That is why the golden files include a case like this one: a machine whose "
        b"batched arithmetic differs from the one that wrote it fails here first, with a clear "
        b"checksum error rather than with wrong bytes. The paragraph goes on for a while, about "
        b"nothing in particular, so that every one of the sixteen streams has a few dozen tokens "
        b"of ordinary English to predict, which the model does far better than zstd.\n"
    )
    return {
        # Catch-up batches of up to 8 tokens (the slide) in a window of 32: batches cross slides.
        "skip_slide": (log, {"context": 32, "slide": 8, "ensemble": skip}),
        # The same in 4 lanes, each with its own ensemble: a longer log, so that they skip.
        "lanes_skip_slide": (
            log * 2,
            {"context": 32, "slide": 8, "ensemble": skip, "lanes": 4, "min_stream": 16},
        ),
        # 16 lanes of the language model alone: 16 tokens per call.
        "lanes_16": (text, {"context": 64, "slide": 16, "ensemble": None, "lanes": 16, "min_stream": 4}),
        # The crash's reproduction: pretty-printed JSON, default settings (the skip fires).
        "json_default": (pretty_json(), {"ensemble": {"layout": 2}, "segment": True, "lanes": 16}),
    }


def pretty_json() -> bytes:
    """2.5 KB of pretty-printed JSON records, as an API might log them."""
    rng = random.Random(17)
    records: list[dict[str, object]] = []
    while len(json.dumps(records, indent=2)) < 2500:
        records.append(
            {
                "id": 1000 + len(records),
                "type": "event",
                "status": rng.choice(["ok", "ok", "ok", "error"]),
                "user": {"name": rng.choice(["ada", "brian"]), "role": "member", "active": True},
                "tags": ["api", "v2"],
                "latency_ms": rng.randrange(5, 40),
            }
        )
    return json.dumps(records, indent=2).encode()


def lanes_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """Neural frames split into streams that advance together (header parameter LANES)."""
    text = (
        b"Lanes split a frame into streams that the model evaluates together, one token of each "
        b"per call. Each stream has its own window, its own ensemble and its own coder, and the "
        b"payload lists the size of every stream but the last.\n"
    )
    small = {"context": 64, "slide": 16}
    return {
        # 4 streams, one with an escape (\x04 has no token); the default ensemble of layout 2.
        "lanes": (text + b"\x04" + text, {**small, "ensemble": {"layout": 2}, "lanes": 4, "min_stream": 8}),
        # 3 streams of the language model alone, the first one symbol longer.
        "lanes_llm_only": (text, {**small, "ensemble": None, "lanes": 3, "min_stream": 6}),
    }


def segmented_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """Text and binary segments (``"segment": true``; the cases above were made
    by the writer before it, which cut fixed-size frames)."""
    rng = random.Random(2)
    prose = (
        b"Segmentation gives the text parts of a file to the language model and the binary parts "
        b"to one zstd stream that runs through the whole file, so that binary pieces share their "
        b"context. A piece of text shorter than a hundred bytes stays with the binary data: a frame "
        b"of its own would cost more than it saves. Short gaps inside text, such as a stray NUL or "
        b"a form feed, are coded in place. Every frame still carries its own checksum, and the "
        b"index at the end lists them all, so a reader can tell what it holds without a model.\n"
    )
    noise = bytes(rng.randrange(256) for _ in range(300))
    options: dict[str, object] = {"ensemble": {"layout": 2}, "segment": True}
    return {
        "segmented": (noise + prose + bytes(40) + noise[::-1] + noise, options),
        "zstd_only": (noise[:50] * 30, options),
        "stored_only": (noise[:90], options),
    }


def ensemble_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """The ensemble: ``"ensemble"`` holds the settings that differ from the layout's
    defaults, and the layout when it is not 1."""
    text = b"Golden files pin the format: a decoder reads them byte for byte, forever.\r\n"
    log = b"".join(f"12:00:{i:02d} INFO served /api/items in {i % 7 + 3} ms\n".encode() for i in range(12))
    return {
        "ensemble_text": (text * 2 + b"<|endoftext|> \x04\xff tail.\n", {"ensemble": {}}),
        "ensemble_skip": (log, {"ensemble": {"skip_min_len": 8, "skip_confidence": 0.6, "skip_warmup": 0}}),
        "ensemble_agree": (  # the skip waits for the n-gram to agree (setting 18)
            log,
            {"ensemble": {"skip_min_len": 8, "skip_confidence": 0.6, "skip_warmup": 0, "skip_agree": 0.5}},
        ),
        # The match alone is enough (settings 19, 20): the n-gram never agrees at 0.99 here.
        "ensemble_solo": (
            log,
            {
                "ensemble": {
                    "skip_min_len": 8,
                    "skip_confidence": 0.6,
                    "skip_warmup": 0,
                    "skip_agree": 0.99,
                    "skip_solo_min_len": 8,
                    "skip_solo_confidence": 0.6,
                }
            },
        ),
        "ensemble_layout2": (text * 2 + b"<|endoftext|> \x04\xff tail.\n", {"ensemble": {"layout": 2}}),
        "ensemble_parts": (
            text * 2,
            {"ensemble": {"bias": False, "apm": False, "ngram_max_order": 6, "mixer_lr": 0.05}},
        ),
    }


def compress_options(options: dict[str, object]) -> dict[str, object]:
    """cases.json options as CompressOptions fields (the ensemble as EnsembleSettings).

    Cases without "segment" were made before segmentation, by the fixed-size
    frame writer; without "lanes", before lanes, with one stream per frame;
    without "coding", before the CODING parameter; without "min_stream", when
    its default was 16,384."""
    if options.get("format_version") in (2, 3):
        out = dict(options)
        if isinstance(out.get("ensemble"), dict):
            out["ensemble"] = ensemble_of_layout(**{"layout": 2, **out["ensemble"]})
        if isinstance(out.get("coding"), dict):
            out["coding"] = Coding(**out["coding"])
        return out
    # Cases without "min_stream" were made when its default was 16,384 tokens.
    out = {"segment": False, "lanes": 1, "min_stream": 16384, "format_version": 1, **options}
    # The ensemble: the settings that differ from the layout's defaults (layout 1 unless named).
    if isinstance(out.get("ensemble"), dict):
        out["ensemble"] = ensemble_of_layout(**{"layout": 1, **out["ensemble"]})
    coding = out.get("coding")
    out["coding"] = Coding(**coding) if isinstance(coding, dict) else LEGACY_CODING
    return out


def llm_only_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """The first cases, made before the ensemble existed: the language model alone."""
    return {name: (data, {**options, "ensemble": None}) for name, (data, options) in _llm_cases().items()}


def _llm_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    rng = random.Random(1)
    text = b"Golden files pin the format: a decoder reads them byte for byte, forever.\r\n"
    return {
        "empty": (b"", {}),
        "text": (text, {}),
        "special_and_escapes": (
            b"The end of one document is marked <|endoftext|> in many training sets, "
            + "and some bytes, like \x04, or characters like \U00040000, have no token at all; ".encode()
            + b"invalid UTF-8 such as \xff\xfe must survive too.\n",
            {"temperature": 0.9},
        ),
        "binary_stored": (bytes(rng.randrange(256) for _ in range(200)), {}),
        "repetitive": (b"0123456789" * 40, {}),
        "random_zstd": (bytes(rng.randrange(4) for _ in range(400)), {}),
        "mixed_frames": (
            text + b"\x00" * 120 + bytes(rng.randrange(256) for _ in range(60)),
            {"frame_size": 80},
        ),
        "small_context": (text * 3, {"context": 32, "slide": 8}),
    }


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    codec = Codec.from_model(LanguageModel(threads=1))
    manifest = {}
    for name, (data, options) in cases().items():
        manifest[name] = options
        if (HERE / f"{name}.nc").exists():
            continue  # released golden files never change
        (HERE / f"{name}.bin").write_bytes(data)
        (HERE / f"{name}.nc").write_bytes(codec.compress(data, **compress_options(options)))
    (HERE / "cases.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
