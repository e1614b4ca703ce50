"""The classical compressors nacrith is measured beside: built in, with a
dictionary, and on PATH; which a run takes by default."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
from collections.abc import Callable, Sequence

import zstandard

from nacrith.bench.inputs import BenchInput

PeerCodec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def builtin_peers() -> dict[str, PeerCodec]:
    """The classical peers available in this Python, named as their command lines.
    zstd's contexts are made once and reused, as a program compressing many
    messages keeps them: making one per call would be most of the time on a
    message of a few hundred bytes."""
    zstd19, zstd22 = zstandard.ZstdCompressor(level=19), zstandard.ZstdCompressor(level=22)
    unzstd = zstandard.ZstdDecompressor()
    peers: dict[str, PeerCodec] = {
        "gzip -9": (lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
        "bzip2 -9": (lambda d: bz2.compress(d, 9), bz2.decompress),
        "xz -9e": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd -19": (zstd19.compress, unzstd.decompress),
        "zstd -22": (zstd22.compress, unzstd.decompress),
    }
    try:
        import brotli

        peers["brotli -q 11"] = (lambda d: brotli.compress(d, quality=11), brotli.decompress)
    except ImportError:
        pass
    return peers


#: How to get each peer that may be missing: the optional ones.
INSTALL_HINTS = {"brotli -q 11": "pip install 'nacrith[peers]', or put brotli on PATH"}


#: zstd -19 with a dictionary trained on the message set's train split, by the
#: dictionary's size: 110K is zstd's default (--maxdict), 16K a small one. The
#: dictionary's own bytes are not counted, as zstd users do not count them (it
#: is shipped once, not with every message): hence its size in the label.
DICTIONARY_PEERS = {"zstd -19 +dict 110K": 112_640, "zstd -19 +dict 16K": 16_384}

#: The peers of a run not given --peers. For files, the classical compressors
#: at their strongest; for message sets, what small messages are compressed
#: with in practice, zstd alone and with a dictionary, and xz -9e.
FILE_PEERS = ("gzip -9", "bzip2 -9", "xz -9e", "zstd -22", "brotli -q 11")
MESSAGE_PEERS = ("zstd -19", "zstd -19 +dict 16K", "zstd -19 +dict 110K", "xz -9e")


def runnable_peers() -> list[str]:
    """The built-in peers this Python can run, the dictionary peers among them."""
    return [*builtin_peers(), *DICTIONARY_PEERS]


def default_peers(inputs: Sequence[BenchInput]) -> list[str]:
    """FILE_PEERS for files, MESSAGE_PEERS for message sets; the dictionary
    peers only when every input has a train split to build one on."""
    peers = [*(FILE_PEERS if any(i.messages is None for i in inputs) else ())]
    peers += MESSAGE_PEERS if any(i.messages is not None for i in inputs) else ()
    if not all(i.train for i in inputs):
        peers = [p for p in peers if p not in DICTIONARY_PEERS]
    return list(dict.fromkeys(peers))


def dictionary_peer(dictionary: zstandard.ZstdCompressionDict) -> PeerCodec:
    """zstd -19 with a dictionary; one compressor and decompressor for all
    messages, as a deployment keeps them."""
    compressor = zstandard.ZstdCompressor(level=19, dict_data=dictionary)
    decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
    return compressor.compress, decompressor.decompress


def external_on_path() -> dict[str, tuple[str, str | None]]:
    """brotli's command line, when the Python module is missing but the program is there."""
    if "brotli -q 11" not in builtin_peers() and shutil.which("brotli"):
        return {"brotli -q 11": ("brotli -q 11 -c {in} > {out}", "brotli -d -c {in} > {out}")}
    return {}
