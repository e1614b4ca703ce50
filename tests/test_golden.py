"""Golden files of every format version: they decode byte-exactly, forever.

``golden/v1-avx2`` (version 1), ``golden/v2-avx2`` (version 2, the compact
layout) and ``golden/v3-avx2`` (version 3, which adds Payload_Size) were made
by tests/golden/regen.py with llama-cpp-python built under
the pinned profile (README, Quick start), whose kernels are the same on every
x86-64 machine: they must decode on every machine CI runs on, and the encoder
must still write them, byte for byte. This is the cross-machine test: the
files were made on another CPU than most that check them.

``golden/v1`` is the first set, made before the profile was pinned, by a
native build with AVX-512 kernels (its ENVIRONMENT hash ``b932495e``). AVX-512
and AVX2 kernels compute different logits, so its neural frames decode only
on a build with those kernels; everywhere else they must fail their checks
(ChecksumError), never give wrong bytes, and its zstd and stored files decode
everywhere (docs/format.md, "Build profile").
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from pathlib import Path

import pytest
from golden.regen import compress_options

from nacrith.errors import ChecksumError, NacrithWarning
from nacrith.format import Environment, FrameType, Header
from nacrith.models import runtime
from nacrith.reader import read_info

pytestmark = pytest.mark.llm

HERE = Path(__file__).parent / "golden"
FIRST = HERE / "v1"
FIRST_CASES = json.loads((FIRST / "cases.json").read_text())
#: The pinned sets: (directory, case name) of every case.
PINNED_SETS = ("v1-avx2", "v2-avx2", "v3-avx2")
PINNED_CASES = {
    (folder, name): options
    for folder in PINNED_SETS
    for name, options in json.loads((HERE / folder / "cases.json").read_text()).items()
}


def pinned_ids(case: tuple[str, str]) -> str:
    return f"{case[0]}/{case[1]}"


def decode_quietly(codec, blob: bytes) -> bytes:
    with warnings.catch_warnings():
        # A file made by another build warns that it differs; the bytes must still match.
        warnings.simplefilter("ignore", NacrithWarning)
        return codec.decompress(blob)


def test_the_tests_run_on_the_pinned_profile():
    """The pinned golden files decode under the pinned build profile: say so
    plainly when the installed llama-cpp-python is another build."""
    info = runtime.load_llama().llama_print_system_info().decode()
    assert runtime.kernel_profile(info) == "avx2", (
        f"llama-cpp-python was built with other CPU kernels ({info.strip()}); "
        "reinstall it as the README's Quick start does (CMAKE_ARGS of the pinned profile)"
    )


@pytest.mark.parametrize("case", sorted(PINNED_CASES), ids=pinned_ids)
def test_golden_file_decodes(real_codec, case):
    folder, name = case
    expected = (HERE / folder / f"{name}.bin").read_bytes()
    assert decode_quietly(real_codec, (HERE / folder / f"{name}.nc").read_bytes()) == expected


def split_header(blob: bytes) -> tuple[Header, bytes]:
    header = Header.read(io.BytesIO(blob))
    return dataclasses.replace(header, environment=""), blob[len(header.pack()) :]


#: Cases whose model decodes take several tokens at once (the skip's catch-up
#: batches): the calls an AMX machine died on. json_default is that crash's
#: reproduction, pretty-printed JSON with the default settings.
SKIPPING = ("skip_slide", "lanes_skip_slide", "json_default")


@pytest.mark.parametrize("case", sorted(PINNED_CASES), ids=pinned_ids)
def test_encoder_still_writes_golden_bytes(real_codec, case):
    """Same header fields and the same frames, byte for byte.

    The ENVIRONMENT field is left out: it names the llama.cpp build and CPU
    kernels of the machine that wrote the file, and is informational. Version
    2 leaves it out of the file on the pinned profile, so there the whole file
    is the same.
    """
    folder, name = case
    data = (HERE / folder / f"{name}.bin").read_bytes()
    golden = (HERE / folder / f"{name}.nc").read_bytes()
    options = compress_options(PINNED_CASES[case])
    out = io.BytesIO()
    summary = real_codec.compress_stream(io.BytesIO(data), out, content_size=len(data), **options)
    assert split_header(out.getvalue()) == split_header(golden)
    if folder in ("v2-avx2", "v3-avx2"):
        assert out.getvalue() == golden
    if name in SKIPPING:
        assert summary.stats.skipped > 0  # the model was fed catch-up batches


def test_the_pinned_set_records_the_pinned_profile():
    for folder, name in PINNED_CASES:
        header = Header.read(io.BytesIO((HERE / folder / f"{name}.nc").read_bytes()))
        if header.model_id is not None:
            env = Environment.parse(header.environment)
            assert env is not None and env.kernels == "avx2", name


@pytest.mark.parametrize("name", sorted(FIRST_CASES))
def test_first_set_decodes_exactly_or_fails_its_checks(real_codec, name):
    """Files made with AVX-512 kernels: exact where this build has them (and
    wherever a file has no neural frame), else exact or a ChecksumError (on the
    pinned build, measured: a ChecksumError), and wrong bytes nowhere."""
    blob = (FIRST / f"{name}.nc").read_bytes()
    expected = (FIRST / f"{name}.bin").read_bytes()
    info = read_info(io.BytesIO(blob))
    neural = any(e.type == FrameType.NEURAL for e in info.trailer.entries)
    same_kernels = info.header.environment.split()[:3] == real_codec.model.environment.split()[:3]
    try:
        assert decode_quietly(real_codec, blob) == expected
    except ChecksumError:
        assert neural and not same_kernels  # the only way this file may fail
