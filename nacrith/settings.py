"""What the encoder may be asked for, and the rules those settings follow.

Each rule lives here once: the compress options (frames.py), the header
(format.py) and the language model (models/llm.py) call these checks rather
than repeating them. format.py packs the settings into bytes; this module
knows nothing of bytes but float32 precision, since every float the header
stores is coded with exactly the value the decoder will read.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, fields, replace

__all__ = [
    "ARITHMETICS",
    "ENSEMBLE_LAYOUT",
    "LEGACY_CODING",
    "MAX_CONTEXT",
    "MAX_FRAME_SIZE",
    "MAX_LANES",
    "MIN_CONTEXT",
    "SWITCHES",
    "Coding",
    "EnsembleSettings",
    "check_batch",
    "check_frame_size",
    "check_lanes",
    "check_temperature",
    "check_window",
    "encoder_temperature",
    "float32",
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
#: The ensemble layout new files are packed in; format.py holds every layout's table.
ENSEMBLE_LAYOUT = 2
#: The ensemble's parts, in the order of their switch bits in the header.
SWITCHES = ("ngram", "match", "bias", "skip", "apm")


#: The arithmetics a neural frame's probabilities can be computed in: 1, the
#: double-precision path of the first files (csrc/cdf.h); 2, float written to
#: vectorise with the same bits at any SIMD width (csrc/vec.h).
ARITHMETICS = (1, 2)


@dataclass(frozen=True)
class Coding:
    """How the streams of a neural frame are coded, besides the model and the
    ensemble's settings (docs/format.md, CODING)."""

    #: The arithmetic of the CDF and the ensemble's dense work (ARITHMETICS).
    arith: int = 2
    #: The streams of a frame share one ensemble, which learns from all of them
    #: (each keeps its own contexts); else each stream has its own.
    shared: bool = True

    def __post_init__(self) -> None:
        if self.arith not in ARITHMETICS:
            raise ValueError(f"arithmetic must be one of {ARITHMETICS}, not {self.arith}")


#: What a file without a CODING parameter was coded with.
LEGACY_CODING = Coding(arith=1, shared=False)


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
class EnsembleSettings:
    """Switches and hyperparameters of the ensemble (docs/format.md, ENSEMBLE).

    The defaults are what ``nacrith compress`` uses. Floats are kept at float32
    precision, the precision of the header, so the encoder codes with exactly
    the values the decoder will read.
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
    ngram_min_order: int = 2
    ngram_max_order: int = 4
    ngram_table_bits: int = 18
    ngram_candidates: int = 8
    ngram_count_limit: int = 255
    #: Match model: tokens hashed to find a repeat, hash table and history sizes (log2),
    #: and how many events its learned hit rates average over at most.
    match_min_len: int = 6
    match_hash_bits: int = 20
    match_history_bits: int = 22
    match_rate_limit: int = 1023
    #: Bias head: AdaGrad learning rate and bound of each bias (nats).
    bias_lr: float = 0.5
    bias_limit: float = 8.0
    #: Bias head: learning rate of its scale of the logits, a per-document
    #: temperature (0: none; the scale stays 1).
    bias_scale_lr: float = 0.05
    #: Context heads: bias heads keyed on the stream's previous token modulo
    #: their number (at most 2^23 / vocabulary size), each added to the bias
    #: head where its context comes, and their learning rate (arithmetic 2
    #: only; 0: none). Inputs below frames.CONTEXT_HEADS_MIN_INPUT bytes are
    #: coded without them unless they are asked for by name
    #: (CompressOptions.fit_to_input; docs/measurements.md, "Ensemble").
    bias_contexts: int = 64
    bias_context_lr: float = 0.25
    #: Mixer: learning rate and bound of the weight logits.
    mixer_lr: float = 0.02
    mixer_limit: float = 8.0
    #: APM: learning rate of its tables.
    apm_rate: float = 0.005
    #: Confidence skip, never in the first skip_warmup tokens of a frame; either
    #: rule skips the LLM. Agreement: the match is at least skip_min_len tokens
    #: long with a learned hit rate of at least skip_confidence and, when
    #: skip_agree > 0 and the n-gram is on, the n-gram's highest order gives the
    #: match's token at least skip_agree. Solo (off at 0): the match alone is at
    #: least skip_solo_min_len tokens long with a hit rate of at least
    #: skip_solo_confidence. Skipped tokens reach the LLM in batches of at most
    #: skip_batch tokens. The agreement keeps the skip from costing bits where the
    #: match model is often wrong (docs/measurements.md, "Ensemble").
    skip_min_len: int = 16
    skip_confidence: float = 0.9
    skip_warmup: int = 256
    skip_batch: int = 32
    skip_agree: float = 0.9
    #: The solo rule catches text repeated beyond the n-gram's memory (docs/measurements.md).
    skip_solo_min_len: int = 24
    skip_solo_confidence: float = 0.98

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float":
                object.__setattr__(self, f.name, float32(float(value)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(what)

        need(1 <= self.ngram_min_order <= self.ngram_max_order <= 8, "n-gram orders must be 1..8, min <= max")
        need(8 <= self.ngram_table_bits <= 26, "n-gram table bits must be 8..26")
        need(1 <= self.ngram_candidates <= 16, "n-gram candidates must be 1..16")
        need(2 <= self.ngram_count_limit <= 65535, "n-gram count limit must be 2..65535")
        need(1 <= self.match_min_len <= 64, "match minimum length must be 1..64 tokens")
        need(8 <= self.match_hash_bits <= 26, "match hash bits must be 8..26")
        need(10 <= self.match_history_bits <= 30, "match history bits must be 10..30")
        need(2 <= self.match_rate_limit <= 65535, "match rate limit must be 2..65535")
        need(0 < self.bias_lr <= 4, "bias learning rate must be in (0, 4]")
        need(0 < self.bias_limit <= 64, "bias limit must be in (0, 64]")
        need(0 <= self.bias_scale_lr <= 4, "bias scale learning rate must be in [0, 4]")
        need(0 <= self.bias_contexts <= 65535, "context heads must be 0..65535")
        need(0 < self.bias_context_lr <= 4, "context heads' learning rate must be in (0, 4]")
        need(0 < self.mixer_lr <= 1, "mixer learning rate must be in (0, 1]")
        need(0 < self.mixer_limit <= 32, "mixer limit must be in (0, 32]")
        need(0 < self.apm_rate <= 1, "APM rate must be in (0, 1]")
        need(self.match_min_len <= self.skip_min_len <= 65535, "skip length must be match length..65535")
        need(0 < self.skip_confidence < 1, "skip confidence must be in (0, 1)")
        need(0 <= self.skip_warmup < 1 << 32, "skip warm-up must fit 32 bits")
        need(1 <= self.skip_batch <= 65535, "skip batch must be 1..65535 tokens")
        need(0 <= self.skip_agree < 1, "skip agreement must be in [0, 1)")
        need(
            self.skip_solo_min_len == 0 or self.match_min_len <= self.skip_solo_min_len <= 65535,
            "solo skip length must be 0 or match length..65535",
        )
        need(0 < self.skip_solo_confidence < 1, "solo skip confidence must be in (0, 1)")
        need(not self.skip or self.match, "the confidence skip needs the match model")

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


def llm_batch(ensemble: EnsembleSettings | None) -> int:
    """Tokens fed to the language model at once: 1 for the language model alone."""
    return ensemble.model_batch if ensemble is not None else 1
