"""Benchmark corpora: a manifest of names, sizes and SHA-256 sums, a loader that
finds and verifies the files, and a fetcher for machines with a network.

Corpus files are never part of the project; they are found, in order, in
``$NACRITH_CORPORA`` (one or more directories separated by ``os.pathsep``),
``../shared/corpora`` (from the working directory, then from the project
root), and the user cache directory that ``fetch`` fills. Each directory holds
one subdirectory per corpus, named as the manifest's ``directory``.

A ``.jsonl`` file is a message set: one JSON string per line, each a message
measured as a file of its own (``read_messages``). A corpus with
``train.jsonl`` and ``test.jsonl`` is measured on the test split; the train
split is for what is built before measuring (dictionaries).

Installed as ``nacrith.corpora``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from nacrith.errors import CorpusError
from nacrith.files import cache_dir as user_cache_dir
from nacrith.files import file_sha256

__all__ = [
    "Corpus",
    "CorpusFile",
    "cache_dir",
    "fetch",
    "is_message_set",
    "load_manifest",
    "locate",
    "read_messages",
    "search_dirs",
]

ENV = "NACRITH_CORPORA"
DOWNLOAD_TIMEOUT = 60
#: A message set: one JSON string per line, each line a message of its own
#: (an entry of a log, a request body), measured as a file of its own.
MESSAGES_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class CorpusFile:
    corpus: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Corpus:
    name: str
    directory: str
    source: str | None
    archive: str | None
    description: str
    files: tuple[CorpusFile, ...]

    def file(self, name: str) -> CorpusFile:
        for f in self.files:
            if f.name == name:
                return f
        raise CorpusError(f"corpus {self.name} has no file {name}")


@cache
def load_manifest() -> dict[str, Corpus]:
    raw = json.loads((Path(__file__).parent / "manifest.json").read_text())
    return {
        name: Corpus(
            name,
            entry["directory"],
            entry["source"],
            entry["archive"],
            entry["description"],
            tuple(CorpusFile(name, f["name"], f["size"], f["sha256"]) for f in entry["files"]),
        )
        for name, entry in raw.items()
    }


def corpus(name: str) -> Corpus:
    corpora = load_manifest()
    if name not in corpora:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(corpora)}")
    return corpora[name]


def cache_dir() -> Path:
    return user_cache_dir("corpora")


def search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    project_root = Path(__file__).resolve().parent.parent
    dirs += [
        Path.cwd().parent / "shared" / "corpora",
        project_root.parent / "shared" / "corpora",
        cache_dir(),
    ]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _how_to_get(c: Corpus) -> str:
    names = ", ".join(f.name for f in c.files)
    place = f"{cache_dir() / c.directory}/ (or DIR/{c.directory}/ with DIR in ${ENV})"
    if c.source and c.archive:  # a download; a source without an archive only says where the data came from
        fetch = f"run 'nacrith corpora fetch {c.name}'"
        return f"{fetch}, or download {c.source}, unpack it and put {names} in {place}"
    return f"put {names} in {place}"


def locate(corpus_name: str, file_name: str) -> Path:
    """The verified path of one corpus file; CorpusError says how to obtain it when missing."""
    c = corpus(corpus_name)
    wanted = c.file(file_name)
    mismatched = []
    for d in search_dirs():
        path = d / c.directory / file_name
        if not path.is_file():
            continue
        if path.stat().st_size == wanted.size and file_sha256(path).hex() == wanted.sha256:
            return path
        mismatched.append(str(path))
    if mismatched:
        raise CorpusError(
            f"{file_name} found but its checksum does not match the manifest: {', '.join(mismatched)}"
        )
    raise CorpusError(f"{c.name}/{file_name} not found; {_how_to_get(c)}")


def is_message_set(path: str | Path) -> bool:
    return Path(path).suffix == MESSAGES_SUFFIX


def read_messages(path: str | Path, limit: int | None = None) -> list[bytes]:
    """The first ``limit`` messages (default all) of a message set, each the
    UTF-8 bytes of one line's JSON string."""
    messages: list[bytes] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if limit is not None and len(messages) >= limit:
                break
            if not line.strip():
                continue  # a blank line holds no message (an editor's last newline)
            try:
                text = json.loads(line)
                if not isinstance(text, str):
                    raise ValueError(f"a JSON {type(text).__name__}, not a string")
                messages.append(text.encode("utf-8"))
            except ValueError as exc:  # bad JSON, bad UTF-8, a lone surrogate ("\\ud800")
                raise CorpusError(
                    f"{path}, line {number}: not a message (one JSON string per line): {exc}"
                ) from None
    return messages


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CorpusError(f"cannot download {url} ({reason}); is this machine offline?") from None


def _members(archive: bytes, kind: str) -> dict[str, bytes]:
    """Base name -> content of every regular file in a .tar.gz or .zip archive."""
    out: dict[str, bytes] = {}
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            for info in z.infolist():
                if not info.is_dir():
                    out[Path(info.filename).name] = z.read(info)
    else:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as t:
            for member in t.getmembers():
                if member.isfile() and (f := t.extractfile(member)) is not None:
                    out[Path(member.name).name] = f.read()
    return out


def fetch(corpus_name: str, dest: Path | None = None) -> list[Path]:
    """Download a corpus into dest (default: the user cache), verifying every file."""
    c = corpus(corpus_name)
    if not c.source or not c.archive:
        raise CorpusError(f"corpus {c.name} has no download source; {_how_to_get(c)}")
    target = (dest or cache_dir()) / c.directory
    members = _members(_download(c.source), c.archive)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in c.files:
        data = members.get(f.name)
        if data is None or len(data) != f.size or hashlib.sha256(data).hexdigest() != f.sha256:
            raise CorpusError(f"{c.source} does not hold the expected {f.name}")
        with tempfile.NamedTemporaryFile(dir=target, delete=False) as tmp:
            tmp.write(data)
        shutil.move(tmp.name, target / f.name)
        paths.append(target / f.name)
    return paths
