"""The tiny GGUF model the mechanics tests run through real llama.cpp.

A llama-architecture model with the real model's tokenizer and vocabulary
(every ``tokenizer.*`` key copied from it), 2 blocks of width 64, and random
weights: Q4_1 in the blocks, Q8_0 in the embeddings, as in the real model. It
loads in milliseconds and evaluates a token in a fraction of one, so round
trips, lanes, workers, the CLI and the server are tested through the same
code paths as with the real model, minutes faster.

Two properties make it a fair stand-in:

- **Its logits depend on the context.** Attention weights are scaled so that
  the same token after different histories gets clearly different
  distributions. With context-blind logits, a KV-cache slide or lane mix-up
  would still round-trip and the tests would prove nothing;
  test_tiny_model.py checks that such a bug is caught.
- **It beats zstd on short English**, so neural frames are chosen as they are
  with the real model. The output layer carries a Zipf prior over the token
  ids (byte-level BPE ids follow merge order, which follows frequency), worth
  about 3 bits per byte on English: not good, but better than a classical
  coder on a few hundred bytes.

The file is a pure function of the real model's tokenizer and of this
module; it is generated once and cached, keyed by both.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from nacrith.models.llm import bundled_model_path
from nacrith.tokens import byte_level_decoder

__all__ = ["tiny_model_path", "tiny_text"]

SEED = 20261201
WIDTH = 64
BLOCKS = 2
HEADS = 4
KV_HEADS = 2
FFN = 128
CONTEXT_TRAIN = 8192
#: Ids below this are the vocabulary's special tokens and its 256 single bytes
#: (SmolLM2: 17 specials, then the bytes): they get a rare prior, as BPE text
#: seldom falls back to them.
FIRST_MERGE = 273
BYTE_RANK = 300
#: Logit scale of the Zipf prior: p(rank) ~ rank**-ZIPF.
ZIPF = 1.0
#: Standard deviation of the input embeddings' channels other than the bias channel.
EMBED_STD = 0.1
#: Standard deviation of the context-dependent part of the logits (nats).
CONTEXT_LOGITS = 1.0


#: Where the tiny model is kept, when set (conftest.py sets it for the whole
#: test session, which gives nacrith a cache of its own: see there).
TESTS_CACHE_ENV = "NACRITH_TESTS_CACHE"


def _cache_dir() -> Path:
    if os.environ.get(TESTS_CACHE_ENV):
        return Path(os.environ[TESTS_CACHE_ENV])
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "nacrith-tests"


def _zipf_rank(token_ids: np.ndarray) -> np.ndarray:
    """Each merged token's rank in the prior: its id, counted from the first merge (plus 10)."""
    return token_ids.astype(np.float64) - FIRST_MERGE + 10


def tiny_model_path() -> Path:
    """The tiny model's GGUF, generated on first use and cached."""
    real = bundled_model_path()
    stat = real.stat()
    # Keyed by this file too: a change to the generator makes a new model.
    source = Path(__file__).read_bytes()
    key = hashlib.sha256(f"{real.name} {stat.st_size} ".encode() + source).hexdigest()[:12]
    path = _cache_dir() / f"tiny-llama-{BLOCKS}x{WIDTH}-{key}.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        _write(real, partial)
        partial.replace(path)  # atomic: concurrent test processes never see half a file
        for stale in path.parent.glob("tiny-llama-*.gguf"):
            if stale != path:
                stale.unlink(missing_ok=True)  # made by an older generator
    return path


