"""llama.cpp's kernels on this machine: a fingerprint of their arithmetic, and their speed.

    python benchmarks/kernels.py                      # fingerprint, then speed at 1 and 2 threads
    python benchmarks/kernels.py --fingerprint-only   # compare builds or machines quickly
    python benchmarks/kernels.py --threads 1,2 --steps 96 --json kernels.json

**Fingerprint.** The model reads a fixed English text the ways a file can
make it: one token per call, batches of 2, 8 and 32 tokens (the confidence
skip's catch-up), and 16 lanes in lockstep. Each way gets the SHA-256 of
every logit it produced. Two builds, or two machines, whose fingerprints
agree run the same arithmetic, and a file made on one decodes on the other;
where a line differs, files of that shape do not cross. This is how the
pinned build profile was checked against native builds (docs/format.md,
"Build profile").

**Speed.** Tokens per second of one lane (one token per call) and of 16
lanes (16 tokens per call), at each thread count, with the model loaded as
Nacrith loads it (plain kernels) and with llama.cpp's extra buffer types
(repacked or AMX weights, where this CPU and build have them), which Nacrith
no longer uses. Both loads run here, in one process, one after the other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from nacrith.models import llm
from nacrith.models.llm import LanguageModel, resolve_model_path
from nacrith.models.runtime import kernel_profile, load_llama
from nacrith.support.feeder import Feeder

TEXT = (
    b"It was a bright cold day in April, and the clocks were striking thirteen. The hallway smelt "
    b"of boiled cabbage and old rag mats. At one end of it a coloured poster, too large for indoor "
    b"display, had been tacked to the wall. It depicted simply an enormous face, more than a metre "
    b"wide: the face of a man of about forty-five, with a heavy black moustache and ruggedly handsome "
    b"features. Winston made for the stairs. It was no use trying the lift. Even at the best of times "
    b"it was seldom working, and at present the electric current was cut off during daylight hours.\n"
)
CONTEXT = 512
SLIDE = 128
LANES = 16


def fingerprint(model: LanguageModel) -> dict[str, str]:
    """SHA-256 (first 16 hex digits) of the logits of each evaluation shape."""
    tokens = model.symbols.encode(TEXT)
    if any(t >= model.symbols.n_vocab for t in tokens):
        raise SystemExit("the fingerprint text must tokenize without escapes")
    out = {}
    for batch in (1, 2, 8, 32):
        p = Feeder(model.windows(CONTEXT, SLIDE, batch), model.start_token)
        p.reset()
        digest = hashlib.sha256(p.scores().tobytes())
        for i in range(0, len(tokens) - batch + 1, batch):
            p.feed([(0, tokens[i : i + batch], True)])
            digest.update(p.scores().tobytes())
        out[f"batch {batch}"] = digest.hexdigest()[:16]
    lanes = Feeder(model.windows(CONTEXT, SLIDE, lanes=LANES), model.start_token)
    lanes.reset(LANES)
    digest = hashlib.sha256()
    for step in range(len(tokens) // 2):
        # Lane k reads the text from token k on: 16 different contexts per call.
        lanes.feed([(k, (tokens[(step + k) % len(tokens)],), True) for k in range(LANES)])
        for k in range(LANES):
            digest.update(lanes.scores(k).tobytes())
    out[f"{LANES} lanes"] = digest.hexdigest()[:16]
    return out


def speed(model: LanguageModel, steps: int, repeat: int) -> dict[str, float]:
    """Tokens per second of one lane and of 16 lanes, over ``steps`` steps from a
    fresh window: the best of ``repeat`` runs, after one run to warm up."""
    tokens = model.symbols.encode(TEXT)

    def one_lane() -> float:
        p = Feeder(model.windows(CONTEXT, SLIDE), model.start_token)
        p.reset()
        start = time.perf_counter()
        for i in range(steps):
            p.advance(tokens[i % len(tokens)])
        return steps / (time.perf_counter() - start)

    def all_lanes() -> float:
        lanes = Feeder(model.windows(CONTEXT, SLIDE, lanes=LANES), model.start_token)
        lanes.reset(LANES)
        start = time.perf_counter()
        for i in range(steps):
            lanes.feed([(k, (tokens[(i + k) % len(tokens)],), True) for k in range(LANES)])
        return LANES * steps / (time.perf_counter() - start)

    out = {}
    for name, run in (("1 lane", one_lane), (f"{LANES} lanes", all_lanes)):
        out[name] = max(run() for _ in range(repeat + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="GGUF model (default: the bundled SmolLM2-135M)")
    parser.add_argument("--threads", default="1,2", help="thread counts to time (default 1,2)")
    parser.add_argument("--steps", type=int, default=64, help="steps timed per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure; the best counts")
    parser.add_argument("--fingerprint-only", action="store_true")
    parser.add_argument("--plain-only", action="store_true", help="time plain kernels only")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args(argv)
    path = resolve_model_path(args.model)
    threads = [int(t) for t in args.threads.split(",")]
    llama_cpp = load_llama()
    info = llama_cpp.llama_print_system_info().decode()
    model = LanguageModel(path, threads[0])
    report: dict[str, object] = {
        "environment": model.environment,
        "profile": kernel_profile(info),
        "system_info": info.strip(),
        "fingerprint": fingerprint(model),
    }
    print(f"{path.name}: {model.environment}\n{info.strip()}")
    for shape, digest in report["fingerprint"].items():  # type: ignore[union-attr]
        print(f"  fingerprint {shape:<9} {digest}")
    if not args.fingerprint_only:
        rows = []
        model.close()
        for extra in (False,) if args.plain_only else (False, True):
            for n in threads:
                llm.USE_EXTRA_BUFFER_TYPES = extra
                m = LanguageModel(path, n)
                rates = speed(m, args.steps, args.repeat)
                m.close()
                rows.append({"extra_bufts": extra, "threads": n, **rates})
                print(
                    f"  {'extra buffer types' if extra else 'plain kernels':<18} {n} thread(s): "
                    + ", ".join(f"{k} {v:7.1f} tok/s" for k, v in rates.items()),
                    flush=True,
                )
        llm.USE_EXTRA_BUFFER_TYPES = False
        report["speed"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
