"""The format's vocabulary: magic numbers, versions, sizes, header parameter
tags and frame types, which every other part of the format names."""

from __future__ import annotations

import enum

MAGIC = b"\x89NCR"
FOOTER_MAGIC = b"NCIX"
#: The version writers write; readers read every one of VERSIONS.
FORMAT_VERSION = 3
VERSIONS = (1, 2, 3)
#: Versions of the compact layout (a descriptor byte, short fingerprints, a
#: file of one frame without an index). Version 3 differs from 2 in one field:
#: a file of one neural frame says its payload's size (Payload_Size), so that a
#: cut file is told from a damaged one, and found without decoding.
COMPACT_VERSIONS = (2, 3)
#: Version 2 names the model by the first bytes of its SHA-256.
MODEL_ID_SIZE = 8
#: Version 2 names a dictionary by the first bytes of the SHA-256 of its file.
DICT_ID_SIZE = 4

#: A header larger than this is not ours; bounds what a reader allocates.
MAX_PARAMS_SIZE = 1 << 16
#: Escape symbols: one per byte value, for bytes the tokenizer cannot carry.
ESCAPE_SYMBOLS = 256

#: A tag with this bit set may be skipped by a reader that does not know it.
TAG_IGNORABLE = 0x80


class Tag(enum.IntEnum):
    """Header parameter tags. Bit 7 set: a reader that does not know the tag skips it."""

    MODEL_SHA256 = 0x01
    VOCAB_SIZE = 0x02
    CONTEXT = 0x03
    SLIDE = 0x04
    TEMPERATURE = 0x05
    ESCAPES = 0x06
    FRAME_SIZE = 0x07
    CONTENT_SIZE = 0x08
    START_TOKEN = 0x09
    ENSEMBLE = 0x0A
    LANES = 0x0B
    CODING = 0x0C
    MODEL_NAME = 0x81
    ENVIRONMENT = 0x82


class FrameType(enum.IntEnum):
    END = 0
    STORED = 1
    #: A zstd frame of its own.
    ZSTD = 2
    NEURAL = 3
    #: The next piece of the file's one zstd stream, which all such frames
    #: continue in order, so binary parts share their context (header flag
    #: ZSTD_STREAM).
    ZSTD_STREAM = 4


#: The frame types that hold data (all but the END marker).
DATA_FRAMES = (FrameType.STORED, FrameType.ZSTD, FrameType.NEURAL, FrameType.ZSTD_STREAM)
