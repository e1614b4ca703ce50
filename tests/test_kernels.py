"""The kernels llama.cpp runs here: batched decodes that do not crash, plain
kernels (no extra buffer types), and a file that names the kernel policy.

On an Intel CPU with AMX, llama.cpp's default load put the weights in AMX
buffers and every decode of more than one token died from SIGILL, while
single-token decodes worked; the batch tests below would have failed there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from nacrith.crash import run_in_child
from nacrith.format import Environment
from nacrith.models import runtime
from nacrith.models.llm import LanguageModel
from nacrith.support.feeder import Feeder

ROOT = Path(__file__).resolve().parent.parent
TEXT = (
    b"The kernels are part of the schedule: the decoder must compute the very same numbers as "
    b"the encoder did, token after token, batch after batch, on whatever machine it runs. "
) * 4

PINNED = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "  # noqa: E501
ZEN4 = PINNED.replace(
    "BMI2 = 1 | ", "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
)
SAPPHIRE_RAPIDS = ZEN4.replace("REPACK = 1 | ", "REPACK = 1 | AMX_INT8 = 1 | ")
CUDA = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | " + PINNED
ARM = "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "


def test_cpu_features_and_profile_from_system_info():
    assert runtime.cpu_features(PINNED) == runtime.PINNED_FEATURES
    assert runtime.kernel_profile(PINNED) == "avx2"
    assert runtime.kernel_profile(CUDA) == "avx2"  # the CPU part of a GPU build
    assert runtime.cpu_features(ZEN4) == runtime.PINNED_FEATURES | {
        "AVX512",
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX512_BF16",
    }
    for other in (ZEN4, SAPPHIRE_RAPIDS, ARM, ""):
        assert runtime.kernel_profile(other) == "native"


def test_environment_strings_old_and_new():
    assert Environment.parse("0.3.36 cpu 2ce1275d avx2") == Environment("0.3.36", "cpu", "2ce1275d", "avx2")
    assert Environment.parse("0.3.36 gpu 1a2b3c4d") == Environment("0.3.36", "gpu", "1a2b3c4d", "")
    assert Environment.parse("llama.cpp b1234 / cpu") is None
    assert Environment.parse("") is None


def test_the_readme_ci_and_image_build_the_pinned_profile():
    """One profile, written out the same wherever llama-cpp-python is installed."""
    for path in ("README.md", ".ci/run", "deploy/Dockerfile"):
        assert f'CMAKE_ARGS="{runtime.PINNED_CMAKE_ARGS}"' in (ROOT / path).read_text(), path


def test_version_names_the_build_and_its_kernels():
    result = subprocess.run([sys.executable, "-m", "nacrith", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    info = runtime.load_llama().llama_print_system_info().decode()
    assert result.stdout.startswith("nacrith ")
    assert f"{runtime.kernel_profile(info)} kernels" in result.stdout


def test_wait_policy_is_set_before_llama_cpp_loads():
    """OpenMP reads its policy when llama.cpp loads it; a value the user set is kept."""
    script = (
        "import json, os\n"
        "from nacrith.models.runtime import WAIT_POLICY, load_llama\n"
        "load_llama()\n"
        "print(json.dumps({name: os.environ.get(name) for name in WAIT_POLICY}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in runtime.WAIT_POLICY}
    found = json.loads(
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True).stdout
    )
    assert found == runtime.WAIT_POLICY
    env["GOMP_SPINCOUNT"] = "123"
    found = json.loads(
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True).stdout
    )
    assert found["GOMP_SPINCOUNT"] == "123"


# --- the real model --------------------------------------------------------------


def _logit_digests(threads: int) -> dict[str, str]:
    """Logits of batches of 2, 8 and 32 tokens and of a 4-lane step, in this process."""
    model = LanguageModel(threads=threads)
    tokens = model.symbols.encode(TEXT)
    out = {}
    for size in (2, 8, 32):
        p = Feeder(model.windows(256, 64, batch=32), model.start_token)
        p.reset()
        digest = hashlib.sha256()
        for i in range(0, 96, size):
            p.feed([(0, tokens[i : i + size], True)])
            row = p.scores().tobytes()
            assert all(math.isfinite(x) for x in struct.unpack(f"{p.n_vocab}f", row))
            digest.update(row)
        out[f"batch {size}"] = digest.hexdigest()
    lanes = Feeder(model.windows(256, 64, lanes=4), model.start_token)
    lanes.reset(4)  # one decode of 4 tokens, one per sequence
    lanes.feed([(k, tokens[k : k + 1], True) for k in range(4)])
    out["4 lanes"] = hashlib.sha256(b"".join(lanes.scores(k).tobytes() for k in range(4))).hexdigest()
    model.close()
    return out


@pytest.mark.llm
def test_batched_decodes_run_and_repeat_exactly():
    """Batches of 2, 8 and 32 tokens and 4 lanes, in a child so that a crash is
    this test's failure ("died from SIGILL"), not the end of the test run; twice,
    with 1 and 2 threads, giving the same logits."""
    first = run_in_child(_logit_digests, 1)
    assert run_in_child(_logit_digests, 2) == first


@pytest.mark.llm
def test_models_load_without_extra_buffer_types(monkeypatch):
    llama_cpp = runtime.load_llama()
    seen = []
    load = llama_cpp.llama_model_load_from_file

    def spy(path, params):  # type: ignore[no-untyped-def]
        seen.append(params.use_extra_bufts)
        return load(path, params)

    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", spy)
    model = LanguageModel(threads=1)
    try:
        assert seen == [False]
        env = Environment.parse(model.environment)
        assert env is not None and env.backend == "cpu"
        info = llama_cpp.llama_print_system_info().decode()
        assert env.kernels == runtime.kernel_profile(info)  # no "+extra"
    finally:
        model.close()


# --- threads sharing the cores ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(governor: runtime.ThreadGovernor, clock: Clock, seconds: float, cores_free: float) -> None:
    """Decodes of 10 ms for ``seconds``, the process getting at most ``cores_free`` cores."""
    for _ in range(round(seconds / 0.01)):
        clock.now += 0.01
        governor.record(0.01, 0.01 * min(governor.threads, cores_free))


def test_governor_keeps_the_cores_of_a_process_alone():
    clock, seen = Clock(), []
    governor = runtime.ThreadGovernor(seen.append, 2, clock)
    run(governor, clock, 10, cores_free=2)
    assert governor.threads == 2 and seen == []


def test_governor_gives_up_taken_cores_and_takes_them_back_when_free():
    clock, seen = Clock(), []
    governor = runtime.ThreadGovernor(seen.append, 2, clock)
    run(governor, clock, 1, cores_free=1)  # another process took a core
    assert governor.threads == 1 and seen == [1]
    # Tries at 2, then 4, 8, 16, 32 and again 32 seconds, each failing within half a second.
    run(governor, clock, 100, cores_free=1)
    assert governor.threads == 1
    assert seen == [1] + [2, 1] * 6
    run(governor, clock, 40, cores_free=2)  # the other process is gone
    assert governor.threads == 2 and seen[-1] == 2
    run(governor, clock, 1, cores_free=1)  # taken again: the first try comes after 2 s
    run(governor, clock, 2.5, cores_free=2)
    assert governor.threads == 2


def test_governor_leaves_one_thread_alone():
    clock, seen = Clock(), []
    governor = runtime.ThreadGovernor(seen.append, 1, clock)
    run(governor, clock, 10, cores_free=0.3)
    assert governor.threads == 1 and seen == []


def test_governor_fits_many_threads_to_the_cores_left():
    clock, seen = Clock(), []
    governor = runtime.ThreadGovernor(seen.append, 8, clock)
    run(governor, clock, 1, cores_free=3)
    assert governor.threads == 3
