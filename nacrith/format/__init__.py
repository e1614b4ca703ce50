"""The file format: constants and the header, frame and trailer structures.

Version 3, the compact layout of version 2 whose file of one neural frame
also says where its payload ends, is what writers write; versions 1 and 2
are read forever (and written only on request, by the tests of their golden
files).

docs/format.md specifies every byte; this package packs, unpacks and
validates them. It imports nothing but ``errors`` and ``settings`` (whose
rules the header's values follow) so the format can be read and tested
without a model. Its modules, each with one job:

  constants.py    magic numbers, versions, sizes, parameter tags, frame types
  primitives.py   varints, exact reads, the checksumming cursor
  ensemble.py     the ENSEMBLE value (from settings.HYPERPARAMETERS)
  environment.py  the ENVIRONMENT value
  params.py       the parameter block and the LANES and CODING values
  header.py       Header: the header's values and their rules
  header_v1.py    version 1's header bytes
  compact.py      the compact header bytes (versions 2 and 3) and their defaults
  streams.py      a neural frame's streams
  frame.py        frame headers, and a compact file's one frame
  trailer.py      the index and footer

Everything is imported from here (``from nacrith.format import Header``).
"""

from nacrith.format.compact import (
    V2_CODING,
    V2_CONTEXT,
    V2_ENSEMBLE,
    V2_ENVIRONMENT,
    V2_FRAME_SIZE,
    V2_FRAME_SIZE_NO_MODEL,
    V2_LANES,
    V2_LANES_DICT,
    V2_NO_ENSEMBLE,
    V2_SLIDE,
    V2_TEMPERATURE,
    Descriptor,
)
from nacrith.format.constants import (
    COMPACT_VERSIONS,
    DICT_ID_SIZE,
    ESCAPE_SYMBOLS,
    FOOTER_MAGIC,
    FORMAT_VERSION,
    MAGIC,
    MAX_PARAMS_SIZE,
    MODEL_ID_SIZE,
    VERSIONS,
    FrameType,
    Tag,
)
from nacrith.format.ensemble import ensemble_of_layout, pack_ensemble, unpack_ensemble
from nacrith.format.environment import BACKENDS, Environment, environment_backend
from nacrith.format.frame import FrameHeader, SingleFrame, pack_single, payload_fits, zstd_stream_bound
from nacrith.format.header import Header
from nacrith.format.header_v1 import HeaderFlag
from nacrith.format.primitives import Cursor, pack_varint, read_exact, read_up_to, varint_from
from nacrith.format.streams import pack_streams, stream_bounds, unpack_streams
from nacrith.format.trailer import IndexEntry, Trailer

#: The cursor's name before the format was split (dictionary.py and dictstate.py use it).
_Cursor = Cursor

__all__ = [
    "BACKENDS",
    "COMPACT_VERSIONS",
    "DICT_ID_SIZE",
    "ESCAPE_SYMBOLS",
    "FOOTER_MAGIC",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_PARAMS_SIZE",
    "MODEL_ID_SIZE",
    "V2_CODING",
    "V2_CONTEXT",
    "V2_ENSEMBLE",
    "V2_ENVIRONMENT",
    "V2_FRAME_SIZE",
    "V2_FRAME_SIZE_NO_MODEL",
    "V2_LANES",
    "V2_LANES_DICT",
    "V2_NO_ENSEMBLE",
    "V2_SLIDE",
    "V2_TEMPERATURE",
    "VERSIONS",
    "Cursor",
    "Descriptor",
    "Environment",
    "FrameHeader",
    "FrameType",
    "Header",
    "HeaderFlag",
    "IndexEntry",
    "SingleFrame",
    "Tag",
    "Trailer",
    "ensemble_of_layout",
    "environment_backend",
    "pack_ensemble",
    "pack_single",
    "pack_streams",
    "pack_varint",
    "payload_fits",
    "read_exact",
    "read_up_to",
    "stream_bounds",
    "unpack_ensemble",
    "unpack_streams",
    "varint_from",
    "zstd_stream_bound",
]
