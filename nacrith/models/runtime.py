"""llama.cpp as this process loads it: how its threads wait, which CPU kernels
it runs, and what a file records of both.

Three decisions are made here, once per process, before and as llama.cpp loads:

- **Threads wait politely.** llama.cpp's CPU backend is built with OpenMP,
  and its threads meet at a barrier after every operation of the graph,
  hundreds of times per token. By default GNU OpenMP spins for milliseconds at
  each barrier before it sleeps, so two processes that each use every core
  spin against each other's threads and crawl (docs/measurements.md,
  "Threads that wait"). ``WAIT_POLICY`` bounds the spin; OpenMP reads it once, when it
  loads, so it is set before llama.cpp is imported, in every process that
  loads the model (the CLI, worker processes, Ray replicas). A value the user
  set is kept. ``ThreadGovernor`` then fits the number of threads to the
  cores the process actually gets.
- **Plain kernels.** llama.cpp may put weights into "extra buffer types" at
  load (repacked layouts, AMX tiles), chosen per machine. They change the
  arithmetic from one CPU to the next, and the AMX one killed every batched
  decode on an Intel machine with SIGILL. Models are loaded without them
  (models/llm.py), so the kernels are those compiled in, and nothing else.
- **The build profile.** Which kernels are compiled in is decided when
  llama-cpp-python is built. The README's install pins them (``PINNED_CMAKE_ARGS``:
  AVX2, FMA, F16C, not ``-march=native``), so that the same instructions run on
  every x86-64 machine; ``kernel_profile`` tells from llama.cpp's system info
  whether this build is that profile ("avx2") or another ("native").
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import time
from collections.abc import Callable
from typing import Any

from nacrith.errors import ModelError

__all__ = [
    "PINNED_CMAKE_ARGS",
    "PINNED_FEATURES",
    "WAIT_POLICY",
    "ThreadGovernor",
    "cpu_features",
    "environment_record",
    "kernel_profile",
    "load_llama",
]

#: The OpenMP waiting policy: spin this many rounds at a barrier (tens of
#: microseconds), then sleep. GNU OpenMP's default, 300,000 rounds, spins for
#: milliseconds, which a process sharing its cores cannot afford even for the
#: moments before ThreadGovernor notices; alone, 1,000 was as fast as the
#: default and 100 or none 2-3.5x slower (benchmarks/contention.py, a 2-core
#: virtual machine). GNU OpenMP reads GOMP_SPINCOUNT; LLVM's reads
#: KMP_BLOCKTIME (milliseconds; llama.cpp would set 200), not measured here.
WAIT_POLICY = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1"}

#: The CMake options of the pinned build profile, as the README's install passes
#: them: no -march=native; the instruction sets spelled out, since llama.cpp's
#: defaults for them change with SOURCE_DATE_EPOCH (AVX-512 and AMX are off by
#: default); and no floating-point contraction, so that no compiler fuses a
#: multiply and an add the source keeps apart (as for our own C code).
PINNED_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_BMI2=ON -DCMAKE_C_FLAGS=-ffp-contract=off -DCMAKE_CXX_FLAGS=-ffp-contract=off"
)
#: The instruction-set features llama.cpp reports for a build of that profile.
PINNED_FEATURES = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
#: Features in llama.cpp's CPU system info that name no instructions.
_NOT_ISA = frozenset({"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE"})

_LOG_CALLBACK = None


def load_llama() -> Any:
    """llama_cpp, imported with the waiting policy in place and its logging silenced."""
    for name, value in WAIT_POLICY.items():
        os.environ.setdefault(name, value)
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise ModelError(f"llama-cpp-python is not installed: {exc}") from None
    _silence_logs(llama_cpp)
    return llama_cpp


def _silence_logs(llama_cpp: Any) -> None:
    """llama.cpp logs every load to stderr; a compressor's stderr belongs to its user.
    The sink is a C function (csrc/log.h says why a Python one loses Ctrl-C)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        from nacrith._native import ffi, lib

        sink = int(ffi.cast("uintptr_t", ffi.addressof(lib, "nc_log_discard")))
        _LOG_CALLBACK = llama_cpp.llama_log_callback(sink)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()


