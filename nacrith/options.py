"""What a file is written with: the encoder's options, and the one policy on a
dictionary's settings that every entry point (the API, the CLI, the service)
follows.

Every option is recorded in the file's header, so decoding takes none. The
settings a neural frame's coding needs go on as one FrameParams
(``CompressOptions.frame_params``); the rest (frame size, segmentation, the
container's version) stay with the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TypedDict

from nacrith.dictionary import Dictionary
from nacrith.format import COMPACT_VERSIONS, FORMAT_VERSION, VERSIONS
from nacrith.frameparams import FrameParams
from nacrith.settings import (
    Coding,
    EnsembleSettings,
    check_batch,
    check_frame_size,
    check_lanes,
    check_window,
    encoder_temperature,
    llm_batch,
)

__all__ = [
    "CONTEXT_HEADS_MIN_INPUT",
    "DEFAULT_LANES",
    "DEFAULT_MIN_STREAM",
    "DICTIONARY_SETTINGS",
    "CompressOptions",
    "OptionChanges",
    "resolve_options",
]

#: The slide is the context over this, unless given.
SLIDE_FRACTION = 4
#: Lanes (streams per neural frame at most) and the fewest symbols per stream,
#: by default: streams of at least 10,240 tokens keep what a stream's cold
#: start costs under 0.5% (docs/measurements.md, "Lanes").
DEFAULT_LANES = 16
DEFAULT_MIN_STREAM = 10240
#: Inputs of fewer bytes are coded without the ensemble's context heads, which
#: pay only on longer texts (docs/measurements.md, "Never worse than the model alone").
CONTEXT_HEADS_MIN_INPUT = 32 * 1024
#: Why a dictionary's files take none of these settings: its learned state is
#: one ensemble's, of its own settings and arithmetic, coding one stream.
DICTIONARY_SETTINGS = "a dictionary brings its own ensemble and arithmetic, and codes one stream per frame"


@dataclass(frozen=True)
class CompressOptions:
    """Encoder settings; all are written into the header, so decoding takes none."""

    #: Tokens the model sees at most, the start token included.
    context: int = 2048
    #: Tokens dropped from the front of the window when it is full; 0: a
    #: quarter of the context (512 of the default 2048), so that any context
    #: has a slide that fits it.
    slide: int = 0
    temperature: float = 1.0
    #: Raw bytes per frame; each frame restarts the model, and bounds memory.
    frame_size: int = 1 << 20
    #: The cheap models mixed with the language model; None: the language model alone.
    ensemble: EnsembleSettings | None = field(default_factory=EnsembleSettings)
    #: Split the input into text and binary frames (segment.py). Off: frames of
    #: frame_size bytes, each the smallest of neural, zstd and stored.
    segment: bool = True
    #: With segment: write zstd alone instead when that is smaller. Off only to
    #: study the segmented file itself (tests, measurements).
    zstd_fallback: bool = True
    #: Streams a neural frame is split into at most, coded in lockstep as the
    #: lanes of one llama.cpp context; a stream gets at least min_stream
    #: symbols, so short frames get fewer streams (format.stream_bounds).
    lanes: int = DEFAULT_LANES
    min_stream: int = DEFAULT_MIN_STREAM
    #: The arithmetic, and whether the streams of a frame share one ensemble.
    coding: Coding = field(default_factory=Coding)
    #: The container's layout: the compact one (3) unless the golden files of
    #: an older version are re-made (tests).
    format_version: int = FORMAT_VERSION
    #: Frames start from this dictionary's priming text and learned ensemble.
    #: It brings its ensemble settings and arithmetic (its learned state is
    #: that ensemble's) and its frames are one stream: options left at their
    #: defaults take its values; options set to others are refused
    #: (DICTIONARY_SETTINGS), here as in the CLI and the service.
    dictionary: Dictionary | None = None
    #: Whether for_input may leave the context heads out of a short input.
    #: False when the user set ensemble.bias_contexts: what is asked for is coded.
    fit_to_input: bool = True

    def __post_init__(self) -> None:
        if self.slide == 0:
            object.__setattr__(self, "slide", max(1, self.context // SLIDE_FRACTION))
        if self.dictionary is not None:
            self._take_the_dictionarys_settings(self.dictionary)
        check_window(self.context, self.slide)
        # The header stores float32; code with exactly the value the decoder will read.
        object.__setattr__(self, "temperature", encoder_temperature(self.temperature))
        check_frame_size(self.frame_size)
        check_lanes(self.lanes, self.min_stream)
        if self.ensemble is not None and self.ensemble.skip_batch > self.slide:
            # A catch-up batch must fit in the room one slide makes in the window
            # (check_batch): a short context (--context 100) gets a shorter one.
            object.__setattr__(self, "ensemble", replace(self.ensemble, skip_batch=self.slide))
        check_batch(self.batch, self.slide)
        if self.format_version not in VERSIONS:
            raise ValueError(f"format version must be one of {VERSIONS}, not {self.format_version}")

    def _take_the_dictionarys_settings(self, dictionary: Dictionary) -> None:
        """The dictionary's ensemble, arithmetic and one stream, in place of
        options left at their defaults; ValueError for options set to others."""
        if self.format_version not in COMPACT_VERSIONS:
            raise ValueError("dictionaries need the compact format (version 2 or later)")
        defaults = CompressOptions()
        differing = [
            name
            for name, asked, default, its in (
                ("ensemble", self.ensemble, defaults.ensemble, dictionary.ensemble),
                ("arithmetic", self.coding.arith, defaults.coding.arith, dictionary.arith),
                ("lanes", self.lanes, defaults.lanes, 1),
            )
            if asked not in (default, its)
        ]
        if differing:
            raise ValueError(f"{DICTIONARY_SETTINGS}: leave {', '.join(differing)} to it")
        object.__setattr__(self, "ensemble", dictionary.ensemble)
        object.__setattr__(self, "coding", replace(self.coding, arith=dictionary.arith))
        object.__setattr__(self, "lanes", 1)

    def for_input(self, content_size: int | None) -> CompressOptions:
        """These options for an input of content_size bytes (None: not known):
        below CONTEXT_HEADS_MIN_INPUT, the ensemble without its context heads.
        Like a classical compressor fitting its window to the source, it
        changes only what the header then records."""
        ensemble = self.ensemble
        if (
            ensemble is None
            or not self.fit_to_input
            or not ensemble.bias_contexts
            or self.dictionary is not None
            or content_size is None
            or content_size >= CONTEXT_HEADS_MIN_INPUT
        ):
            return self
        return replace(self, ensemble=replace(ensemble, bias_contexts=0))

    @property
    def batch(self) -> int:
        """Most tokens the language model is fed at once."""
        return llm_batch(self.ensemble)

    def frame_params(self, start_token: int) -> FrameParams:
        """What a neural frame is coded with: these options' frame settings,
        from the model's ``start_token``. The header records the same values,
        and FrameParams.of_header gives them back (min_stream is 0 with one
        stream, as the header writes it)."""
        return FrameParams(
            context=self.context,
            slide=self.slide,
            temperature=self.temperature,
            ensemble=self.ensemble,
            coding=self.coding,
            lanes=self.lanes,
            min_stream=self.min_stream if self.lanes > 1 else 0,
            start_token=start_token,
            dictionary=self.dictionary,
        )


class OptionChanges(TypedDict, total=False):
    """CompressOptions fields given as keywords, to override a CompressOptions.
    (A TypedDict cannot be derived from the dataclass; a test holds the two equal.)"""

    context: int
    slide: int
    temperature: float
    frame_size: int
    ensemble: EnsembleSettings | None
    segment: bool
    zstd_fallback: bool
    lanes: int
    min_stream: int
    coding: Coding
    format_version: int
    dictionary: Dictionary | None
    fit_to_input: bool


def resolve_options(options: CompressOptions | None, changes: OptionChanges) -> CompressOptions:
    """options (default: CompressOptions()) with the keyword changes applied, checked again."""
    if options is None:
        return CompressOptions(**changes)
    return replace(options, **changes) if changes else options


def option_names() -> set[str]:
    """CompressOptions' fields, which OptionChanges must name, no more."""
    return {f.name for f in fields(CompressOptions)}
