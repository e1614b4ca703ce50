"""One frame's coding, for the writer, the reader and the workers alike.

The options a file is written with, the model they run, the smallest of
stored, zstd and neural coding of one frame's bytes and its decoding, and
what a compress or decompress call reports.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypedDict

from nacrith.dictionary import Dictionary
from nacrith.engine import FrameStats, Predictor, Progress, decode_streams, encode_streams
from nacrith.errors import FormatError, ModelMismatchError, NacrithWarning
from nacrith.format import (
    COMPACT_VERSIONS,
    ESCAPE_SYMBOLS,
    FORMAT_VERSION,
    VERSIONS,
    FrameType,
    Header,
    environment_backend,
    pack_ensemble,
    pack_streams,
    stream_bounds,
    unpack_streams,
)
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
from nacrith.testhooks import inject_fault, paced
from nacrith.tokens import SymbolCodec
from nacrith.zstdio import compress_frame

__all__ = [
    "CONTEXT_HEADS_MIN_INPUT",
    "DEFAULT_LANES",
    "DEFAULT_MIN_STREAM",
    "CodecModel",
    "CodedFrame",
    "CompressOptions",
    "FrameWorkers",
    "ModelIdentity",
    "OptionChanges",
    "ProgressInfo",
    "StreamProgress",
    "Summary",
    "check_model",
    "decode_neural",
    "encode_chunk",
]

#: The slide is the context over this, unless given.
SLIDE_FRACTION = 4
#: Lanes (streams per neural frame at most) and the fewest symbols per stream,
#: by default. The streams share one ensemble, so what a stream start still
#: costs is the model's empty window: about 25 bytes a stream on alice29.txt,
#: where 4 streams of 10,500 tokens cost 0.38% against one (docs/measurements.md,
#: "Lanes"). Streams of at least 10,240 tokens keep it under 0.5%.
DEFAULT_LANES = 16
DEFAULT_MIN_STREAM = 10240
#: Inputs of fewer bytes are coded without the ensemble's context heads
#: (EnsembleSettings.bias_contexts). What they save grows with the text: 0 to
#: 2 bytes on 6,000-byte texts, 1 on fields.c (11 KB), 11 on cp.html (25 KB),
#: 24 on asyoulik.txt (125 KB), 60 on alice29.txt (152 KB); asking for them
#: costs a file 8 bytes of header (version 2's default ensemble has none).
CONTEXT_HEADS_MIN_INPUT = 32 * 1024
#: Every escape costs at least 24 bits: a frame with this many escapes per
#: byte of the best classical encoding cannot win, so the model is not run.
ESCAPE_BYTES = 3


class CodecModel(Protocol):
    """A loaded language model: its identity, its predictor and its tokenizer."""

    sha256: bytes
    name: str
    environment: str
    symbols: SymbolCodec
    #: Longest context (tokens) this loaded model can hold.
    max_context: int
    #: The token new files start each frame from.
    start_token: int

    def predictor(
        self, context: int, slide: int, start_token: int, batch: int = 1, lanes: int = 1, primed: bool = False
    ) -> Predictor:
        """The model's predictor of ``lanes`` streams evaluated together, each a
        window of ``context`` tokens sliding by ``slide``, starting from
        ``start_token``, fed at most ``batch`` tokens at a time; ``primed``:
        able to start from a dictionary's priming text (Predictor.prime)."""
        ...


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
    #: The container's layout: 2, the compact one; 1 only to re-make the golden
    #: files of version 1 (tests).
    format_version: int = FORMAT_VERSION
    #: Frames start from this dictionary's priming text and learned ensemble.
    #: It brings its ensemble settings and arithmetic, which replace these
    #: options' (its learned state is that ensemble's), and its frames are one
    #: stream each (its state is one ensemble's), so ``lanes`` is 1.
    dictionary: Dictionary | None = None
    #: Whether for_input may leave the context heads out of a short input.
    #: False when the user set ensemble.bias_contexts: what is asked for is coded.
    fit_to_input: bool = True

    def __post_init__(self) -> None:
        if self.slide == 0:
            object.__setattr__(self, "slide", max(1, self.context // SLIDE_FRACTION))
        if self.dictionary is not None:
            if self.format_version not in COMPACT_VERSIONS:
                raise ValueError("dictionaries need the compact format (version 2 or later)")
            object.__setattr__(self, "ensemble", self.dictionary.ensemble)
            object.__setattr__(self, "coding", replace(self.coding, arith=self.dictionary.arith))
            object.__setattr__(self, "lanes", 1)
        check_window(self.context, self.slide)
        if self.dictionary is not None and len(self.dictionary.tokens) >= self.context:
            size = len(self.dictionary.tokens)
            raise ValueError(f"a priming text of {size} tokens does not fit a window of {self.context}")
        # The header stores float32; code with exactly the value the decoder will read.
        object.__setattr__(self, "temperature", encoder_temperature(self.temperature))
        check_frame_size(self.frame_size)
        check_lanes(self.lanes, self.min_stream)
        if self.ensemble is not None and self.ensemble.skip_batch > self.slide:
            # A catch-up batch must fit in the room one slide makes in the window (check_batch).
            object.__setattr__(self, "ensemble", replace(self.ensemble, skip_batch=self.slide))
        check_batch(self.batch, self.slide)
        if self.format_version not in VERSIONS:
            raise ValueError(f"format version must be one of {VERSIONS}, not {self.format_version}")

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

    def streams(self, n_symbols: int) -> list[int]:
        """Where a neural frame of n_symbols symbols is split into streams."""
        return stream_bounds(n_symbols, self.lanes, self.min_stream)


class OptionChanges(TypedDict, total=False):
    """CompressOptions fields given as keywords, to override a CompressOptions."""

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


def resolve_options(options: CompressOptions | None, changes: OptionChanges) -> CompressOptions:
    """options (default: CompressOptions()) with the keyword changes applied, checked again."""
    if options is None:
        return CompressOptions(**changes)
    return replace(options, **changes) if changes else options


@dataclass
class Summary:
    """What a compress or decompress call did."""

    raw_bytes: int = 0
    coded_bytes: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    #: Cost of the frames written as neural (what a decoder runs the model over).
    stats: FrameStats = field(default_factory=FrameStats)
    #: Symbols the model coded, including frames that then went out as zstd or stored.
    model_symbols: int = 0
    #: Segments the input was split into, and their bytes, by kind ("text", "binary").
    segments: dict[str, int] = field(default_factory=dict)
    segment_bytes: dict[str, int] = field(default_factory=dict)
    #: The segmented file lost to zstd alone, which was written instead.
    zstd_only: bool = False

    @property
    def bpb(self) -> float:
        return 8 * self.coded_bytes / self.raw_bytes if self.raw_bytes else 0.0


@dataclass(frozen=True)
class ProgressInfo:
    """Where a compress or decompress call stands, for progress displays."""

    #: Raw bytes done; inside a frame, estimated from the share of its symbols done.
    bytes_done: int
    #: Symbols coded so far, all frames together.
    symbols: int
    #: Bits written so far (compression only; 0 when decoding).
    coded_bits: float
    #: The bytes the whole call will have done, when known beforehand (a
    #: decoder knows it from the file; a compressor's caller knows the input's size).
    total_bytes: int | None = None


StreamProgress = Callable[[ProgressInfo], None]


def frame_progress(
    progress: StreamProgress | None, summary: Summary, frame_bytes: int, frame_symbols: int
) -> Progress | None:
    """Adapt the engine's per-frame callback to whole-stream progress."""
    if progress is None or frame_symbols == 0:
        return None
    base_bytes, base_symbols = summary.raw_bytes, summary.model_symbols
    base_bits = 8 * summary.coded_bytes

    def report(symbols: int, bits: float) -> None:
        progress(
            ProgressInfo(
                base_bytes + frame_bytes * symbols // frame_symbols,
                base_symbols + symbols,
                base_bits + bits if bits else 0.0,  # decoding reports no bits
            )
        )

    return report


@dataclass(frozen=True)
class CodedFrame:
    """A text chunk coded as the smallest of stored, zstd and neural."""

    type: FrameType
    payload: bytes
    #: Symbols of a neural frame (0 otherwise).
    symbols: int
    #: What the model's coding cost, whether or not it was kept.
    stats: FrameStats


#: Given a frame's symbol count, the engine's progress callback for it (or None).
ProgressFor = Callable[[int], "Progress | None"]


def encode_chunk(
    chunk: bytes, model: CodecModel, options: CompressOptions, progress_for: ProgressFor | None = None
) -> CodedFrame:
    """Smallest of stored, zstd and neural coding of one frame's bytes."""
    best_type, best, symbols_count = FrameType.STORED, chunk, 0
    stats = FrameStats()
    zstd_payload = compress_frame(chunk)
    if len(zstd_payload) < len(best):
        best_type, best = FrameType.ZSTD, zstd_payload
    symbols = model.symbols.encode(chunk)
    escapes = sum(1 for s in symbols if s >= model.symbols.n_vocab)
    if escapes * ESCAPE_BYTES < len(best):
        frame_progress = progress_for(len(symbols)) if progress_for is not None else None
        inject_fault(chunk)  # tests only: the model's process dies here, as llama.cpp can
        bounds = options.streams(len(symbols))
        primer = options.dictionary.primer() if options.dictionary is not None else None
        predictor = paced(  # tests only: a frame that takes as long as a test needs
            model.predictor(
                options.context,
                options.slide,
                model.start_token,
                options.batch,
                len(bounds) - 1,
                primed=primer is not None,
            ),
            chunk,
        )
        streams = [symbols[a:b] for a, b in itertools.pairwise(bounds)]
        payloads, stats = encode_streams(
            predictor,
            streams,
            ESCAPE_SYMBOLS,
            options.temperature,
            options.ensemble,
            options.coding,
            frame_progress,
            primer,
        )
        payload = pack_streams(payloads) if len(payloads) > 1 else payloads[0]
        stats.payload_bytes = len(payload)
        if len(payload) < len(best):
            best_type, best, symbols_count = FrameType.NEURAL, payload, len(symbols)
    return CodedFrame(best_type, best, symbols_count, stats)


def decode_neural(
    header: Header,
    symbols: int,
    payload: bytes,
    model: CodecModel,
    progress: Progress | None,
    dictionary: Dictionary | None = None,
) -> bytes:
    """The bytes of a neural frame of ``symbols`` symbols, decoded with a model
    already checked (and the header's dictionary, if it names one)."""
    if (dictionary.fingerprint if dictionary is not None else None) != header.dict_id:
        raise ValueError("decode_neural needs exactly the header's dictionary")
    if dictionary is not None:
        dictionary.check_model(model.sha256, model.symbols.n_vocab)
        dictionary_fits(header, dictionary)
    if header.context > model.max_context:
        raise FormatError(
            f"file needs a context of {header.context} tokens, the model holds {model.max_context}"
        )
    batch = llm_batch(header.ensemble)
    bounds = header.streams(symbols)
    parts = unpack_streams(payload, len(bounds) - 1) if len(bounds) > 2 else [payload]
    primer = dictionary.primer() if dictionary is not None else None
    predictor = paced(
        model.predictor(
            header.context, header.slide, start_token(header, model), batch, len(parts), primer is not None
        ),
        None,
    )
    counts = [b - a for a, b in itertools.pairwise(bounds)]
    streams = decode_streams(
        predictor,
        parts,
        counts,
        ESCAPE_SYMBOLS,
        header.temperature,
        header.ensemble,
        header.coding,
        progress,
        primer,
    )
    data = b"".join(model.symbols.decode(stream) for stream in streams)
    inject_fault(data)  # tests only: the model's process dies here, as llama.cpp can
    return data


def dictionary_fits(header: Header, dictionary: Dictionary) -> None:
    """A file's settings are its dictionary's (it was made with them): else the
    file is corrupt, or the dictionary is another with the same fingerprint."""
    ensemble = header.ensemble
    if ensemble is not None and dictionary.ensemble is not None:
        # Compare as written: a layout's defaults read back in the layout they were written in.
        same = pack_ensemble(ensemble) == pack_ensemble(dictionary.ensemble)
    else:
        same = ensemble is dictionary.ensemble
    if len(dictionary.tokens) >= header.context:
        raise FormatError("corrupt file: its window has no room for its dictionary's priming text")
    if not same or header.coding.arith != dictionary.arith or header.lanes != 1:
        named = header.dict_id.hex() if header.dict_id else ""
        raise FormatError(f"corrupt file: its settings are not those of its dictionary {named}")


def start_token(header: Header, model: CodecModel) -> int:
    """The header's start token, or where it leaves it out (version 2), the model's."""
    return model.start_token if header.start_token is None else header.start_token


@dataclass(frozen=True)
class ModelIdentity:
    """What check_model compares with a file: a model here, or the model of
    workers in other processes or on other machines."""

    sha256: bytes
    name: str
    n_vocab: int
    max_context: int
    environment: str

    @classmethod
    def of(cls, model: CodecModel) -> ModelIdentity:
        return cls(model.sha256, model.name, model.symbols.n_vocab, model.max_context, model.environment)


def _model_whereabouts(header: Header) -> str:
    """Where the model a file needs is, if this machine knows it: what a
    user needs to decode it, rather than a bare fingerprint."""
    from nacrith.models.registry import find_model  # on this error's path only: it hashes models

    assert header.model_id is not None
    found = find_model(header.model_id)
    if found is not None:
        return f" ({found.path.name}, found as {found.source}: decode with --model {found.path})"
    named = f" ({header.model_name})" if header.model_name else ""
    return f"{named}, which is not among the models found here (nacrith models lists them)"


def check_model(header: Header, model: ModelIdentity) -> None:
    """Refuse a model that is not the one the file was made with; warn on a different build."""
    if header.model_id is None:
        return  # a file without a model decodes with any
    if not header.uses_model(model.sha256):
        raise ModelMismatchError(
            f"file needs model {header.model_id.hex()[:16]}{_model_whereabouts(header)}; "
            f"the loaded model is {model.sha256.hex()[:16]} ({model.name})"
        )
    if header.vocab_size is not None and header.vocab_size != model.n_vocab:
        raise ModelMismatchError(
            f"file needs a vocabulary of {header.vocab_size} tokens, the model has {model.n_vocab}"
        )
    written, here = environment_backend(header.environment), environment_backend(model.environment)
    if written and here and written != here:
        warnings.warn(
            f"file was made on the {written.upper()} backend, decoding on the {here.upper()}: "
            "CPU and GPU arithmetic differ, so decoding is expected to fail its checksums",
            NacrithWarning,
            stacklevel=3,
        )
    elif header.environment and header.environment != model.environment:
        warnings.warn(
            f"file was made with {header.environment!r}, decoding with {model.environment!r}: "
            "decoding is guaranteed only on the same build and backend",
            NacrithWarning,
            stacklevel=3,
        )


class FrameWorkers(Protocol):
    """Code neural frames somewhere else (worker processes, parallel.py), in any
    order; the writer and the reader put the results in file order."""

    #: ENVIRONMENT of the files the workers write.
    environment: str

    def check(self, header: Header) -> None:
        """Raise ModelMismatchError unless the workers' model is the file's."""

    def encode(self, chunk: bytes, options: CompressOptions) -> Future[CodedFrame]: ...

    def decode(
        self, header: Header, symbols: int, payload: bytes, *, dictionary: Dictionary | None = None
    ) -> Future[bytes]: ...

    @property
    def depth(self) -> int:
        """Frames to keep in flight so that every worker stays busy."""
        ...


def done_future(value: Any) -> Future[Any]:
    """A future that already holds value (a frame coded here, in the calling thread)."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def failed_future(exc: BaseException) -> Future[Any]:
    """A future that already holds the error exc."""
    future: Future[Any] = Future()
    future.set_exception(exc)
    return future
