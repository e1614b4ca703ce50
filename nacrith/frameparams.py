"""What a neural frame's coding needs, as one value for its encoder and its decoder.

A frame is coded with a window (context, slide, start token), a temperature,
an ensemble and its arithmetic, a number of streams, and maybe a dictionary
to start from. The encoder gets these from its options and the model
(options.CompressOptions.frame_params), the decoder from the file's header
(``FrameParams.of_header``); both then hand the same ``FrameParams`` to the
frame codec (framecodec.py), which makes the predictor from it and passes it
on to the engine and its C configuration. Nothing downstream reads a
setting back from anything else, and the rules a frame's settings follow
(settings.py) are checked here, once, when the value is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from nacrith.errors import FormatError
from nacrith.format import Header, pack_ensemble, stream_bounds
from nacrith.settings import (
    Coding,
    EnsembleSettings,
    check_batch,
    check_lanes,
    check_temperature,
    check_window,
    llm_batch,
)

if TYPE_CHECKING:  # dictionary.py imports Primer from here
    from nacrith.dictionary import Dictionary

__all__ = ["FrameParams", "Primer", "Primes"]


@dataclass(frozen=True)
class Primer:
    """What a dictionary (nacrith/dictionary.py) gives a frame before its first
    symbol: a priming text the model's windows start with, and the ensemble's
    learned state (nc_ens_regions' bytes), or None to start it afresh."""

    tokens: tuple[int, ...]
    state: bytes | None = None

    def primer(self) -> Primer:
        """Itself: a Primer serves where a dictionary does (Primes), as when a
        dictionary is being built and its state changes from frame to frame."""
        return self


class Primes(Protocol):
    """What frames can start from: a dictionary, or a Primer itself."""

    def primer(self) -> Primer: ...


@dataclass(frozen=True)
class FrameParams:
    """Every setting a neural frame's coding needs, the same for its encoder
    and its decoder (a test holds them equal for every golden case)."""

    #: Tokens the model sees at most, the start token included.
    context: int
    #: Tokens dropped from the front of a full window (after the start token).
    slide: int
    temperature: float
    #: The cheap models mixed with the language model; None: the model alone.
    ensemble: EnsembleSettings | None
    #: The arithmetic, and whether the streams share one ensemble.
    coding: Coding
    #: Streams a frame is split into at most, and the fewest symbols per stream
    #: (0 with one stream).
    lanes: int
    min_stream: int
    #: The token every stream's window starts with.
    start_token: int
    #: What the frames start from: a dictionary's priming text and learned
    #: state (a Dictionary, or a Primer while one is built); its frames are one stream.
    dictionary: Primes | None = None

    def __post_init__(self) -> None:
        check_window(self.context, self.slide)
        check_temperature(self.temperature)
        if self.lanes != 1 or self.min_stream != 0:
            check_lanes(self.lanes, self.min_stream)
        check_batch(self.batch, self.slide)
        if self.start_token < 0:
            raise ValueError(f"start token {self.start_token} is not a token")
        primer = self.primer
        if primer is not None:
            if len(primer.tokens) >= self.context:
                raise ValueError(
                    f"a priming text of {len(primer.tokens)} tokens does not fit a window of {self.context}"
                )
            if self.lanes != 1:
                raise ValueError("a dictionary's frames are one stream")

    @property
    def batch(self) -> int:
        """Most tokens a stream feeds the model at once (the confidence skip's catch-up)."""
        return llm_batch(self.ensemble)

    @property
    def primer(self) -> Primer | None:
        """The dictionary's priming text and learned state, if there is one to start from."""
        if self.dictionary is None:
            return None
        primer = self.dictionary.primer()
        return primer if primer.tokens else None

    def streams(self, n_symbols: int) -> list[int]:
        """Where a frame of n_symbols symbols is split into streams (their bounds)."""
        return stream_bounds(n_symbols, self.lanes, self.min_stream)

    @classmethod
    def of_header(
        cls, header: Header, model_start_token: int, dictionary: Dictionary | None = None
    ) -> FrameParams:
        """A file's frame settings, as its header records them: the start token
        it leaves out is the model's, and a dictionary it names must be the
        one given. FormatError when they do not fit together."""
        if header.model_id is None:
            raise ValueError("a file without a model has no neural frames")
        start = model_start_token if header.start_token is None else header.start_token
        try:
            params = cls(
                context=header.context,
                slide=header.slide,
                temperature=header.temperature,
                ensemble=header.ensemble,
                coding=header.coding,
                lanes=header.lanes,
                min_stream=header.min_stream,
                start_token=start,
                dictionary=dictionary,
            )
        except ValueError as exc:  # the header's values each passed; together they do not fit
            raise FormatError(f"corrupt file: {exc}") from None
        if dictionary is not None:
            _fits_its_dictionary(header, dictionary)
        return params


def _fits_its_dictionary(header: Header, dictionary: Dictionary) -> None:
    """A file's settings are its dictionary's (it was made with them): else the
    file is corrupt, or the dictionary is another with the same fingerprint."""
    if header.ensemble is not None and dictionary.ensemble is not None:
        # Compare as written: a layout's defaults read back in the layout they were written in.
        same = pack_ensemble(header.ensemble) == pack_ensemble(dictionary.ensemble)
    else:
        same = header.ensemble is dictionary.ensemble
    if not same or header.coding.arith != dictionary.arith:
        named = header.dict_id.hex() if header.dict_id else ""
        raise FormatError(f"corrupt file: its settings are not those of its dictionary {named}")
