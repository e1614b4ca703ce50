"""`nacrith bench`: bits per byte, speed and memory, side by side with classical compressors.

Every compressor, ours included, runs on the same bytes in the same run, in a
child process of its own (so peak RSS is its own), and must give back the
input exactly: a run that does not verify is reported as a failure, never as
a number.

An input is a file, or a message set (a ``.jsonl`` file, see
nacrith.corpora): then every message is compressed as a file of its own, as
a service compresses requests, and the sizes of those files are summed.
"""

from __future__ import annotations

from nacrith.bench.entropy import entropies
from nacrith.bench.inputs import TEST_SPLIT, TRAIN_SPLIT, BenchInput, resolve_inputs

# Private, but tests check a peer's run and the verification through them.
from nacrith.bench.measure import _run_builtin as _run_builtin
from nacrith.bench.measure import _verify as _verify
from nacrith.bench.peers import (
    DICTIONARY_PEERS,
    FILE_PEERS,
    INSTALL_HINTS,
    MESSAGE_PEERS,
    PeerCodec,
    builtin_peers,
    default_peers,
    dictionary_peer,
    external_on_path,
    runnable_peers,
)
from nacrith.bench.render import markdown, write_chart
from nacrith.bench.report import SCHEMA, BenchReport, Result, merge_reports, read_json, write_json
from nacrith.bench.run import run_bench
from nacrith.bench.variants import ABLATION, NACRITH, nacrith_variants, named_variants, variant_label

__all__ = [
    "ABLATION",
    "DICTIONARY_PEERS",
    "FILE_PEERS",
    "INSTALL_HINTS",
    "MESSAGE_PEERS",
    "NACRITH",
    "SCHEMA",
    "TEST_SPLIT",
    "TRAIN_SPLIT",
    "BenchInput",
    "BenchReport",
    "PeerCodec",
    "Result",
    "builtin_peers",
    "default_peers",
    "dictionary_peer",
    "entropies",
    "external_on_path",
    "markdown",
    "merge_reports",
    "nacrith_variants",
    "named_variants",
    "read_json",
    "resolve_inputs",
    "run_bench",
    "runnable_peers",
    "variant_label",
    "write_chart",
    "write_json",
]
