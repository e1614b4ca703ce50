"""Golden files of format v1: they decode byte-exactly, forever.

The files in tests/golden/v1 were made by tests/golden/regen.py and are never
regenerated once released. If the encoder's output changes, the second test
fails: decide then whether that is a format change (a new version) or a bug.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from pathlib import Path

import pytest

from nacrith.errors import NacrithWarning
from nacrith.format import EnsembleSettings, Header

pytestmark = pytest.mark.llm

GOLDEN = Path(__file__).parent / "golden" / "v1"
CASES = json.loads((GOLDEN / "cases.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_file_decodes(codec, name):
    expected = (GOLDEN / f"{name}.bin").read_bytes()
    with warnings.catch_warnings():
        # A newer llama.cpp build warns that it differs from the recorded one; the bytes must still match.
        warnings.simplefilter("ignore", NacrithWarning)
        assert codec.decompress((GOLDEN / f"{name}.nc").read_bytes()) == expected


def split_header(blob: bytes) -> tuple[Header, bytes]:
    header = Header.read(io.BytesIO(blob))
    return dataclasses.replace(header, environment=""), blob[len(header.pack()) :]


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoder_still_writes_golden_bytes(codec, name):
    """Same header fields and the same frames, byte for byte.

    The ENVIRONMENT field is left out: it names the llama.cpp build and CPU
    kernels of the machine that wrote the file, and is informational.
    """
    data = (GOLDEN / f"{name}.bin").read_bytes()
    # Cases without "segment" were made before segmentation, by the fixed-size frame
    # writer; cases without "lanes", before lanes, with one stream per frame.
    options = {"segment": False, "lanes": 1, **CASES[name]}
    # The ensemble: the settings that differ from the layout's defaults (layout 1 unless named).
    if isinstance(options.get("ensemble"), dict):
        options["ensemble"] = EnsembleSettings.of_layout(**{"layout": 1, **options["ensemble"]})
    assert split_header(codec.compress(data, **options)) == split_header((GOLDEN / f"{name}.nc").read_bytes())
