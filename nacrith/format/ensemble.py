"""The ENSEMBLE parameter's value (docs/format.md, ENSEMBLE): the ensemble's
layout, its switches, and the hyperparameters that differ from the layout's
defaults, each under its tag in its format, all from settings.HYPERPARAMETERS."""

from __future__ import annotations

import struct
from typing import Any

from nacrith.errors import FormatError, UnsupportedVersionError
from nacrith.settings import ENSEMBLE_LAYOUT, HYPERPARAMETERS, SWITCHES, EnsembleSettings, float32

#: Ensemble parameter block (docs/format.md, ENSEMBLE): the layout, the switches,
#: then only the settings that differ from the layout's defaults, each as its
#: tag (one byte) and its value in the setting's format: both from the
#: setting's row of settings.HYPERPARAMETERS, as are the layouts' defaults.
#: A layout is a frozen column of that table: it never changes once files
#: exist, whatever ``nacrith compress`` comes to use. A setting added later
#: gets, in the existing layouts, the default that gives the behaviour of
#: files made before it existed. When compress's defaults have moved far from
#: the newest layout, a new layout with them as defaults keeps the default
#: header at 2 bytes (layout 2: 23 bytes of overrides of layout 1 became 0).
#: Writers use the newest layout; readers know every one.
_BY_TAG = {row.tag: row for row in sorted(HYPERPARAMETERS, key=lambda row: row.tag)}
#: Every layout a reader knows; writers use the newest, ENSEMBLE_LAYOUT.
LAYOUTS = range(1, ENSEMBLE_LAYOUT + 1)


def _layout_values(layout: int) -> dict[str, int | float]:
    """Every setting at the layout's default, floats at header precision."""
    return {
        row.name: float32(row.layouts[layout - 1]) if row.kind is float else int(row.layouts[layout - 1])
        for row in HYPERPARAMETERS
    }


def pack_ensemble(settings: EnsembleSettings) -> bytes:
    """The ENSEMBLE parameter: the layout, the switches, the settings that differ from the layout's."""
    if settings.layout not in LAYOUTS:
        raise ValueError(f"layout {settings.layout} is unknown")
    flags = sum(1 << i for i, name in enumerate(SWITCHES) if getattr(settings, name))
    out = bytearray([settings.layout, flags])
    defaults = _layout_values(settings.layout)
    for tag, row in _BY_TAG.items():
        value = getattr(settings, row.name)
        if value != defaults[row.name]:
            out += bytes([tag]) + struct.pack("<" + row.wire, value)
    return bytes(out)


def unpack_ensemble(data: bytes) -> EnsembleSettings:
    """Inverse of pack_ensemble; the settings keep the layout they were read in."""
    if len(data) < 2:
        raise FormatError("corrupt file header: ensemble parameters too short")
    layout = data[0]
    if layout not in LAYOUTS:
        known = ", ".join(map(str, LAYOUTS))
        raise UnsupportedVersionError(
            f"file uses ensemble layout {layout}; this nacrith knows layouts {known}"
        )
    flags = data[1]
    if flags >> len(SWITCHES):
        raise UnsupportedVersionError(f"file needs ensemble parts unknown to this nacrith ({flags:#04x})")
    values: dict[str, Any] = {name: bool(flags >> i & 1) for i, name in enumerate(SWITCHES)}
    values.update(_layout_values(layout))
    pos = 2
    last = -1
    while pos < len(data):
        tag = data[pos]
        if tag not in _BY_TAG:
            raise UnsupportedVersionError(f"file needs ensemble setting {tag}, unknown to this nacrith")
        if tag <= last:
            raise FormatError("corrupt file header: ensemble settings out of order")
        last = tag
        row = _BY_TAG[tag]
        fmt = struct.Struct("<" + row.wire)
        if pos + 1 + fmt.size > len(data):
            raise FormatError("corrupt file header: ensemble setting cut short")
        values[row.name] = fmt.unpack_from(data, pos + 1)[0]
        pos += 1 + fmt.size
    try:
        return EnsembleSettings(layout=layout, **values)
    except ValueError as exc:
        raise FormatError(f"corrupt file header: ensemble {exc}") from None


def ensemble_of_layout(layout: int, **changes: Any) -> EnsembleSettings:
    """Every part on with the layout's defaults (what a header of switches
    alone means), with ``changes`` applied: settings as files describe them.
    They are packed in that layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ensemble layout {layout}")
    return EnsembleSettings(layout=layout, **{**_layout_values(layout), **changes})