def cpu_features(system_info: str) -> frozenset[str]:
    """The instruction-set features in the CPU part of llama.cpp's system info,
    e.g. "CPU : SSE3 = 1 | AVX2 = 1 | OPENMP = 1 | ..." gives {"SSE3", "AVX2"}."""
    match = re.search(r"\bCPU : (.*?)(?:\b[A-Z][A-Za-z0-9_]* : |$)", system_info)
    if match is None:
        return frozenset()
    found = re.findall(r"([A-Z][A-Z0-9_]*) = 1\b", match.group(1))
    return frozenset(found) - _NOT_ISA


def kernel_profile(system_info: str) -> str:
    """ "avx2" for a build of the pinned profile, else "native" (whatever the
    build's own flags chose: another instruction set, or another machine's)."""
    return "avx2" if cpu_features(system_info) == PINNED_FEATURES else "native"


def environment_record(llama_cpp: Any, backend: str, extra_buffer_types: bool = False) -> str:
    """What decides llama.cpp's arithmetic besides the model, as
    "<llama-cpp-python version> <backend> <hash> <kernels>": the backend is
    "cpu" or "gpu" (every layer offloaded); the hash, the first 8 hex digits
    of SHA-256 of llama.cpp's system info, names the instruction sets compiled
    in; the kernel policy is the build profile ("avx2" or "native") run with
    plain kernels, or "<profile>+extra" where extra buffer types were allowed
    (benchmarks only). Terse on purpose: it is in every file."""
    info = llama_cpp.llama_print_system_info()
    system = hashlib.sha256(info).hexdigest()[:8]
    policy = kernel_profile(info.decode(errors="replace")) + ("+extra" if extra_buffer_types else "")
    return f"{llama_cpp.__version__} {backend} {system} {policy}"


class ThreadGovernor:
    """llama.cpp's threads, fitted to the cores this process actually gets.

    Spinning threads are fast alone and ruinous when processes share the
    cores: each graph operation ends at a barrier, and a thread waiting there
    for a partner that another process has pushed off its core wastes its own
    time slice. No waiting policy serves both cases (a short spin or none
    slows a process alone, in a virtual machine, where waking an idle core is
    slow: docs/measurements.md, "Threads that wait"), so the number of threads
    follows the cores instead; it never changes a logit.

    The signal is the CPU time the process gets while llama.cpp decodes:
    alone, every thread is busy or spinning, so it is close to ``threads``
    times the wall time; when other processes take the cores, it falls
    towards the cores left to it. Then the threads drop to match. Whether the
    cores are free again is found by trying: every so often the threads go
    back up for one measurement, and the wait before the next try doubles
    each time the cores turn out still busy.
    """

    #: Seconds of decoding per measurement.
    WINDOW = 0.5
    #: A share of CPU below this fraction of the threads means the cores are taken.
    BUSY = 0.75
    #: Seconds before the first try at more threads, and the most between tries.
    FIRST_TRY = 2.0
    LONGEST_WAIT = 32.0

    def __init__(
        self,
        set_threads: Callable[[int], None],
        most: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._set = set_threads
        self.most = most
        self.threads = most
        self._clock = clock
        self._wall = 0.0
        self._cpu = 0.0
        self._trying = False
        self._wait = self.FIRST_TRY
        self._next_try = 0.0

    def record(self, wall: float, cpu: float) -> None:
        """One llama_decode took ``wall`` seconds and the process ``cpu`` seconds of CPU."""
        if self.most == 1:
            return
        if self.threads < self.most and not self._trying and self._clock() >= self._next_try:
            self._trying = True  # the next window tells whether the cores are free again
            self._wall = self._cpu = 0.0
            self._use(self.most)
            return
        self._wall += wall
        self._cpu += cpu
        if self._wall < self.WINDOW:
            return
        share = self._cpu / self._wall
        self._wall = self._cpu = 0.0
        busy = share < self.BUSY * self.threads
        if self._trying:
            self._trying = False
            if not busy:
                self._wait = self.FIRST_TRY  # the cores are back: keep them
                return
            self._wait = min(2 * self._wait, self.LONGEST_WAIT)
        elif busy and self.threads > 1:
            self._wait = self.FIRST_TRY  # cores we had were taken
        else:
            return
        self._use(max(1, min(self.threads - 1, int(share + 0.25))))
        self._next_try = self._clock() + self._wait

    def _use(self, threads: int) -> None:
        if threads != self.threads:
            self.threads = threads
            self._set(threads)
