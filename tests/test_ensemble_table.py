"""The ensemble's table of hyperparameters (settings.HYPERPARAMETERS) and what is made from it.

Every hyperparameter is one row: its default, its value in every layout, its
tag and format in the header, its bounds and its C field. The settings, the
ENSEMBLE value's packing and the C parameters come from the rows; these tests
catch a row added by half (no C field, a C field never read, a tag taken
twice, a layout without its value) and C checks that drift from the table.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from nacrith._native import ffi, lib
from nacrith.format import pack_ensemble, unpack_ensemble
from nacrith.mixer import ensemble_params, part_params
from nacrith.settings import (
    ENSEMBLE_LAYOUT,
    HYPERPARAMETERS,
    SWITCHES,
    WIRE_MAX,
    EnsembleSettings,
    Hyperparameter,
)

CSRC = Path(__file__).resolve().parent.parent / "csrc"
ROWS = {row.name: row for row in HYPERPARAMETERS}
WITH_C = [row for row in HYPERPARAMETERS if row.c_field is not None]


def row_id(row: Hyperparameter) -> str:
    return row.name


def test_every_setting_but_the_switches_and_the_layout_is_a_row():
    names = [f.name for f in dataclasses.fields(EnsembleSettings)]
    assert [n for n in names if n not in (*SWITCHES, "layout")] == [row.name for row in HYPERPARAMETERS]
    assert len(HYPERPARAMETERS) >= 24  # the table is the whole ensemble, not an empty tuple


def test_tags_are_unique_and_leave_no_gap():
    """A reader refuses a tag it does not know: a gap would be a tag no writer can write."""
    assert sorted(row.tag for row in HYPERPARAMETERS) == list(range(len(HYPERPARAMETERS)))


@pytest.mark.parametrize("row", HYPERPARAMETERS, ids=row_id)
def test_a_row_has_a_value_in_every_layout_within_its_bounds(row):
    assert len(row.layouts) == ENSEMBLE_LAYOUT
    for value in (row.default, *row.layouts):
        assert value in row.bounds
        assert isinstance(value, float) == (row.kind is float), (
            "a float setting's values are written as floats"
        )


@pytest.mark.parametrize("row", HYPERPARAMETERS, ids=row_id)
def test_a_rows_bounds_fit_its_wire_format(row):
    assert (row.wire == "f") == (row.kind is float)
    if row.kind is int:
        assert row.bounds.low >= 0 and row.bounds.high <= WIRE_MAX[row.wire]


@pytest.mark.parametrize("row", HYPERPARAMETERS, ids=row_id)
def test_a_value_out_of_bounds_is_refused_by_name(row):
    outside = row.bounds.high + 1 if row.bounds.high < WIRE_MAX[row.wire] else row.bounds.low - 1
    with pytest.raises(ValueError, match=re.escape(row.what)):
        EnsembleSettings(**{row.name: outside})


def _newest_layout() -> EnsembleSettings:
    return EnsembleSettings(**{row.name: row.layouts[-1] for row in HYPERPARAMETERS})


def _other_value(row: Hyperparameter) -> float:
    """A value of the row other than the newest layout's that the other rules allow."""
    default = row.layouts[-1]
    for value in (row.bounds.low, row.bounds.high, default / 2, default + 1):
        value = row.kind(value)
        if value == default or value not in row.bounds:
            continue
        try:
            dataclasses.replace(_newest_layout(), **{row.name: value})
        except ValueError:
            continue
        return value
    raise AssertionError(f"no other value for {row.name}")


@pytest.mark.parametrize("row", HYPERPARAMETERS, ids=row_id)
def test_a_value_other_than_the_layouts_is_written_with_the_rows_tag(row):
    """The header stores a setting that differs from its layout's default, under
    its tag, in its format, and reads it back."""
    settings = dataclasses.replace(_newest_layout(), **{row.name: _other_value(row)})
    packed = pack_ensemble(settings)
    assert packed[:2] == bytes([ENSEMBLE_LAYOUT, 0b11111])
    assert packed[2] == row.tag and len(packed) == 3 + {"B": 1, "H": 2, "I": 4, "f": 4}[row.wire]
    assert unpack_ensemble(packed) == settings


# --- C --------------------------------------------------------------------------------


