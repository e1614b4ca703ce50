"""One FrameParams for a frame's encoder and its decoder: the options and the
model make it when compressing, the header when decompressing, and the two
are the same value; the rules a frame's settings follow are checked when it
is made; a dictionary's settings follow one policy in every entry point."""

from __future__ import annotations

import io
import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from nacrith.dictionary import Dictionary
from nacrith.errors import FormatError
from nacrith.format import Header
from nacrith.frameparams import FrameParams, Primer
from nacrith.options import DICTIONARY_SETTINGS, CompressOptions, OptionChanges, option_names
from nacrith.settings import Coding, EnsembleSettings

GOLDEN = Path(__file__).parent / "golden"
START = 7


def header_of(options: CompressOptions, version: int) -> Header:
    """The header the writer records for these options (writer._header, without a model file)."""
    from nacrith.writer import _header

    class Model:
        sha256 = bytes(32)
        name = "model"
        environment = "0.3.36 cpu 2ce1275d avx2"
        start_token = START

        class symbols:  # the attribute CodecModel names
            n_vocab = 49152

    params = options.frame_params(START)
    return _header(Model(), params, replace(options, format_version=version), None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize(
    "options",
    [
        CompressOptions(),
        CompressOptions(context=64, slide=16, temperature=0.9, lanes=1),
        CompressOptions(ensemble=None, lanes=4, min_stream=16),
        CompressOptions(ensemble=EnsembleSettings(ngram_max_order=6), coding=Coding(1, False)),
        CompressOptions(context=100),  # the skip's batch shortened to the slide
    ],
    ids=["defaults", "small-window", "llm-only-lanes", "arithmetic-1", "short-context"],
)
def test_the_encoders_params_are_the_decoders(options, version):
    """Written into a header and read back, the frame's params are the ones
    the encoder coded with: both sides of a frame get the same value."""
    read = Header.read(io.BytesIO(header_of(options, version).pack()))
    assert FrameParams.of_header(read, START) == options.frame_params(START)


@pytest.mark.parametrize("folder", ["v2-avx2", "v3-avx2"])
def test_every_golden_case_gives_its_decoder_the_params_its_encoder_had(folder):
    cases = json.loads((GOLDEN / folder / "cases.json").read_text())
    from golden.regen import compress_options

    checked = 0
    for name, options in cases.items():
        header = Header.read(io.BytesIO((GOLDEN / folder / f"{name}.nc").read_bytes()))
        if header.model_id is None:
            continue  # no neural frame, no params
        size = (GOLDEN / folder / f"{name}.bin").stat().st_size
        encoder = CompressOptions(**compress_options(options)).for_input(size)
        assert FrameParams.of_header(header, 0) == encoder.frame_params(0), name
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"context": 32, "slide": 32}, "slide"),
        ({"temperature": 0.0}, "temperature"),
        ({"lanes": 2, "min_stream": 0}, "stream"),
        ({"slide": 8, "ensemble": EnsembleSettings(skip_batch=16)}, "batch"),
        ({"start_token": -1}, "start token"),
        ({"dictionary": Primer(tuple(range(64)))}, "does not fit a window of 64"),
        ({"lanes": 2, "min_stream": 8, "dictionary": Primer((1, 2))}, "one stream"),
    ],
)
def test_each_rule_is_checked_where_the_params_are_made(changes, words):
    base = FrameParams(64, 16, 1.0, EnsembleSettings(skip_batch=16), Coding(), 1, 0, START)
    with pytest.raises(ValueError, match=words):
        replace(base, **changes)


def test_a_header_whose_values_do_not_fit_together_is_a_format_error():
    header = header_of(CompressOptions(context=64, slide=16, lanes=1), 3)
    with pytest.raises(FormatError, match="corrupt file"):
        FrameParams.of_header(header, START, dictionary=Primer(tuple(range(80))))  # type: ignore[arg-type]


def test_option_changes_name_every_option():
    """OptionChanges (keyword changes of the API) is a TypedDict, which cannot be
    derived from the dataclass: held to it here."""
    assert set(OptionChanges.__annotations__) == option_names() == {f.name for f in fields(CompressOptions)}


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return Dictionary.read(GOLDEN / "dict-v1" / "changelog.ncd")


def test_a_dictionary_brings_its_settings_to_options_left_at_their_defaults(dictionary):
    options = CompressOptions(dictionary=dictionary)
    assert options.ensemble == dictionary.ensemble and options.lanes == 1
    assert options.coding.arith == dictionary.arith
    # Changing another option keeps them.
    assert replace(options, temperature=0.9).ensemble == dictionary.ensemble


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ensemble": None}, "ensemble"),
        ({"ensemble": EnsembleSettings().without("bias")}, "ensemble"),
        ({"coding": Coding(1, False)}, "arithmetic"),
        ({"lanes": 4}, "lanes"),
    ],
)
def test_a_dictionary_refuses_settings_that_differ_from_its_own(dictionary, changes, named):
    """One policy for the API, the CLI and the service (which show this message)."""
    with pytest.raises(ValueError, match=f"{DICTIONARY_SETTINGS}: leave {named} to it"):
        CompressOptions(dictionary=dictionary, **changes)
