"""Building a dictionary from sample messages of a domain (``nacrith dict build``).

Two things are learned from the samples:

1. **A priming text**: samples chosen to be typical of the domain (their
   tokens common across many samples), up to a token budget, the most
   typical last, nearest the message. Every frame's window starts with it,
   so the model reads the message as a continuation of its domain.
2. **The ensemble's state**: the samples beyond the first ``limit`` bytes are
   counted into the n-gram, match and unigram models, which needs no model;
   then the first ones are coded one after another exactly as messages will
   be, each from the priming text and from the state the ones before left, so
   that the mixer, bias head and APM learn too. The state after the last is
   the dictionary's. Coding needs the model's predictions and costs its time
   per token: ``limit`` bounds the bytes coded.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from nacrith.corpora import is_message_set, read_messages
from nacrith.dictionary import Dictionary
from nacrith.engine import count_samples, encode_streams
from nacrith.errors import DictionaryError
from nacrith.format import ESCAPE_SYMBOLS
from nacrith.framecodec import CodecModel
from nacrith.frameparams import Primer
from nacrith.options import CompressOptions

__all__ = ["BuildProgress", "BuildReport", "build_dictionary", "choose_priming", "read_samples"]

#: Default budget of the priming text, in tokens: half of the default window,
#: leaving the other half (and a slide) to the message.
DEFAULT_TOKENS = 1024
#: Default bytes of samples the ensemble trains on (about 2 minutes on 2 cores).
DEFAULT_LIMIT = 32 * 1024


def read_samples(paths: Iterable[str | Path]) -> list[bytes]:
    """Samples: each file is one, except a ``.jsonl`` file, whose every line is a
    JSON string that is one (a message set, as the changelogs corpus)."""
    samples: list[bytes] = []
    for path in map(Path, paths):
        try:
            samples += read_messages(path) if is_message_set(path) else [path.read_bytes()]
        except OSError as exc:
            raise DictionaryError(f"{path}: cannot read samples: {exc.strerror}") from None
    samples = [s for s in samples if s]
    if not samples:
        raise DictionaryError("no samples: give files, or .jsonl files of JSON strings")
    return samples


def choose_priming(tokenized: Sequence[Sequence[int]], budget: int) -> list[int]:
    """Tokens of the samples most typical of the set, at most ``budget``.

    A sample's typicality is the mean, over its distinct tokens, of the log of
    how many samples contain the token: a sample made of what most samples
    share ranks high, one full of its own names low. Samples are taken best
    first while they fit, and laid out best last, nearest the message.
    """
    df: Counter[int] = Counter()
    for tokens in tokenized:
        df.update(set(tokens))

    def typical(tokens: Sequence[int]) -> float:
        distinct = set(tokens)
        return sum(math.log(df[t]) for t in distinct) / len(distinct) if distinct else 0.0

    ranked = sorted(range(len(tokenized)), key=lambda i: (-typical(tokenized[i]), i))
    chosen: list[int] = []
    used = 0
    for i in ranked:
        if used + len(tokenized[i]) <= budget:
            chosen.append(i)
            used += len(tokenized[i])
    return [t for i in reversed(chosen) for t in tokenized[i]]


@dataclass
class BuildReport:
    samples: int = 0
    priming_tokens: int = 0
    #: Samples counted without the model (n-gram, match and unigram statistics).
    counted_samples: int = 0
    trained_samples: int = 0
    #: Bytes the model codes in all: the samples up to the one that reaches the
    #: limit, that one whole (so it may pass the limit; trained_bytes never passes it).
    planned_bytes: int = 0
    trained_bytes: int = 0
    trained_tokens: int = 0
    #: Bits the trained samples cost as they were coded, each from the state before it.
    coded_bits: float = 0.0
    seconds: float = 0.0


class BuildProgress:
    """The progress of a build as one line on a terminal, rewritten in place:
    a carriage return, the line cut to the terminal's width (a longer one
    would wrap, and each rewrite leave a line behind), padded over the one
    before. ``close`` clears it, for the summary."""

    def __init__(self, stream: TextIO = sys.stderr, width: int | None = None) -> None:
        self.stream = stream
        self.width = width
        self._shown = 0

    @staticmethod
    def text(r: BuildReport) -> str:
        """The line for a report: bytes coded of those planned (never more), samples, speed, time left."""
        total = max(r.planned_bytes, 1)
        done = min(r.trained_bytes, total)
        speed = r.trained_tokens / r.seconds if r.seconds > 0 else 0.0
        left = r.seconds * (total - done) / done if done else 0.0
        return (
            f"nacrith: dictionary {100 * done // total:3d}%, {done:,}/{total:,} bytes, "
            f"{r.trained_samples:,} samples, {speed:.0f} tok/s, {int(left) // 60}:{int(left) % 60:02d} left"
        )

    def _columns(self) -> int:
        """The terminal's width, asked each time (it may be resized); 80 when it does not say."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a terminal, or no fileno (io.StringIO)
            columns = 0
        return columns or shutil.get_terminal_size().columns

    def show(self, report: BuildReport) -> None:
        width = self.width or self._columns()
        line = self.text(report)[: max(width - 1, 1)]  # the last column would wrap on some terminals
        self.stream.write("\r" + line + " " * max(0, self._shown - len(line)))
        self.stream.flush()
        self._shown = len(line)

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0


