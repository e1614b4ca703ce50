"""What a run measures: corpus files, corpus names, paths and message sets,
resolved to inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nacrith.corpora import (
    MESSAGES_SUFFIX,
    Corpus,
    CorpusFile,
    corpus,
    is_message_set,
    load_manifest,
    locate,
    read_messages,
)
from nacrith.errors import CorpusError


@dataclass(frozen=True)
class BenchInput:
    """Bytes to benchmark, and how to name them honestly."""

    label: str
    path: str
    size: int  # bytes benchmarked (a prefix when limited); of a message set, its messages' bytes
    full_size: int
    #: Of a message set: how many of its messages are benchmarked (the first
    #: ones), each compressed as a file of its own. None: the input is one file.
    messages: int | None = None
    #: Of a message set: its train split, on which peers are built before
    #: measuring (zstd's dictionaries); None when it has none.
    train: str | None = None

    @property
    def is_prefix(self) -> bool:
        return self.size < self.full_size

    def read(self) -> bytes:
        """All the bytes benchmarked (of a message set, its messages end to end)."""
        if self.messages is not None:
            return b"".join(self.units())
        with open(self.path, "rb") as f:
            return f.read(self.size)

    def units(self) -> list[bytes]:
        """What is compressed, each as a file of its own: the messages of a
        message set, else the whole input."""
        if self.messages is None:
            return [self.read()]
        return read_messages(self.path, self.messages)


def _prefix_label(label: str, size: int, full: int) -> str:
    return label if size >= full else f"{label} (first {size:,} bytes)"


#: The splits of a message set's corpus: dictionaries are built on the train
#: split, and only the test split is measured.
TRAIN_SPLIT, TEST_SPLIT = f"train{MESSAGES_SUFFIX}", f"test{MESSAGES_SUFFIX}"


def _measured(c: Corpus) -> list[CorpusFile]:
    """The files of a corpus that are benchmarked: the test split of one that has splits."""
    names = {f.name for f in c.files}
    return [c.file(TEST_SPLIT)] if {TRAIN_SPLIT, TEST_SPLIT} <= names else list(c.files)


def _message_input(label: str, path: Path, limit: int | None, train: Path | None) -> BenchInput:
    """A message set; ``limit`` counts messages (the first ones), not bytes."""
    messages = read_messages(path)
    if not messages:
        raise CorpusError(f"{path}: no messages (one JSON string per line)")
    count = min(len(messages), limit or len(messages))
    if count < len(messages):
        label = f"{label} (first {count:,} of {len(messages):,} messages)"
    size, full = sum(map(len, messages[:count])), sum(map(len, messages))
    return BenchInput(label, str(path), size, full, count, None if train is None else str(train))


def resolve_inputs(specs: Sequence[str], limit: int | None) -> list[BenchInput]:
    """Corpus names ("canterbury"), corpus files ("canterbury/alice29.txt") or
    paths. ``limit`` keeps the first bytes of a file, the first messages of a
    message set."""
    inputs = []
    manifest = load_manifest()
    for spec in specs:
        name, _, file_name = spec.partition("/")
        if name in manifest and not Path(spec).exists():
            c = corpus(name)
            for f in [c.file(file_name)] if file_name else _measured(c):
                path = locate(c.name, f.name)
                if is_message_set(f.name):
                    has_train = f.name != TRAIN_SPLIT and TRAIN_SPLIT in {g.name for g in c.files}
                    train = locate(c.name, TRAIN_SPLIT) if has_train else None
                    inputs.append(_message_input(f"{c.name}/{f.name}", path, limit, train))
                    continue
                # The enwik8 prefix slice is not enwik8: say so in every label.
                base = "enwik8 prefix" if c.name == "enwik8-prefix" else f.name
                size = min(f.size, limit or f.size)
                inputs.append(BenchInput(_prefix_label(base, size, f.size), str(path), size, f.size))
        else:
            path = Path(spec)
            if not path.is_file():
                raise CorpusError(f"{spec}: not a corpus name ({', '.join(manifest)}) nor a file")
            if is_message_set(path):
                # Named as a corpus's message set is ("changelogs/test.jsonl"), however it was given;
                # its train split is the train.jsonl beside it, unless it is that file.
                sibling = path.with_name(TRAIN_SPLIT)
                train = sibling if sibling.is_file() and not sibling.samefile(path) else None
                inputs.append(_message_input(f"{path.resolve().parent.name}/{path.name}", path, limit, train))
                continue
            full = path.stat().st_size
            size = min(full, limit or full)
            inputs.append(BenchInput(_prefix_label(path.name, size, full), str(path), size, full))
    return inputs
