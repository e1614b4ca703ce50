"""A loaded model's windows: llama.cpp contexts of one or more sequences, each
a window that slides, evaluated together (LlamaPredictor, the engine's
Predictor), and how a dictionary's priming text is put in them once per
process and once per machine (primecache.py).

What is computed here is part of a file's schedule: the context's size and
batch, the slide, and the calls a priming is evaluated in are the same for
the encoder and the decoder, since llama.cpp's arithmetic depends on them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacrith.errors import ModelError
from nacrith.files import cache_dir, file_sha256
from nacrith.models.primecache import PrimedStateCache
from nacrith.models.runtime import ThreadGovernor

if TYPE_CHECKING:  # llm.py makes the windows of its models
    from nacrith.models.llm import LanguageModel

__all__ = ["PRIMED_CACHE", "PRIME_CHUNK", "LlamaPredictor"]

#: Primed sequences a predictor keeps, one per dictionary lately used.
PRIMINGS_KEPT = 4
#: The directory of cache_dir() where primed sequences are kept between processes.
PRIMED_CACHE = "primed"
#: Changes when the way a priming is evaluated changes in a way the key below
#: does not see: entries of an older way are then never restored.
PRIMING_KEY_VERSION = 1
#: Most tokens of a priming text evaluated in one llama_decode. Part of the
#: schedule of a file made with a dictionary: the decoder evaluates the same calls.
PRIME_CHUNK = 512


def _context_params(model: LanguageModel, sequences: int, context: int, batch: int, primed: bool) -> Any:
    """The parameters of a llama.cpp context of ``sequences`` sequences, each a
    window of ``context`` cells, taking up to ``batch`` tokens per sequence in
    one call, or PRIME_CHUNK when ``primed`` and that is more."""
    llama_cpp = model._llama_cpp
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = sequences * context
    calls = max(sequences * batch, PRIME_CHUNK if primed else 0)
    params.n_batch = calls
    params.n_ubatch = calls  # one micro-batch per call: llama.cpp never re-splits it
    params.n_seq_max = sequences
    if hasattr(params, "kv_unified"):
        params.kv_unified = False  # a window per sequence; attention never spans sequences
    params.n_threads = model.threads
    params.n_threads_batch = model.threads
    params.no_perf = True
    if hasattr(params, "flash_attn_type"):
        # Fixed, not "auto": the choice changes the arithmetic.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    return params


def _new_context(model: LanguageModel, params: Any, sequences: int, context: int) -> Any:
    """A llama.cpp context of these parameters (_context_params)."""
    llama_cpp = model._llama_cpp
    ctx = llama_cpp.llama_init_from_model(model._model, params)
    if not ctx:
        raise ModelError(f"cannot create a llama.cpp context of {sequences} x {context} tokens")
    per_sequence = (
        llama_cpp.llama_n_ctx_seq(ctx)
        if hasattr(llama_cpp, "llama_n_ctx_seq")
        else llama_cpp.llama_n_ctx(ctx) // sequences
    )
    if per_sequence < context:
        llama_cpp.llama_free(ctx)
        raise ModelError(f"llama.cpp gave {per_sequence} < {context} tokens of context per sequence")
    return ctx


#: Context parameters that do not change what llama.cpp computes: the thread
#: counts (every value is computed by one thread, whatever their number, which
#: is why ThreadGovernor may change it mid-frame; tests/test_priming_cache.py
#: checks a priming), and whether it times itself.
_PARAMS_NOT_COMPUTED = frozenset({"n_threads", "n_threads_batch", "no_perf"})
#: ctypes codes of plain numbers and booleans (not pointers or callbacks).
_SCALAR_CODES = frozenset("bBhHiIlLqQfd?")


def _params_text(params: Any) -> str:
    """Every plain-valued field of a context's parameters that decides its
    arithmetic, as "name=value,...": fields llama.cpp adds are included by themselves."""
    return ",".join(
        f"{name}={getattr(params, name)!r}"
        for name, kind in params._fields_
        if name not in _PARAMS_NOT_COMPUTED and getattr(kind, "_type_", None) in _SCALAR_CODES
    )


@functools.cache
def _llama_build_id(llama_cpp: Any) -> str | None:
    """SHA-256 of the llama.cpp libraries this process loaded (libllama, libggml*),
    which tells one build from another of the same version and flags; None when
    they cannot be found (then primed states are not kept on disk)."""
    base = getattr(getattr(llama_cpp, "llama_cpp", None), "_base_path", None)
    directory = Path(base) if base is not None else Path(llama_cpp.__file__).parent / "lib"
    try:
        libraries = sorted(
            p
            for p in directory.iterdir()
            if p.suffix in (".so", ".dylib", ".dll") and ("llama" in p.name or "ggml" in p.name)
        )
        if not libraries:
            return None
        digest = hashlib.sha256()
        for path in libraries:
            digest.update(path.name.encode() + b"\0" + file_sha256(path))
        return digest.hexdigest()
    except OSError:
        return None


def _slide(llama_cpp: Any, memory: Any, seq: int, slide: int) -> None:
    """Drop a sequence's ``slide`` oldest cells after the start token and shift
    the rest down: llama.cpp re-applies RoPE to the shifted keys."""
    llama_cpp.llama_memory_seq_rm(memory, seq, 1, 1 + slide)
    llama_cpp.llama_memory_seq_add(memory, seq, 1 + slide, -1, -slide)


def _governed(model: LanguageModel, ctx: Any) -> ThreadGovernor:
    """The context's threads, fitted to the cores this process gets (runtime.ThreadGovernor)."""
    llama_cpp = model._llama_cpp
    return ThreadGovernor(lambda n: llama_cpp.llama_set_n_threads(ctx, n, n), model.threads)


