"""Build flags do not change a coded file.

The extension is built again at -O0, at -O3 and, where the CPU has them, at
-O3 with AVX2 and FMA enabled (wider vectors, fused multiply-add available
to the compiler); each build codes the same frames in a process of its own,
and every payload must be byte-identical to the installed build's. This is
what arithmetic 2 promises (csrc/vec.h): vectorised at any width, never
reassociated, never contracted. The frames use a vocabulary as wide as a
real model's, with non-finite logits, escapes, lanes sharing one ensemble
and the confidence skip, so every dense loop runs over its vector body and
its tail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Codes a few frames with the extension at argv[1] and prints their payloads' SHA-256.
WORKLOAD = textwrap.dedent(
    """
    import ctypes, hashlib, importlib.util, json, sys
    if sys.argv[1] != "installed":
        spec = importlib.util.spec_from_file_location("nacrith._ext", sys.argv[1])
        ext = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ext)
        sys.modules["nacrith._ext"] = ext
    import numpy as np
    from nacrith.engine import encode_streams
    from nacrith.frameparams import FrameParams
    from nacrith.settings import Coding, EnsembleSettings, llm_batch

    V = 49157  # not a multiple of the 16 partial sums: every loop has a tail

    class WidePredictor:
        n_vocab = V
        def __init__(self, lanes, batch):
            self.lanes, self.batch, self.slide = lanes, batch, 32
            size = lanes * batch
            self.token = (ctypes.c_int32 * size)()
            self.pos = (ctypes.c_int32 * size)()
            self.n_seq = (ctypes.c_int32 * size)()
            self.cells = [(ctypes.c_int32 * 1)() for _ in range(size)]
            self.seq = (ctypes.POINTER(ctypes.c_int32) * size)(
                *(ctypes.cast(c, ctypes.POINTER(ctypes.c_int32)) for c in self.cells))
            self.flags = (ctypes.c_int8 * size)()
            rng = np.random.default_rng(7)
            self.table = (rng.standard_normal((64, V)) * 4).astype(np.float32)
            self.table[:, 5] = -np.inf
            self.table[3, 7] = np.nan
            self.table[:, 11] = 30.0  # one token far above the rest in every row
            self.out = np.zeros((size, V), dtype=np.float32)
            self.windows = [[] for _ in range(lanes)]
        def batch_arrays(self):
            arrays = (self.token, self.pos, self.n_seq, self.seq, self.flags)
            return tuple(ctypes.addressof(a) for a in arrays)
        def clear(self):
            self.windows = [[] for _ in range(self.lanes)]
        def slide_lane(self, lane):
            del self.windows[lane][1 : 1 + self.slide]
        def evaluate(self, n):
            rows = 0
            for i in range(n):
                w = self.windows[self.cells[i][0]]
                w.append(self.token[i])
                if self.flags[i]:
                    h = (sum(w) * 31 + len(w)) % 64
                    self.out[rows] = self.table[w[-1] % 64] * 0.7 + self.table[h] * 0.3
                    rows += 1
            return int(self.out.ctypes.data)

    rng = np.random.default_rng(3)
    phrases = [list(rng.integers(0, V, rng.integers(3, 9))) for _ in range(12)]
    symbols = []
    while len(symbols) < 900:
        symbols += phrases[rng.integers(0, 12)]
        if rng.random() < 0.2:
            symbols.append(int(V + rng.integers(0, 256)))  # an escape
    symbols = [int(s) for s in symbols[:900]]
    skip = EnsembleSettings(skip_warmup=0, skip_min_len=6, skip_confidence=0.5, skip_batch=8)
    cases = {
        "llm only": (None, Coding(2, True), 1),
        "ensemble": (EnsembleSettings(), Coding(2, True), 1),
        "shared lanes, skip": (skip, Coding(2, True), 4),
        "arithmetic 1": (EnsembleSettings(), Coding(1, False), 2),
    }
    out = {}
    for name, (ensemble, coding, lanes) in cases.items():
        n = len(symbols)
        streams = [symbols[n * k // lanes : n * (k + 1) // lanes] for k in range(lanes)]
        predictor = WidePredictor(lanes, llm_batch(ensemble))
        params = FrameParams(96, 32, 0.9, ensemble, coding, lanes, 0 if lanes == 1 else 1, 1)
        payloads, stats = encode_streams(predictor, params, streams, 256)
        out[name] = hashlib.sha256(b"".join(payloads)).hexdigest()
        out[name + " skipped"] = stats.skipped
    print(json.dumps(out))
    """
)


def _has_avx2() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


BUILDS = {"-O0": "-O0", "-O3": "-O3"}
if _has_avx2():
    BUILDS["-O3 AVX2+FMA"] = "-O3 -mavx2 -mfma"


def _build(flags: str, where: Path) -> Path:
    """The extension compiled with these optimisation flags; the path of its shared object."""
    shutil.copytree(ROOT / "csrc", where / "csrc")  # cffi compiles in `where`, from relative paths
    script = (
        "import sys; sys.path.insert(0, 'csrc'); import build_ffi; "
        "print(build_ffi.ffibuilder.compile(tmpdir=sys.argv[1]))"
    )
    env = {**os.environ, "NACRITH_CFLAGS": flags}
    done = subprocess.run(
        [sys.executable, "-c", script, str(where)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def _code(extension: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, extension], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def installed() -> dict[str, object]:
    return _code("installed")


def test_the_workload_exercises_the_skip(installed):
    assert installed["shared lanes, skip skipped"] > 50


@pytest.mark.parametrize("flags", sorted(BUILDS))
def test_any_optimisation_level_codes_the_same_bytes(flags, installed, tmp_path):
    extension = _build(BUILDS[flags], tmp_path)
    assert _code(str(extension)) == installed, f"the build with {flags} codes other bytes"
    # The payloads are not all alike: the check compares something.
    assert len({v for k, v in installed.items() if not k.endswith("skipped")}) == 4
    assert hashlib.sha256(b"").hexdigest() not in installed.values()
