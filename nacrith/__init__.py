"""Nacrith: lossless compression with a language model.

>>> import nacrith
>>> blob = nacrith.compress(b"Hello, world!")
>>> nacrith.decompress(blob)
b'Hello, world!'
"""

__version__ = "0.1.0"

from nacrith.api import Codec, compress, compress_file, decompress, decompress_file, info
from nacrith.dictionary import Dictionary
from nacrith.errors import (
    ChecksumError,
    CoderError,
    DictionaryError,
    FormatError,
    InputChangedError,
    JobCancelled,
    ModelError,
    ModelMismatchError,
    NacrithError,
    NacrithWarning,
    TruncatedError,
    UnsupportedVersionError,
    WorkerError,
)
from nacrith.options import CompressOptions
from nacrith.reports import Summary

__all__ = [
    "ChecksumError",
    "Codec",
    "CoderError",
    "CompressOptions",
    "Dictionary",
    "DictionaryError",
    "FormatError",
    "InputChangedError",
    "JobCancelled",
    "ModelError",
    "ModelMismatchError",
    "NacrithError",
    "NacrithWarning",
    "Summary",
    "TruncatedError",
    "UnsupportedVersionError",
    "WorkerError",
    "__version__",
    "compress",
    "compress_file",
    "decompress",
    "decompress_file",
    "info",
]
