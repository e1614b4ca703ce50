"""What the encoder may be asked for, and the rules those settings follow.

Each rule lives here once: the compress options (options.py), a frame's
settings (frameparams.py) and the header (nacrith.format) call these checks
rather than repeating them. nacrith.format packs the settings into bytes;
this module knows nothing of bytes but float32 precision, since every float
the header stores is coded with exactly the value the decoder will read, and
the format each hyperparameter's row names for it.

It imports only the standard library: csrc/build_ffi.py reads the
hyperparameters' table from this file to declare their C struct, before the
package can be imported. (Over 400 lines for that table: one row per
hyperparameter, its layouts, wire format and bounds, read best as one.)
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = [
    "ARITHMETICS",
    "ENSEMBLE_LAYOUT",
    "HYPERPARAMETERS",
    "LEGACY_CODING",
    "MAX_CONTEXT",
    "MAX_FRAME_SIZE",
    "MAX_LANES",
    "MIN_CONTEXT",
    "SWITCHES",
    "WIRE_MAX",
    "Arithmetic",
    "Bounds",
    "Coding",
    "EnsembleSettings",
    "Hyperparameter",
    "check_batch",
    "check_frame_size",
    "check_lanes",
    "check_temperature",
    "check_window",
    "encoder_temperature",
    "float32",
    "hyperparameter",
    "llm_batch",
]

#: Largest raw size of one frame; a reader accepts no more, which bounds memory per frame.
MAX_FRAME_SIZE = 1 << 30
#: Model window bounds, in tokens (the start token included).
MIN_CONTEXT = 16
MAX_CONTEXT = 1 << 20
#: Most streams one neural frame is split into: llama.cpp's sequence limit
#: (LLAMA_MAX_SEQ), since each stream is a sequence of one context.
MAX_LANES = 256
#: The ensemble layout new files are packed in; each hyperparameter's row holds its value in every layout.
ENSEMBLE_LAYOUT = 2
#: The ensemble's parts, in the order of their switch bits in the header.
SWITCHES = ("ngram", "match", "bias", "skip", "apm")


class Arithmetic(enum.IntEnum):
    """The arithmetics a neural frame's probabilities can be computed in
    (docs/format.md, CODING: the number is the file's). An IntEnum, so that
    the number read from a file or given as an int is one."""

    #: The double-precision path of the first files (csrc/cdf.h,
    #: csrc/mix_double.c): frozen, the decoder of files made with it.
    EXACT_DOUBLE = 1
    #: Float, written to vectorise with the same bits at any SIMD width
    #: (csrc/vec.h, csrc/mix_float32.c): what new files use.
    FLOAT32 = 2


#: Every arithmetic a reader knows.
ARITHMETICS = tuple(Arithmetic)


@dataclass(frozen=True)
class Coding:
    """How the streams of a neural frame are coded, besides the model and the
    ensemble's settings (docs/format.md, CODING)."""

    #: The arithmetic of the CDF and the ensemble's dense work: an Arithmetic,
    #: typed int so that an int read from a file or a dictionary is taken (and
    #: made an Arithmetic).
    arith: int = Arithmetic.FLOAT32
    #: The streams of a frame share one ensemble, which learns from all of them
    #: (each keeps its own contexts); else each stream has its own.
    shared: bool = True

    def __post_init__(self) -> None:
        if self.arith not in ARITHMETICS:
            known = ", ".join(map(str, ARITHMETICS))
            raise ValueError(f"arithmetic must be one of {known}, not {self.arith}")
        object.__setattr__(self, "arith", Arithmetic(self.arith))


#: What a file without a CODING parameter was coded with.
LEGACY_CODING = Coding(arith=Arithmetic.EXACT_DOUBLE, shared=False)


def float32(value: float) -> float:
    """value rounded to float32, the precision of every float in the header."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def check_temperature(temperature: float) -> None:
    """A temperature the coder can divide the scores by: positive and finite, and so its inverse."""
    if not 0 < temperature < math.inf or not 0 < 1.0 / temperature < math.inf:
        raise ValueError(f"temperature must be positive and finite, not {temperature}")


def encoder_temperature(temperature: float) -> float:
    """A temperature the encoder may be asked for, as the header will store it (float32)."""
    if not 0.05 <= temperature <= 20:
        raise ValueError(f"temperature must be 0.05..20, not {temperature}")
    return float32(temperature)


def check_window(context: int, slide: int) -> None:
    """A window of context tokens sliding by slide: the window must keep the
    start token and one more after a slide."""
    if not MIN_CONTEXT <= context <= MAX_CONTEXT:
        raise ValueError(f"context must be {MIN_CONTEXT}..{MAX_CONTEXT} tokens, not {context}")
    if not 1 <= slide <= context - 2:
        raise ValueError(f"slide must be 1..context-2 ({context - 2}) tokens, not {slide}")


def check_frame_size(frame_size: int) -> None:
    """Raw bytes per frame."""
    if not 1 <= frame_size <= MAX_FRAME_SIZE:
        raise ValueError(f"frame_size must be 1..{MAX_FRAME_SIZE} bytes, not {frame_size}")


def check_batch(batch: int, slide: int) -> None:
    """Tokens fed to the model at once must fit in the room one slide makes in the window."""
    if not 1 <= batch <= slide:
        raise ValueError(f"the model's batch (skip batch) must be 1..{slide} tokens (the slide), not {batch}")


def check_lanes(lanes: int, min_stream: int) -> None:
    """Streams per neural frame at most, and the fewest symbols each gets."""
    if not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be 1..{MAX_LANES}, not {lanes}")
    if min_stream < 1:
        raise ValueError(f"a stream needs at least 1 symbol, not {min_stream}")


@dataclass(frozen=True)
class Bounds:
    """The values a hyperparameter may take: low to high, each end included unless open."""

    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below  # NaN: neither

    def text(self, kind: type) -> str:
        """As messages and docs/format.md write it: "1..8" for integers, "(0, 4]" for floats."""
        if kind is int:
            return f"{self.low}..{self.high}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


#: Largest value of each wire format (docs/format.md, ENSEMBLE: uint8, uint16,
#: uint32, float32), which a row's bounds must fit.
WIRE_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF, "f": 3.4028234663852886e38}


@dataclass(frozen=True)
class Hyperparameter:
    """One row of the ensemble's table: everything about one hyperparameter
    but its use in C. EnsembleSettings declares one per field (``hyperparameter``);
    the ENSEMBLE value's packing (pack_ensemble in nacrith.format), the C parameters
    (nacrith/mixer.py, and csrc/build_ffi.py's declaration of them) and the
    checks of EnsembleSettings all come from these rows."""

    #: What ``nacrith compress`` uses.
    default: float
    #: Its value in each ensemble layout, layout 1 first: what a header that
    #: leaves it out means. Frozen once files exist (docs/format.md, ENSEMBLE).
    layouts: tuple[float, ...]
    #: Its index in the ENSEMBLE value, and the struct format of its value
    #: there (WIRE_MAX).
    tag: int
    wire: str
    bounds: Bounds
    #: Its name in messages, and the unit they give its bounds in.
    what: str
    unit: str = ""
    #: Its field in nc_ens_params (csrc/mix.h; "part.field" in a part's own
    #: struct), or None for a setting used in Python only.
    c_field: str | None = None
    #: Whether C refuses a value out of bounds too: only where a value out of
    #: bounds would break memory safety (an array bound, an allocation's size).
    #: tests/test_ensemble_table.py holds C's checks to these bounds.
    c_checked: bool = False
    #: The EnsembleSettings field, and its type (int or float): filled in from
    #: the field it describes.
    name: str = ""
    kind: type = int


_ROW = "hyperparameter"


def hyperparameter(
    default: float,
    *,
    layouts: tuple[float, ...],
    tag: int,
    wire: str,
    bounds: Bounds,
    what: str,
    unit: str = "",
    c_field: str | None = None,
    c_checked: bool = False,
) -> Any:
    """A field of EnsembleSettings with its row of the table (Hyperparameter)."""
    row = Hyperparameter(default, layouts, tag, wire, bounds, what, unit, c_field, c_checked)
    return field(default=default, metadata={_ROW: row})


@dataclass(frozen=True)
class EnsembleSettings:
    """Switches and hyperparameters of the ensemble (docs/format.md, ENSEMBLE).

    The defaults are what ``nacrith compress`` uses. Floats are kept at float32
    precision, the precision of the header, so the encoder codes with exactly
    the values the decoder will read.

    Each hyperparameter is one row (``hyperparameter``): its default, its
    value in every ensemble layout, its tag and format in the header, its
    bounds, and its field in C. Adding one is a row here, a line of
    docs/format.md's table, and its field and its use in C (csrc/mix.h).
    """

    ngram: bool = True
    match: bool = True
    bias: bool = True
    skip: bool = True
    apm: bool = True
    #: The layout the settings are packed in: its defaults are not stored. It
    #: does not change what the settings mean, so it is not compared.
    layout: int = field(default=ENSEMBLE_LAYOUT, compare=False)
    #: Token n-gram: orders, 2^table_bits slots per order, continuations per context,
    #: and the count at which a context's counts are halved. Order 1 is left out:
    #: the bias head learns the unigrams (docs/measurements.md, "Ensemble").
    ngram_min_order: int = hyperparameter(
        2, layouts=(1, 2), tag=0, wire="B", bounds=Bounds(1, 8), what="n-gram orders",
        c_field="ngram.min_order", c_checked=True,
    )  # fmt: skip
    ngram_max_order: int = hyperparameter(
        4, layouts=(4, 4), tag=1, wire="B", bounds=Bounds(1, 8), what="n-gram orders",
        c_field="ngram.max_order", c_checked=True,
    )  # fmt: skip
    ngram_table_bits: int = hyperparameter(
        18, layouts=(18, 18), tag=2, wire="B", bounds=Bounds(8, 26), what="n-gram table bits",
        c_field="ngram.table_bits", c_checked=True,
    )  # fmt: skip
    ngram_candidates: int = hyperparameter(
        8, layouts=(8, 8), tag=3, wire="B", bounds=Bounds(1, 16), what="n-gram candidates",
        c_field="ngram.candidates", c_checked=True,
    )  # fmt: skip
    ngram_count_limit: int = hyperparameter(
        255, layouts=(255, 255), tag=4, wire="H", bounds=Bounds(2, 65535), what="n-gram count limit",
        c_field="ngram.count_limit",
    )  # fmt: skip
    #: Match model: tokens hashed to find a repeat, hash table and history sizes (log2),
    #: and how many events its learned hit rates average over at most.
    match_min_len: int = hyperparameter(
        6, layouts=(6, 6), tag=5, wire="B", bounds=Bounds(1, 64), what="match minimum length",
        unit=" tokens", c_field="match.min_len",
    )  # fmt: skip
    match_hash_bits: int = hyperparameter(
        20, layouts=(20, 20), tag=6, wire="B", bounds=Bounds(8, 26), what="match hash bits",
        c_field="match.hash_bits", c_checked=True,
    )  # fmt: skip
    match_history_bits: int = hyperparameter(
        22, layouts=(22, 22), tag=7, wire="B", bounds=Bounds(10, 30), what="match history bits",
        c_field="match.history_bits", c_checked=True,
    )  # fmt: skip
    match_rate_limit: int = hyperparameter(
        1023, layouts=(1023, 1023), tag=8, wire="H", bounds=Bounds(2, 65535), what="match rate limit",
        c_field="match.rate_limit",
    )  # fmt: skip
    #: Bias head: AdaGrad learning rate and bound of each bias (nats).
    bias_lr: float = hyperparameter(
        0.5, layouts=(0.5, 0.5), tag=9, wire="f", bounds=Bounds(0, 4, open_low=True),
        what="bias learning rate", c_field="bias_lr",
    )  # fmt: skip
    bias_limit: float = hyperparameter(
        8.0, layouts=(8.0, 8.0), tag=10, wire="f", bounds=Bounds(0, 64, open_low=True), what="bias limit",
        c_field="bias_limit",
    )  # fmt: skip
    #: Bias head: learning rate of its scale of the logits, a per-document
    #: temperature (0: none; the scale stays 1). Files made before it existed: 0.
    bias_scale_lr: float = hyperparameter(
        0.05, layouts=(0.0, 0.05), tag=21, wire="f", bounds=Bounds(0, 4), what="bias scale learning rate",
        c_field="bias_scale_lr",
    )  # fmt: skip
    #: Context heads: bias heads keyed on the stream's previous token modulo
    #: their number (at most 2^23 / vocabulary size), each added to the bias
    #: head where its context comes, and their learning rate (arithmetic 2
    #: only; 0: none, as in files made before they existed). Inputs below
    #: frames.CONTEXT_HEADS_MIN_INPUT bytes are coded without them unless they
    #: are asked for by name (CompressOptions.fit_to_input; docs/measurements.md,
    #: "Ensemble"): the layouts have none, so a small file's header stays 2 bytes.
    bias_contexts: int = hyperparameter(
        64, layouts=(0, 0), tag=22, wire="H", bounds=Bounds(0, 65535), what="context heads",
        c_field="bias_contexts",
    )  # fmt: skip
    bias_context_lr: float = hyperparameter(
        0.25, layouts=(0.25, 0.25), tag=23, wire="f", bounds=Bounds(0, 4, open_low=True),
        what="context heads' learning rate", c_field="bias_context_lr",
    )  # fmt: skip
    #: Mixer: learning rate and bound of the weight logits.
    mixer_lr: float = hyperparameter(
        0.02, layouts=(0.02, 0.02), tag=11, wire="f", bounds=Bounds(0, 1, open_low=True),
        what="mixer learning rate", c_field="mixer_lr",
    )  # fmt: skip
    mixer_limit: float = hyperparameter(
        8.0, layouts=(8.0, 8.0), tag=12, wire="f", bounds=Bounds(0, 32, open_low=True), what="mixer limit",
        c_field="mixer_limit",
    )  # fmt: skip
    #: APM: learning rate of its tables.
    apm_rate: float = hyperparameter(
        0.005, layouts=(0.005, 0.005), tag=13, wire="f", bounds=Bounds(0, 1, open_low=True), what="APM rate",
        c_field="apm_rate",
    )  # fmt: skip
    #: Confidence skip, never in the first skip_warmup tokens of a frame; either
    #: rule skips the LLM. Agreement: the match is at least skip_min_len tokens
    #: long with a learned hit rate of at least skip_confidence and, when
    #: skip_agree > 0 and the n-gram is on, the n-gram's highest order gives the
    #: match's token at least skip_agree. Solo (off at 0): the match alone is at
    #: least skip_solo_min_len tokens long with a hit rate of at least
    #: skip_solo_confidence. Skipped tokens reach the LLM in batches of at most
    #: skip_batch tokens. The agreement keeps the skip from costing bits where the
    #: match model is often wrong (docs/measurements.md, "Ensemble"); files made
    #: before it existed ask for none (0).
    skip_min_len: int = hyperparameter(
        16, layouts=(24, 16), tag=14, wire="H", bounds=Bounds(1, 65535), what="skip length", unit=" tokens",
        c_field="skip_min_len",
    )  # fmt: skip
    skip_confidence: float = hyperparameter(
        0.9, layouts=(0.98, 0.9), tag=15, wire="f", bounds=Bounds(0, 1, open_low=True, open_high=True),
        what="skip confidence", c_field="skip_confidence",
    )  # fmt: skip
    skip_warmup: int = hyperparameter(
        256, layouts=(256, 256), tag=16, wire="I", bounds=Bounds(0, 0xFFFF_FFFF), what="skip warm-up",
        unit=" tokens", c_field="skip_warmup",
    )  # fmt: skip
    #: (Python only: the batches the language model is fed, frames.py and engine.py.)
    skip_batch: int = hyperparameter(
        32, layouts=(32, 32), tag=17, wire="H", bounds=Bounds(1, 65535), what="skip batch", unit=" tokens",
    )  # fmt: skip
    skip_agree: float = hyperparameter(
        0.9, layouts=(0.0, 0.9), tag=18, wire="f", bounds=Bounds(0, 1, open_high=True), what="skip agreement",
        c_field="skip_agree",
    )  # fmt: skip
    #: The solo rule catches text repeated beyond the n-gram's memory
    #: (docs/measurements.md); files made before it existed have none (0).
    skip_solo_min_len: int = hyperparameter(
        24, layouts=(0, 24), tag=19, wire="H", bounds=Bounds(0, 65535), what="solo skip length",
        unit=" tokens", c_field="skip_solo_min_len",
    )  # fmt: skip
    skip_solo_confidence: float = hyperparameter(
        0.98, layouts=(0.98, 0.98), tag=20, wire="f", bounds=Bounds(0, 1, open_low=True, open_high=True),
        what="solo skip confidence", c_field="skip_solo_confidence",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for row in HYPERPARAMETERS:
            if row.kind is float:
                object.__setattr__(self, row.name, float32(float(getattr(self, row.name))))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        for row in HYPERPARAMETERS:
            if getattr(self, row.name) not in row.bounds:
                raise ValueError(f"{row.what} must be {row.bounds.text(row.kind)}{row.unit}")
        # The rules that tie settings together; the table bounds each alone.
        rules = (
            (self.ngram_min_order <= self.ngram_max_order, "n-gram orders must be 1..8, min <= max"),
            (self.match_min_len <= self.skip_min_len, "skip length must be match length..65535"),
            (
                self.skip_solo_min_len == 0 or self.match_min_len <= self.skip_solo_min_len,
                "solo skip length must be 0 or match length..65535",
            ),
            (not self.skip or self.match, "the confidence skip needs the match model"),
        )
        for ok, message in rules:
            if not ok:
                raise ValueError(message)

    @property
    def model_batch(self) -> int:
        """Most tokens fed to the language model at once: skipped ones catch up in batches."""
        return self.skip_batch if self.skip else 1

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the parts switched on."""
        return tuple(name for name in SWITCHES if getattr(self, name))

    def without(self, *parts: str) -> EnsembleSettings:
        """These settings with the named parts switched off (the skip goes with the match)."""
        unknown = set(parts) - set(SWITCHES)
        if unknown:
            raise ValueError(f"unknown ensemble parts: {', '.join(sorted(unknown))}")
        off = {name: False for name in parts}
        if "match" in parts:
            off["skip"] = False
        return replace(self, **off)


#: The ensemble's hyperparameters, one row each, in EnsembleSettings' order.
HYPERPARAMETERS: tuple[Hyperparameter, ...] = tuple(
    replace(f.metadata[_ROW], name=f.name, kind=float if f.type == "float" else int)
    for f in fields(EnsembleSettings)
    if _ROW in f.metadata
)


def llm_batch(ensemble: EnsembleSettings | None) -> int:
    """Tokens fed to the language model at once: 1 for the language model alone."""
    return ensemble.model_batch if ensemble is not None else 1