def _trained_count(samples: Sequence[bytes], limit: int) -> int:
    """How many samples, from the first, the model codes: until ``limit`` bytes are reached."""
    total = 0
    for i, sample in enumerate(samples):
        if total >= limit:
            return i
        total += len(sample)
    return len(samples)


def build_dictionary(
    model: CodecModel,
    samples: Sequence[bytes],
    options: CompressOptions,
    tokens: int = DEFAULT_TOKENS,
    limit: int = DEFAULT_LIMIT,
    progress: Callable[[BuildReport], None] | None = None,
) -> tuple[Dictionary, BuildReport]:
    """A dictionary for ``model`` from ``samples``, with the ensemble and
    arithmetic of ``options`` (which files made with it then use)."""
    start = time.monotonic()
    if options.ensemble is not None and options.ensemble.bias_contexts:
        # The context heads pay on long texts (frames.CONTEXT_HEADS_MIN_INPUT),
        # not on a dictionary's messages, and would add 8 bytes per token of
        # the vocabulary per head to its learned state (25 MB for 64 heads).
        options = replace(options, ensemble=replace(options.ensemble, bias_contexts=0))
    report = BuildReport(samples=len(samples))
    n_vocab = model.symbols.n_vocab
    encoded = [model.symbols.encode(s) for s in samples]
    # The priming text is fed to the model, which has no escapes: samples with one are not chosen.
    clean = [e for e in encoded if e and max(e) < n_vocab]
    room = options.context - 1  # csrc/lanes.h: the window keeps a cell for the message's first token
    priming = choose_priming(clean, min(tokens, room))
    if not priming:
        raise DictionaryError(f"no sample fits a priming text of {min(tokens, room)} tokens")
    report.priming_tokens = len(priming)
    state: bytes | None = None
    # What the n-gram, match and unigram models counted, in order: the samples
    # beyond the limit, then those coded (which count each token as counting does).
    counted: list[list[int]] = []
    if options.ensemble is not None:
        # Samples beyond what the model has time to code are counted: n-gram,
        # match and unigram statistics need no model. Then the model codes the
        # first ones, and the mixer, bias head and APM learn beside those counts.
        trained = _trained_count(samples, limit)
        report.planned_bytes = sum(map(len, samples[:trained]))
        state = count_samples(n_vocab, ESCAPE_SYMBOLS, options.ensemble, options.coding, encoded[trained:])
        report.counted_samples = len(samples) - trained
        counted += encoded[trained:]
        # Each sample is coded as a message is, from the priming text and what
        # the ensemble has learned so far (a Primer stands for the dictionary).
        params = replace(
            options.frame_params(model.start_token), lanes=1, min_stream=0, dictionary=Primer(tuple(priming))
        )
        predictor = model.predictor(params, 1)
        kept: list[bytes] = []
        for sample, symbols in zip(samples, encoded, strict=True):
            if report.trained_bytes >= limit:
                break
            learning = replace(params, dictionary=Primer(tuple(priming), state))
            _, stats = encode_streams(predictor, learning, [symbols], ESCAPE_SYMBOLS, None, kept.append)
            state = kept.pop()
            report.trained_samples += 1
            report.trained_bytes += len(sample)
            report.trained_tokens += len(symbols)
            report.coded_bits += stats.coded_bits
            report.seconds = time.monotonic() - start
            if progress is not None:
                progress(report)
        counted += encoded[: report.trained_samples]
    dictionary = Dictionary.make(
        model.sha256, n_vocab, options.coding.arith, options.ensemble, priming, state, counted
    )
    report.seconds = time.monotonic() - start
    return dictionary, report
