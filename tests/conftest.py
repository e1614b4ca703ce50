"""Shared fixtures: the three tiers of model the tests run on.

- **Stub** (tests/stub_model.py): no llama.cpp, a table of logits over a small
  vocabulary. Format, container, coder, segmenter and fuzz tests.
- **Tiny GGUF** (tests/tiny_model.py): 2 blocks of width 64 with the real
  vocabulary, through real llama.cpp. The ``model`` and ``codec`` fixtures, and
  $NACRITH_MODEL for every CLI and server process a test starts: round trips,
  lanes, workers, the CLI, the server, cancellation and determinism.
- **Real model** (SmolLM2-135M-Instruct Q4_1): the ``real_model`` and
  ``real_codec`` fixtures, only for what depends on its quality: the golden
  files, bpb bounds, beating zstd, and one end-to-end smoke test per
  interface. Tests using them are marked ``real_model`` automatically, so
  ``pytest -m 'not real_model'`` runs everything else.

Tests run llama.cpp with one thread: the suite may share the machine with
other work, and llama.cpp's spinning threads slow down badly when they do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from stub_model import StubModel
from tiny_model import TESTS_CACHE_ENV, tiny_model_path

from nacrith.api import Codec
from nacrith.errors import ModelError
from nacrith.models.llm import MODEL_ENV, LanguageModel, bundled_model_path

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

TEST_THREADS = 1
#: Fixtures that load the real model: a test using one is marked real_model.
REAL_MODEL_FIXTURES = {"real_model", "real_codec", "real_model_path"}


def pytest_configure(config: pytest.Config) -> None:
    # $NACRITH_MODEL names the tiny model for the whole session, so every CLI
    # and server process the tests start loads it, not the real one. Set before
    # test modules are imported: some copy os.environ when they are.
    try:
        os.environ[MODEL_ENV] = str(tiny_model_path())
    except ModelError as exc:  # the tiny model is made from the real one's tokenizer
        raise pytest.UsageError(f"the tests need the default model: {exc}") from None
    # nacrith's cache (~/.cache/nacrith: primed windows, dictionaries, models)
    # is the session's own: tests neither write into the user's nor find what
    # the user keeps there. The tiny model stays where it was made.
    os.environ[TESTS_CACHE_ENV] = str(tiny_model_path().parent)
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nacrith-test-cache-")
    config.add_cleanup(lambda: shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_model)


@pytest.fixture(scope="session")
def tiny_model_file() -> Path:
    """The tiny GGUF (generated once, then cached)."""
    return Path(os.environ[MODEL_ENV])


@pytest.fixture(scope="session")
def model(tiny_model_file: Path) -> LanguageModel:
    """The tiny GGUF, loaded once."""
    return LanguageModel(tiny_model_file, threads=TEST_THREADS)


@pytest.fixture(scope="session")
def codec(model: LanguageModel) -> Codec:
    """A Codec sharing the session's tiny model."""
    return Codec.from_model(model)


@pytest.fixture(scope="session")
def stub_model() -> StubModel:
    """The stub model (no llama.cpp)."""
    return StubModel()


@pytest.fixture(scope="session")
def stub_codec(stub_model: StubModel) -> Codec:
    """A Codec over the stub model."""
    return Codec.from_model(stub_model)  # type: ignore[arg-type]  # a CodecModel, not a LanguageModel


@pytest.fixture(scope="session")
def real_model_path() -> Path:
    """The default model's file (SmolLM2-135M-Instruct Q4_1), whatever $NACRITH_MODEL says."""
    return bundled_model_path()


@pytest.fixture(scope="session")
def real_model(real_model_path: Path) -> LanguageModel:
    """The default model, loaded once."""
    return LanguageModel(real_model_path, threads=TEST_THREADS)


@pytest.fixture(scope="session")
def real_codec(real_model: LanguageModel) -> Codec:
    """A Codec sharing the session's real model."""
    return Codec.from_model(real_model)
