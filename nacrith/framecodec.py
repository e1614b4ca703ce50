"""One frame's coding, in both directions, for the writer, the reader and the workers alike.

Encoding a frame of text is choosing the smallest of stored, zstd and neural
coding of its bytes; decoding a neural frame runs the same steps backwards.
Both directions take the frame's settings as one FrameParams (frameparams.py),
make the model's predictor from it and hand it to the engine: what the
encoder did is what the decoder does, because both are given the same value.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from nacrith.dictionary import Dictionary
from nacrith.engine import FrameStats, Predictor, Progress, decode_streams, encode_streams
from nacrith.errors import FormatError
from nacrith.format import ESCAPE_SYMBOLS, FrameType, Header, pack_streams, unpack_streams
from nacrith.frameparams import FrameParams
from nacrith.identity import ModelIdentity
from nacrith.reports import ProgressFor
from nacrith.tokens import SymbolCodec
from nacrith.zstdio import compress_frame

__all__ = [
    "CodecModel",
    "CodedFrame",
    "FrameWorkers",
    "decode_text",
    "decoding_params",
    "done_future",
    "encode_text",
    "failed_future",
]

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

    def predictor(self, params: FrameParams, streams: int = 1) -> Predictor:
        """The predictor of a frame of ``streams`` streams coded with ``params``."""
        ...


@dataclass(frozen=True)
class CodedFrame:
    """A text chunk coded as the smallest of stored, zstd and neural."""

    type: FrameType
    payload: bytes
    #: Symbols of a neural frame (0 otherwise).
    symbols: int
    #: What the model's coding cost, whether or not it was kept.
    stats: FrameStats


def encode_text(
    chunk: bytes, model: CodecModel, params: FrameParams, progress_for: ProgressFor | None = None
) -> CodedFrame:
    """The smallest of stored, zstd and neural coding of one frame's bytes."""
    best_type, best, symbols_count = FrameType.STORED, chunk, 0
    stats = FrameStats()
    zstd_payload = compress_frame(chunk)
    if len(zstd_payload) < len(best):
        best_type, best = FrameType.ZSTD, zstd_payload
    symbols = model.symbols.encode(chunk)
    escapes = sum(1 for s in symbols if s >= model.symbols.n_vocab)
    if escapes * ESCAPE_BYTES < len(best):
        bounds = params.streams(len(symbols))
        streams = [symbols[a:b] for a, b in itertools.pairwise(bounds)]
        predictor = model.predictor(params, len(streams))
        progress = progress_for(len(symbols)) if progress_for is not None else None
        payloads, stats = encode_streams(predictor, params, streams, ESCAPE_SYMBOLS, progress)
        payload = pack_streams(payloads) if len(payloads) > 1 else payloads[0]
        stats.payload_bytes = len(payload)
        if len(payload) < len(best):
            best_type, best, symbols_count = FrameType.NEURAL, payload, len(symbols)
    return CodedFrame(best_type, best, symbols_count, stats)


def decode_text(
    params: FrameParams, symbols: int, payload: bytes, model: CodecModel, progress: Progress | None
) -> bytes:
    """The bytes of a neural frame of ``symbols`` symbols, decoded with a model
    already checked (identity.check_model), with the params its header gives."""
    if params.context > model.max_context:
        raise FormatError(
            f"file needs a context of {params.context} tokens, the model holds {model.max_context}"
        )
    bounds = params.streams(symbols)
    parts = unpack_streams(payload, len(bounds) - 1) if len(bounds) > 2 else [payload]
    counts = [b - a for a, b in itertools.pairwise(bounds)]
    predictor = model.predictor(params, len(parts))
    streams = decode_streams(predictor, params, parts, counts, ESCAPE_SYMBOLS, progress)
    return b"".join(model.symbols.decode(stream) for stream in streams)


def decoding_params(header: Header, model: ModelIdentity, dictionary: Dictionary | None) -> FrameParams:
    """The params a file's header gives its frames, decoded with this model
    (already checked: identity.check_model) and the dictionary the header
    names, if any, which must be the one built for that model."""
    if (dictionary.fingerprint if dictionary is not None else None) != header.dict_id:
        raise ValueError("decoding needs exactly the header's dictionary")
    if dictionary is not None:
        dictionary.check_model(model.sha256, model.n_vocab)
    return FrameParams.of_header(header, model.start_token, dictionary)


class FrameWorkers(Protocol):
    """Code neural frames somewhere else (worker processes, parallel.py), in any
    order; the writer and the reader put the results in file order."""

    #: ENVIRONMENT of the files the workers write.
    environment: str

    @property
    def model(self) -> ModelIdentity:
        """The model the workers run."""
        ...

    def check(self, header: Header) -> None:
        """Raise ModelMismatchError unless the workers' model is the file's."""

    def encode(self, chunk: bytes, params: FrameParams) -> Future[CodedFrame]: ...

    def decode(self, params: FrameParams, symbols: int, payload: bytes) -> Future[bytes]: ...

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