def test_the_c_struct_is_the_tables():
    """cffi compares csrc/build_ffi.py's declaration (made from the table) with
    the compiler's struct on its first use: a field the table lacks, or one in
    another order, raises here ("wrong total size", "wrong offset")."""
    assert ffi.sizeof("nc_ens_params") > 0
    fields = [name for name, _ in ffi.typeof("nc_ens_params").fields]
    top = []
    for row in WITH_C:
        name = row.c_field.split(".")[0]
        if name not in top:
            top.append(name)
    assert fields == ["flags", *top]


@pytest.mark.parametrize("row", WITH_C, ids=row_id)
def test_every_c_field_is_read_by_the_c_code(row):
    """A row whose field C declares but never reads is a hyperparameter that changes nothing."""
    member = row.c_field.split(".")[-1]
    code = "".join(path.read_text() for path in CSRC.glob("*.c"))
    assert re.search(rf"(->|\.){member}\b", code), f"no C code reads {row.c_field}"


@pytest.mark.parametrize("row", WITH_C, ids=row_id)
def test_the_c_parameters_carry_every_rows_value(row):
    settings = EnsembleSettings(**{r.name: r.layouts[0] for r in HYPERPARAMETERS})  # not the defaults
    owner = ensemble_params(settings)
    *parts, member = row.c_field.split(".")
    for part in parts:
        assert getattr(part_params(settings, part), member) == getattr(settings, row.name)
        owner = getattr(owner, part)
    assert getattr(owner, member) == getattr(settings, row.name)


def test_the_switches_are_the_c_flags():
    for bit, name in enumerate(SWITCHES):
        assert getattr(lib, f"NC_ENS_{name.upper()}") == 1 << bit
        on = dict.fromkeys(SWITCHES, False) | {name: True}
        on["match"] = name in ("match", "skip")  # the skip needs the match model
        assert ensemble_params(EnsembleSettings(**on)).flags & (1 << bit)


def _params(values: dict[str, float]) -> object:
    return ensemble_params(EnsembleSettings(**values))


def _poke(p: object, row: Hyperparameter, value: float) -> None:
    *parts, member = row.c_field.split(".")
    owner = p
    for part in parts:
        owner = getattr(owner, part)
    setattr(owner, member, value)


CHECKED = [row for row in WITH_C if row.c_checked]
#: Every checked row at its lowest, and at its highest: settings the table allows.
LOWEST = {row.name: row.bounds.low for row in CHECKED}
HIGHEST = {row.name: row.bounds.high for row in CHECKED}


def test_c_accepts_the_bounds_of_the_rows_it_checks():
    for values in (LOWEST, HIGHEST):
        assert lib.nc_ens_check_params(_params(values)) == lib.NC_OK


@pytest.mark.parametrize("row", CHECKED, ids=row_id)
def test_c_refuses_what_the_table_refuses_where_memory_safety_needs_it(row):
    """C checks the bounds of a value that sizes an allocation or indexes an
    array, and exactly the table's: just outside them it refuses."""
    below, above = _params(LOWEST), _params(HIGHEST)
    _poke(below, row, row.bounds.low - 1)
    _poke(above, row, row.bounds.high + 1)
    assert lib.nc_ens_check_params(below) == lib.NC_ERR_ARG
    assert lib.nc_ens_check_params(above) == lib.NC_ERR_ARG


@pytest.mark.parametrize("row", [row for row in WITH_C if not row.c_checked], ids=row_id)
def test_c_restates_no_other_bound(row):
    """Any other bound lives in the table alone: C takes a value outside it
    (the table's checks run on every value from a user or a file first)."""
    outside = row.bounds.high + 1 if row.bounds.high < 0xFFFF_FFFF else None
    if outside is None:
        pytest.skip("no value outside the bounds fits the C field")
    p = ensemble_params(EnsembleSettings())
    _poke(p, row, outside)
    assert lib.nc_ens_check_params(p) == lib.NC_OK


def test_c_refuses_the_skip_without_the_match_model_it_reads_and_unknown_parts():
    assert lib.nc_ens_check_params(ensemble_params(EnsembleSettings())) == lib.NC_OK
    no_match = ensemble_params(EnsembleSettings())
    no_match.flags &= ~lib.NC_ENS_MATCH
    assert lib.nc_ens_check_params(no_match) == lib.NC_ERR_ARG
    unknown = ensemble_params(EnsembleSettings())
    unknown.flags |= 1 << len(SWITCHES)
    assert lib.nc_ens_check_params(unknown) == lib.NC_ERR_ARG
