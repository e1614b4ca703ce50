"""Shared fixtures: the real model, loaded once per test session.

Tests run llama.cpp with one thread: the suite may share the machine with
other work, and llama.cpp's spinning threads slow down badly when they do.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from nacrith.api import Codec
from nacrith.models.llm import LanguageModel

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

TEST_THREADS = 1


@pytest.fixture(scope="session")
def model() -> LanguageModel:
    """The default GGUF (SmolLM2-135M-Instruct Q4_1), loaded once."""
    return LanguageModel(threads=TEST_THREADS)


@pytest.fixture(scope="session")
def codec(model: LanguageModel) -> Codec:
    """A Codec sharing the session's loaded model."""
    return Codec.from_model(model)