def _decode(llama_cpp: Any, ctx: Any, batch: Any, governor: ThreadGovernor) -> int:
    """llama_decode, timed in wall and CPU seconds for the governor."""
    wall, cpu = time.monotonic(), time.process_time()
    status = int(llama_cpp.llama_decode(ctx, batch))
    governor.record(time.monotonic() - wall, time.process_time() - cpu)
    return status


class LlamaPredictor:
    """engine.Predictor: ``lanes`` sequences in one llama.cpp context, each a
    window of ``context`` cells, evaluated together in one llama_decode per
    step. The engine writes each batch into this predictor's llama_batch
    (lanes * batch tokens; ``batch`` tokens per sequence at most, when a
    stream catches up on tokens the ensemble coded without the model). The
    batch size is part of the context's setup (n_batch, n_ubatch), so encoder
    and decoder use the same one."""

    def __init__(
        self, model: LanguageModel, lanes: int, context: int, slide: int, batch: int = 1, primed: bool = False
    ) -> None:
        llama_cpp = model._llama_cpp
        self._llama_cpp = llama_cpp
        self.n_vocab = model.symbols.n_vocab
        self.lanes = lanes
        self.context = context
        self.slide = slide
        self.batch = batch
        self.primed = primed
        #: Saved states of a sequence primed with these tokens, least recently used first.
        self._primings: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        params = _context_params(model, lanes, context, batch, primed)
        self._ctx = _new_context(model, params, lanes, context)
        self._key_text = self._priming_key_text(model, params) if primed else None
        self._governor = _governed(model, self._ctx)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(lanes * batch, 0, 1)

    def batch_arrays(self) -> tuple[int, int, int, int, int]:
        b = self._batch
        return tuple(  # type: ignore[return-value]  # five addresses
            ctypes.cast(array, ctypes.c_void_p).value or 0
            for array in (b.token, b.pos, b.n_seq_id, b.seq_id, b.logits)
        )

    def clear(self) -> None:
        self._llama_cpp.llama_memory_clear(self._memory, True)

    def slide_lane(self, lane: int) -> None:
        _slide(self._llama_cpp, self._memory, lane, self.slide)

    def prime(self, tokens: Sequence[int], lanes: int) -> None:
        """Fill the windows of the first ``lanes`` sequences (just cleared) with
        ``tokens`` at positions 0, 1, ...: evaluated in calls of PRIME_CHUNK
        tokens without logits the first time, then restored from llama.cpp's
        saved state of the sequence, which holds the same cells bit for bit.
        The state is kept in memory (a dictionary is primed once per process)
        and on disk (once per machine: primecache.py)."""
        if not self.primed:
            raise ValueError("this predictor was made without room to prime")
        if not 0 < len(tokens) < self.context or not 0 < lanes <= self.lanes:
            raise ValueError(f"cannot prime {lanes} windows of {self.context} with {len(tokens)} tokens")
        key = tuple(tokens)
        state = self._primings.pop(key, None)
        first = 0
        if state is None:
            state = self._stored_priming(key)
            if state is None:
                state = self._computed_priming(key)
            first = 1  # sequence 0 holds it already
        while len(self._primings) >= PRIMINGS_KEPT:
            self._primings.popitem(last=False)
        self._primings[key] = state
        for seq in range(first, lanes):
            if self._llama_cpp.llama_state_seq_set_data(self._ctx, state, len(state), seq) != len(state):
                raise ModelError("llama.cpp could not restore a primed sequence")

    def _computed_priming(self, tokens: tuple[int, ...]) -> Any:
        """Evaluate the priming into sequence 0; its saved state, also kept on disk."""
        llama_cpp, ctx = self._llama_cpp, self._ctx
        self._evaluate_priming(tokens)
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        state = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(ctx, state, size, 0) != size:
            raise ModelError("llama.cpp could not save a primed sequence")
        disk = self._disk_cache()
        if disk is not None:
            disk.store(self._priming_key(tokens), memoryview(state))
        return state

    def _stored_priming(self, tokens: tuple[int, ...]) -> Any:
        """The priming's saved state from disk, restored into sequence 0; None
        (and sequence 0 empty) when there is none that llama.cpp takes whole."""
        disk = self._disk_cache()
        stored = disk.load(self._priming_key(tokens)) if disk is not None else None
        if stored is None:
            return None
        state = (ctypes.c_uint8 * len(stored)).from_buffer(stored)
        if self._llama_cpp.llama_state_seq_set_data(self._ctx, state, len(state), 0) != len(state):
            self._llama_cpp.llama_memory_seq_rm(self._memory, 0, -1, -1)
            return None
        return state

    def _disk_cache(self) -> PrimedStateCache | None:
        """Where primed states are kept between processes (looked up on each
        use, as the cache's place may change); None on a GPU, whose arithmetic
        depends on a device the key cannot name."""
        if self._key_text is None:
            return None
        return PrimedStateCache(cache_dir(PRIMED_CACHE))

    @staticmethod
    def _priming_key_text(model: LanguageModel, params: Any) -> str | None:
        """What a primed sequence depends on besides its tokens; None when it
        is not to be kept on disk."""
        build = _llama_build_id(model._llama_cpp)
        if model.backend != "cpu" or build is None:
            return None
        return (
            f"nacrith priming {PRIMING_KEY_VERSION}; model {model.sha256.hex()}; "
            f"llama.cpp {model.environment}, libraries {build}; "
            f"context {_params_text(params)}; chunk {PRIME_CHUNK}"
        )

    def _priming_key(self, tokens: tuple[int, ...]) -> bytes:
        digest = hashlib.sha256((self._key_text or "").encode() + b"; tokens ")
        digest.update(b"".join(t.to_bytes(4, "little") for t in tokens))
        return digest.digest()

    def _evaluate_priming(self, tokens: tuple[int, ...]) -> None:
        llama_cpp = self._llama_cpp
        batch = llama_cpp.llama_batch_init(PRIME_CHUNK, 0, 1)
        try:
            for start in range(0, len(tokens), PRIME_CHUNK):
                chunk = tokens[start : start + PRIME_CHUNK]
                for i, token in enumerate(chunk):
                    batch.token[i] = token
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 0
                batch.n_tokens = len(chunk)
                status = _decode(llama_cpp, self._ctx, batch, self._governor)
                if status != 0:
                    raise ModelError(f"llama_decode of {len(chunk)} priming tokens failed: status {status}")
        finally:
            llama_cpp.llama_batch_free(batch)

    def evaluate(self, n_tokens: int) -> int:
        if not 0 < n_tokens <= self.lanes * self.batch:
            raise ValueError(f"a batch of {n_tokens} tokens does not fit {self.lanes} x {self.batch}")
        self._batch.n_tokens = n_tokens
        status = _decode(self._llama_cpp, self._ctx, self._batch, self._governor)
        if status != 0:
            raise ModelError(
                f"llama_decode of {n_tokens} tokens in {self.lanes} lanes failed with status {status}"
            )
        return ctypes.cast(self._llama_cpp.llama_get_logits(self._ctx), ctypes.c_void_p).value or 0

    def close(self) -> None:
        if self._ctx:
            self._llama_cpp.llama_batch_free(self._batch)
            self._llama_cpp.llama_free(self._ctx)
            self._ctx = None
