"""The file header's values (Header) and their rules, whichever layout holds
them: version 1's (header_v1.py) or the compact one of versions 2 and 3
(compact.py), which pack and read its bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from nacrith.errors import FormatError, TruncatedError, UnsupportedVersionError
from nacrith.format import compact, header_v1
from nacrith.format.constants import (
    COMPACT_VERSIONS,
    DICT_ID_SIZE,
    ESCAPE_SYMBOLS,
    MAGIC,
    MODEL_ID_SIZE,
    VERSIONS,
    FrameType,
)
from nacrith.format.ensemble import LAYOUTS
from nacrith.format.header_v1 import HeaderFlag
from nacrith.format.primitives import Cursor
from nacrith.format.streams import stream_bounds
from nacrith.settings import (
    LEGACY_CODING,
    Coding,
    EnsembleSettings,
    check_batch,
    check_frame_size,
    check_lanes,
    check_window,
    llm_batch,
)

_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs, plus informational fields.

    A file without a model (``model_id`` None, made by ``without_model``)
    holds only stored and zstd frames; its model parameters are all zero.

    In version 1, ``model_id`` is the model's SHA-256; in version 2, its first
    MODEL_ID_SIZE bytes, or b"" in a file made with a dictionary, whose file
    names the model; ``vocab_size`` and ``start_token`` are None when
    they are the model's own (its vocabulary, the start token that
    docs/format.md's rule picks), which a reader takes from the model.
    """

    model_id: bytes | None
    vocab_size: int | None
    context: int
    slide: int
    temperature: float
    frame_size: int
    start_token: int | None
    escapes: int = ESCAPE_SYMBOLS
    content_size: int | None = None
    model_name: str = ""
    environment: str = ""
    #: None: the language model alone (the tag is absent).
    ensemble: EnsembleSettings | None = None
    #: ZSTD_STREAM frames may follow.
    zstd_stream: bool = False
    #: Streams per neural frame at most, and the fewest symbols a stream gets
    #: (see ``stream_bounds``). One lane: the tag is absent.
    lanes: int = 1
    min_stream: int = 0
    #: How a neural frame's streams are coded (settings.Coding). Absent from
    #: files written before it existed, which mean arithmetic 1, one ensemble
    #: per stream: the default here, so that such files read back as written.
    coding: Coding = LEGACY_CODING
    version: int = 1
    #: Version 2: the dictionary the neural frames start from (DICT_ID_SIZE
    #: bytes of its fingerprint), or None.
    dict_id: bytes | None = None
    #: Version 2: the type of the file's one frame, which follows the header
    #: without a frame header or index (``SingleFrame``); END: frames and an index.
    single: FrameType = FrameType.END
    unknown_ignorable: dict[int, bytes] = field(default_factory=dict, compare=False)

    @classmethod
    def without_model(
        cls, frame_size: int, content_size: int | None = None, zstd_stream: bool = True, version: int = 1
    ) -> Header:
        return cls(
            None,
            0,
            0,
            0,
            0.0,
            frame_size,
            0,
            content_size=content_size,
            zstd_stream=zstd_stream,
            version=version,
        )

    @property
    def flags(self) -> HeaderFlag:
        """Version 1's required flags."""
        return header_v1.flags_of(self)

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"format version {self.version} is unknown")
        check_frame_size(self.frame_size)
        if self.single != FrameType.END:
            if self.version == 1:
                raise ValueError("a file of one frame without an index is the compact layout's")
            if self.single == FrameType.NEURAL and self.model_id is None:
                raise ValueError("a neural frame needs a model")
            if self.content_size is not None:
                raise ValueError("a file of one frame says its size in the frame, not in the header")
        if self.dict_id is not None:
            if self.version == 1 or self.model_id is None or len(self.dict_id) != DICT_ID_SIZE:
                raise ValueError(
                    f"a dictionary is named by {DICT_ID_SIZE} bytes, in a version-2 file with a model"
                )
            if self.lanes != 1:
                raise ValueError("a dictionary's frames are one stream")
        if self.model_id is None:
            model = (self.vocab_size, self.context, self.slide, self.temperature, self.start_token)
            if (
                any(model)
                or self.ensemble is not None
                or self.model_name
                or self.environment
                or self.lanes != 1
                or self.coding != LEGACY_CODING
            ):
                raise ValueError("a header without a model has no model parameters")
            return
        size = 32 if self.version == 1 else 0 if self.dict_id is not None else MODEL_ID_SIZE
        if len(self.model_id) != size:
            raise ValueError(f"this version-{self.version} header names its model by {size} bytes")
        if self.version == 1 and (self.vocab_size is None or self.start_token is None):
            raise ValueError("a version-1 header spells the vocabulary size and the start token")
        check_window(self.context, self.slide)
        if self.start_token is not None and not (
            0 <= self.start_token < (self.vocab_size if self.vocab_size is not None else 1 << 23)
        ):
            raise ValueError("start token outside the vocabulary")
        if not 0 < self.temperature <= _FLOAT32_MAX:
            raise ValueError(f"temperature must be a positive float32, not {self.temperature}")
        if self.escapes != ESCAPE_SYMBOLS:
            raise ValueError(f"the format has {ESCAPE_SYMBOLS} escape symbols")
        if self.ensemble is not None and self.ensemble.layout not in LAYOUTS:
            raise ValueError(f"ensemble layout {self.ensemble.layout} is unknown")
        check_batch(llm_batch(self.ensemble), self.slide)
        if self.lanes != 1:
            check_lanes(self.lanes, self.min_stream)
        elif self.min_stream != 0:
            raise ValueError("the fewest symbols per stream must be 0 without lanes")

    def streams(self, n_symbols: int) -> list[int]:
        """Where a neural frame of n_symbols symbols is split into streams."""
        return stream_bounds(n_symbols, self.lanes, self.min_stream)

    def uses_model(self, sha256: bytes) -> bool:
        """Whether the model of this SHA-256 is the file's (with a dictionary,
        which names the model, the dictionary checks it: dictionary.check_model)."""
        return self.model_id is not None and sha256.startswith(self.model_id)

    def pack(self) -> bytes:
        return header_v1.pack(self) if self.version == 1 else compact.pack(self)

    @classmethod
    def read(cls, stream: BinaryIO) -> Header:
        return cls.read_bytes(stream)[0]

    @classmethod
    def read_bytes(cls, stream: BinaryIO) -> tuple[Header, bytes]:
        """The header and its bytes as read, which a single frame's checksum covers."""
        magic = stream.read(len(MAGIC))
        if not magic:
            raise TruncatedError("input is empty: not a Nacrith file")
        if magic != MAGIC[: len(magic)] or len(magic) < len(MAGIC):
            if magic == MAGIC[: len(magic)]:
                raise TruncatedError("file is truncated: it ends inside the magic number")
            raise FormatError("not a Nacrith file (bad magic number)")
        cur = Cursor(stream, "file header")
        cur.seen += magic
        version = cur.u8()
        if version in COMPACT_VERSIONS:
            return compact.read(cur, version, cls), bytes(cur.seen)
        if version != 1:
            raise UnsupportedVersionError(
                f"file uses format version {version}; this nacrith reads versions "
                + ", ".join(map(str, VERSIONS))
            )
        return header_v1.read(cur, cls), bytes(cur.seen)
