"""The ENVIRONMENT parameter: which llama.cpp build and kernels wrote a file
(informational; a reader warns when its own differs)."""

from __future__ import annotations

from dataclasses import dataclass

#: The backends an ENVIRONMENT string names (models/runtime.py environment_record).
BACKENDS = ("cpu", "gpu")


@dataclass(frozen=True)
class Environment:
    """An ENVIRONMENT string, "<version> <backend> <hash> <kernels>": the
    llama-cpp-python version, "cpu" or "gpu", 8 hex digits of SHA-256 of
    llama.cpp's system info, and the kernel policy: the build profile
    ("avx2", "native"), run with plain kernels unless it ends in "+extra".
    Files made before the policy was recorded have three fields (kernels
    ""); they were made with llama.cpp's extra buffer types allowed, which
    changed nothing on x86-64 CPUs without AMX for Q4_1 and Q8_0 weights."""

    version: str
    backend: str
    system: str
    kernels: str = ""

    @classmethod
    def parse(cls, text: str) -> Environment | None:
        """None for a string of another form (a foreign writer's)."""
        parts = text.split()
        if len(parts) not in (3, 4) or parts[1] not in BACKENDS:
            return None
        return cls(*parts)


def environment_backend(environment: str) -> str:
    """The backend of an ENVIRONMENT string ("cpu" or "gpu"), or "" if it names none."""
    parsed = Environment.parse(environment)
    return parsed.backend if parsed else ""