def _write(real: Path, path: Path) -> None:
    import gguf  # the test extra

    reader = gguf.GGUFReader(real)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("nacrith-tiny-test")
    writer.add_block_count(BLOCKS)
    writer.add_context_length(CONTEXT_TRAIN)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    n_vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]) for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(key, values, vtype, sub_type=sub)
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(values)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[-1]), vtype)
        else:
            writer.add_key_value(key, field.parts[-1].tolist()[0], vtype)
    writer.add_vocab_size(n_vocab)

    rng = np.random.default_rng(SEED)
    q4, q8 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0

    def add(name: str, weights: np.ndarray, qtype: gguf.GGMLQuantizationType | None) -> None:
        weights = weights.astype(np.float32)
        if qtype is None:
            writer.add_tensor(name, weights)
        else:
            writer.add_tensor(name, gguf.quants.quantize(weights, qtype), raw_dtype=qtype)

    # Input embeddings: channel 0 is a constant 1, the "bias channel" that the
    # output layer's prior reads; the others are small, so that the final norm
    # keeps channel 0 nearly constant.
    embed = rng.normal(0.0, EMBED_STD, (n_vocab, WIDTH))
    embed[:, 0] = 1.0
    add("token_embd.weight", embed, q8)
    head = WIDTH // HEADS
    kv = KV_HEADS * head
    for b in range(BLOCKS):
        add(f"blk.{b}.attn_norm.weight", np.ones(WIDTH), None)
        add(f"blk.{b}.ffn_norm.weight", np.ones(WIDTH), None)
        # Sharp attention (query·key spread of a few units), so each position
        # attends to a few earlier ones and the output depends on which.
        add(f"blk.{b}.attn_q.weight", rng.normal(0.0, 0.35, (WIDTH, WIDTH)), q4)
        add(f"blk.{b}.attn_k.weight", rng.normal(0.0, 0.35, (kv, WIDTH)), q4)
        add(f"blk.{b}.attn_v.weight", rng.normal(0.0, 0.25, (kv, WIDTH)), q4)
        out = rng.normal(0.0, 0.25, (WIDTH, WIDTH))
        out[0] = 0.0  # the bias channel stays 1
        add(f"blk.{b}.attn_output.weight", out, q4)
        add(f"blk.{b}.ffn_gate.weight", rng.normal(0.0, 0.2, (FFN, WIDTH)), q4)
        add(f"blk.{b}.ffn_up.weight", rng.normal(0.0, 0.2, (FFN, WIDTH)), q4)
        down = rng.normal(0.0, 0.1, (WIDTH, FFN))
        down[0] = 0.0
        add(f"blk.{b}.ffn_down.weight", down, q4)
    add("output_norm.weight", np.ones(WIDTH), None)

    # Output layer: channel 0 carries the Zipf prior, the rest random weights
    # that turn the context-dependent residual into logits.
    ranks = _zipf_rank(np.arange(n_vocab))
    ranks[:FIRST_MERGE] = BYTE_RANK
    prior = -ZIPF * np.log(ranks)
    output = rng.normal(0.0, 1.0, (n_vocab, WIDTH))
    # After the final norm channel 0 is about sqrt(WIDTH / (1 + other energy)).
    residual = np.sqrt(WIDTH / (1.0 + (WIDTH - 1) * EMBED_STD**2))
    output[:, 0] = (prior - prior.mean()) / residual
    output[:, 1:] *= CONTEXT_LOGITS / np.sqrt(WIDTH - 1)
    add("output.weight", output, q8)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@functools.lru_cache(maxsize=1)
def _text_tokens() -> tuple[np.ndarray, list[bytes], np.ndarray]:
    """The vocabulary's printable-ASCII merged tokens, their bytes and the prior's weights."""
    import gguf

    field = gguf.GGUFReader(tiny_model_path()).fields["tokenizer.ggml.tokens"]
    decoder = byte_level_decoder()
    ids, texts = [], []
    for token_id, part in enumerate(field.data):
        text = bytes(field.parts[part]).decode()
        if token_id < FIRST_MERGE or any(c not in decoder for c in text):
            continue
        raw = bytes(decoder[c] for c in text)
        if raw.isascii() and raw.decode().isprintable():
            ids.append(token_id)
            texts.append(raw)
    weights = _zipf_rank(np.asarray(ids)) ** -ZIPF
    return np.arange(len(ids)), texts, weights / weights.sum()


def tiny_text(n_bytes: int, seed: int = 0) -> bytes:
    """n_bytes of text drawn from the tiny model's prior: word salad that the
    tiny model codes in about a quarter fewer bits than zstd, as the real model
    does English. For tests that need neural frames (the tiny model loses to
    zstd on repetitive text, where the real one wins)."""
    index, texts, weights = _text_tokens()
    rng = np.random.default_rng(seed)
    out = bytearray()
    while len(out) < n_bytes:
        for i in rng.choice(index, size=256, p=weights):
            out += texts[i]
    return bytes(out[:n_bytes])
