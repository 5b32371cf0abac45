#!/usr/bin/python3
"""Train Banyan's demo LLaMA pair on TinyStories: a small LLM and an aligned small SSM.

Pipeline:
  1. train a LLaMA-style SentencePiece BPE tokenizer with spm_train (byte fallback);
  2. pack the tokenized stories into fixed-length blocks;
  3. pre-train the LLM (demo-llm) and the SSM (demo-ssm) from scratch;
  4. boost-tune the SSM on the LLM's own greedy continuations (SpecInfer's collective
     boost-tuning in miniature) and measure how often it predicts the LLM's next token;
  5. write both as Hugging Face LLaMA folders (config.json, float16 model.safetensors,
     tokenizer.model, generation_config.json), a training log per model and a loss plot.

The run is deterministic for a given seed, corpus, thread count and machine. Use the Debian
interpreter (/usr/bin/python3): it has torch, numpy, sentencepiece and matplotlib.
"""

import argparse
import json
import math
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import sentencepiece as spm
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
DEFAULT_OUT = REPO_ROOT / "models"

TRAIN_FILES = [
    "tinystories_train_part1.txt",
    "tinystories_train_part2_recased.txt",
    "tinystories_misc_sample.txt",
]
VALID_FILES = ["tinystories_valid_part1.txt"]
STORY_SEPARATOR = "<|endoftext|>"

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
PROMPT_LENGTHS = (8, 12, 16, 20, 24)
IGNORE_INDEX = -100  # target value that cross-entropy and agreement skip

# Story openings that a user of the demo is likely to type; their greedy continuations are
# added to the boost-tuning data next to the prompts cut from training stories.
PLAIN_STARTS = [
    "Once upon a time",
    "Once upon a time, there was a little girl named",
    "Once upon a time, there was a little boy named",
    "Once upon a time, in a big forest,",
    "Once upon a time, there was a small dog",
    "One day,",
    "One day, a little bird",
    "Tom and Sue",
    "Lily wanted to",
    "The sun was shining",
    "There was a big red ball",
    "Mom said,",
]


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int = 512
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def hf_config(self) -> dict:
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "vocab_size": self.vocab_size,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": BOS_ID,
            "eos_token_id": EOS_ID,
            "torch_dtype": "float16",
            "hidden_act": "silu",
        }

    @staticmethod
    def from_hf(config: dict) -> "ModelConfig":
        return ModelConfig(**{name: config[name] for name in ModelConfig.__dataclass_fields__})


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    log_every: int = 10
    bf16: bool = True  # bfloat16 autocast: ~2x faster matmuls on this CPU (AVX512-BF16)


@dataclass(frozen=True)
class RunConfig:
    vocab_size: int
    seq_len: int
    llm: ModelConfig
    ssm: ModelConfig
    llm_train: TrainConfig
    ssm_train: TrainConfig
    boost_train: TrainConfig
    boost_prompts: int  # prompts cut from training stories, for boost-tuning
    heldout_prompts: int  # prompts cut from validation stories, for the agreement metric
    max_new_tokens: int
    generate_batch: int
    eval_blocks: int  # validation blocks used for the periodic (not final) evaluation
    max_stories: Optional[int] = None  # per split; only the smoke run limits it


def full_config() -> RunConfig:
    vocab = 4096
    return RunConfig(
        vocab_size=vocab,
        seq_len=256,
        llm=ModelConfig(hidden_size=288, intermediate_size=768, num_hidden_layers=6,
                        num_attention_heads=6, num_key_value_heads=2, vocab_size=vocab),
        ssm=ModelConfig(hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab),
        llm_train=TrainConfig(steps=1200, batch_size=16, lr=1e-3, warmup_steps=60),
        ssm_train=TrainConfig(steps=800, batch_size=32, lr=2e-3, warmup_steps=40),
        boost_train=TrainConfig(steps=300, batch_size=32, lr=1e-3, warmup_steps=20,
                                eval_every=50),
        boost_prompts=1024,
        heldout_prompts=128,
        max_new_tokens=200,
        generate_batch=256,
        eval_blocks=64,
    )


def smoke_config() -> RunConfig:
    vocab = 512
    quick = dict(batch_size=8, warmup_steps=3, eval_every=10, log_every=5)
    return RunConfig(
        vocab_size=vocab,
        seq_len=64,
        llm=ModelConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab),
        ssm=ModelConfig(hidden_size=32, intermediate_size=96, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=1, vocab_size=vocab),
        llm_train=TrainConfig(steps=30, lr=3e-3, **quick),
        ssm_train=TrainConfig(steps=20, lr=3e-3, **quick),
        boost_train=TrainConfig(steps=20, lr=3e-3, **quick),
        boost_prompts=32,
        heldout_prompts=8,
        max_new_tokens=24,
        generate_batch=16,
        eval_blocks=16,
        max_stories=300,
    )


# ----------------------------------------------------------------------------- data

def read_stories(paths: List[Path]) -> List[str]:
    """Split files on lines holding only <|endoftext|>; paragraphs stay joined by '\\n'."""
    stories = []
    for path in paths:
        current: List[str] = []
        for line in path.read_text(encoding="utf-8").split("\n") + [STORY_SEPARATOR]:
            if line == STORY_SEPARATOR:
                story = "\n".join(current).strip()
                if story:
                    stories.append(story)
                current = []
            else:
                current.append(line)
    return stories


def train_tokenizer(stories: List[str], vocab_size: int, workdir: Path) -> Path:
    """Train a LLaMA-style BPE model; identity normalization makes decode(encode(x)) == x."""
    text_path = workdir / "tokenizer_input.txt"
    # spm_train reads one sentence per line, so each paragraph becomes one line.
    text_path.write_text("".join(p + "\n" for s in stories for p in s.split("\n")),
                         encoding="utf-8")
    prefix = workdir / "tokenizer"
    command = [
        "spm_train",
        f"--input={text_path.name}",
        f"--model_prefix={prefix.name}",
        "--model_type=bpe",
        f"--vocab_size={vocab_size}",
        "--byte_fallback=true",
        "--character_coverage=1.0",
        f"--unk_id={UNK_ID}", f"--bos_id={BOS_ID}", f"--eos_id={EOS_ID}", "--pad_id=-1",
        "--normalization_rule_name=identity",
        "--add_dummy_prefix=true",
        "--remove_extra_whitespaces=false",
        "--split_digits=true",
        "--allow_whitespace_only_pieces=true",
        "--num_threads=1",  # multi-threaded BPE training is not reproducible
        "--minloglevel=1",
    ]
    # Relative paths: the model file records them, and a temp dir name would make it differ.
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"spm_train failed:\n{result.stdout}\n{result.stderr}")
    return prefix.with_suffix(".model")


def check_round_trip(sp: spm.SentencePieceProcessor, stories: List[str]) -> None:
    failures = [s for s in stories if sp.decode(sp.encode(s)) != s]
    if failures:
        sys.exit(f"tokenizer round trip failed on {len(failures)} stories, e.g. {failures[0]!r}")


def encode_stories(sp: spm.SentencePieceProcessor, stories: List[str]) -> List[List[int]]:
    """Each story becomes BOS + tokens + EOS."""
    return sp.encode(stories, out_type=int, add_bos=True, add_eos=True)


class TokenBlocks(NamedTuple):
    """Model inputs and next-token targets, [n, seq_len]; IGNORE_INDEX marks unscored targets."""
    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def head(self, n: int) -> "TokenBlocks":
        return TokenBlocks(self.inputs[:n], self.targets[:n])

    def num_targets(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())


def pack_blocks(token_lists: List[List[int]], seq_len: int) -> TokenBlocks:
    """Concatenate stories and cut the stream into blocks of seq_len next-token predictions."""
    stream = torch.tensor([t for ids in token_lists for t in ids], dtype=torch.long)
    n = (len(stream) - 1) // seq_len
    index = torch.arange(n)[:, None] * seq_len + torch.arange(seq_len + 1)
    blocks = stream[index]
    return TokenBlocks(blocks[:, :-1].contiguous(), blocks[:, 1:].contiguous())


def continuation_blocks(prompts: List[List[int]], continuations: List[List[int]]) -> TokenBlocks:
    """Prompt + continuation rows, right-padded; only continuation tokens are targets."""
    width = max(len(p) + len(c) for p, c in zip(prompts, continuations)) - 1
    inputs = torch.full((len(prompts), width), EOS_ID, dtype=torch.long)
    targets = torch.full((len(prompts), width), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, cont) in enumerate(zip(prompts, continuations)):
        seq = prompt + cont
        inputs[row, :len(seq) - 1] = torch.tensor(seq[:-1])
        targets[row, len(prompt) - 1:len(seq) - 1] = torch.tensor(cont)
    return TokenBlocks(inputs, targets)


def story_prompts(token_lists: List[List[int]], count: int,
                  rng: np.random.Generator) -> List[List[int]]:
    """The first 8-24 tokens (BOS included) of `count` randomly chosen stories.

    Only five prompt lengths are used so that generation batches stay large.
    """
    chosen = rng.choice(len(token_lists), size=min(count, len(token_lists)), replace=False)
    return [token_lists[i][:int(rng.choice(PROMPT_LENGTHS))] for i in chosen]


# ----------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.type_as(x)


def rotary_tables(cfg: ModelConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [max_positions, head_dim] in the Hugging Face layout (frequencies repeated)."""
    dim = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(torch.arange(cfg.max_position_embeddings).float(), inv_freq)
    angles = torch.cat([freqs, freqs], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin


class KVCache:
    """Pre-allocated keys/values of every layer for a batch whose rows share positions."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int):
        shape = (cfg.num_hidden_layers, batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
        self.keys = torch.zeros(shape)
        self.values = torch.zeros(shape)
        self.length = 0

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = (
            cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim)
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache: Optional[KVCache], layer: int) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.store(layer, k, v)
        # Grouped-query attention: query head h reads kv head h // group. Folding each kv
        # head's group of query heads into the query axis shares k and v without copying them.
        group = self.n_heads // self.n_kv_heads
        q = q.reshape(batch, self.n_kv_heads, group * length, self.head_dim)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5
        total = k.shape[2]  # the queries are the last `length` of `total` positions
        causal = torch.ones(length, total, dtype=torch.bool).tril(diagonal=total - length)
        probs = scores.float().masked_fill(~causal.repeat(group, 1), float("-inf")).softmax(-1)
        out = (probs.to(v.dtype) @ v).view(batch, self.n_heads, length, self.head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache: Optional[KVCache], layer: int) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        cos, sin = rotary_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)


class LlamaForCausalLM(nn.Module):
    """Module names match Hugging Face's LLaMA, so state_dict() keys are the HF tensor names."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        start = cache.length if cache is not None else 0
        end = start + ids.shape[1]
        cos, sin = self.model.rope_cos[start:end], self.model.rope_sin[start:end]
        x = self.model.embed_tokens(ids)
        for index, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, cache, index)
        if cache is not None:
            cache.advance(ids.shape[1])
        return self.lm_head(self.model.norm(x)).float()


def build_model(cfg: ModelConfig) -> LlamaForCausalLM:
    """GPT-2 style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 * layers)."""
    model = LlamaForCausalLM(cfg)
    for name, param in model.named_parameters():
        if param.dim() == 2:
            std = 0.02
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                std /= math.sqrt(2 * cfg.num_hidden_layers)
            nn.init.normal_(param, mean=0.0, std=std)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


@torch.no_grad()
def round_to_fp16(model: nn.Module) -> None:
    """Make the in-memory weights exactly the float16 values that get exported."""
    for param in model.parameters():
        param.copy_(param.half().float())


# ----------------------------------------------------------------------------- training

def compute_context(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at the last step."""
    if step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; norm gains are not decayed."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": cfg.weight_decay},
              {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless minibatches; every epoch visits the blocks in a new seeded order."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"):
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, data: TokenBlocks, bf16: bool, batch_size: int = 32) -> float:
    """Mean cross-entropy per scored target token."""
    model.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        with compute_context(bf16):
            logits = model(data.inputs[start:start + batch_size])
        total += masked_loss(logits, data.targets[start:start + batch_size], "sum").item()
    return total / data.num_targets()


def train(model: nn.Module, data: TokenBlocks, evals: Dict[str, TokenBlocks],
          cfg: TrainConfig, seed: int, label: str) -> List[dict]:
    """Train in place; returns one record per evaluation (step, losses, lr, elapsed)."""
    optimizer = make_optimizer(model, cfg)
    batches = batch_indices(len(data), cfg.batch_size, torch.Generator().manual_seed(seed))
    tokens_per_step = cfg.batch_size * data.inputs.shape[1]
    history, window = [], []
    start = last_log = time.time()
    for step in range(1, cfg.steps + 1):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = next(batches)
        model.train()
        with compute_context(cfg.bf16):
            logits = model(data.inputs[index])
        loss = masked_loss(logits, data.targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        window.append(loss.item())

        now = time.time()
        if step % cfg.log_every == 0 or step == cfg.steps:
            rate = cfg.log_every * tokens_per_step / max(now - last_log, 1e-9)
            eta = (now - start) / step * (cfg.steps - step)
            print(f"[{label}] step {step:5d}/{cfg.steps}  loss {window[-1]:.4f}  lr {lr:.2e}  "
                  f"{rate:7.0f} tok/s  elapsed {now - start:6.0f}s  ETA {eta:6.0f}s", flush=True)
            last_log = now
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record = {"step": step, "train_loss": sum(window) / len(window), "lr": lr,
                      "elapsed_s": time.time() - start}
            for name, blocks in evals.items():
                record[name] = evaluate(model, blocks, cfg.bf16)
            print(f"[{label}] eval at step {step}: " + "  ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k.endswith("loss")), flush=True)
            history.append(record)
            window = []
    return history


# ----------------------------------------------------------------------------- generation

@torch.no_grad()
def greedy_batch(model: LlamaForCausalLM, ids: torch.Tensor, max_new: int) -> List[List[int]]:
    """Greedy continuation of equal-length prompts with a KV cache; rows end after EOS."""
    model.eval()
    cache = KVCache(model.config, ids.shape[0], ids.shape[1] + max_new)
    logits = model(ids, cache)
    steps, finished = [], torch.zeros(ids.shape[0], dtype=torch.bool)
    for _ in range(max_new):
        token = logits[:, -1].argmax(dim=-1)
        steps.append(token)
        finished |= token == EOS_ID
        if finished.all():
            break
        logits = model(token[:, None], cache)
    rows = torch.stack(steps, dim=1).tolist()
    return [row[:row.index(EOS_ID) + 1] if EOS_ID in row else row for row in rows]


def greedy_generate(model: LlamaForCausalLM, prompts: List[List[int]], max_new: int,
                    batch_size: int) -> List[List[int]]:
    """Batches prompts of equal length together so that no padding is needed."""
    by_length: Dict[int, List[int]] = {}
    for i, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(i)
    outputs: List[List[int]] = [[] for _ in prompts]
    for length in sorted(by_length):
        members = by_length[length]
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            batch = torch.tensor([prompts[i] for i in chunk], dtype=torch.long)
            for i, cont in zip(chunk, greedy_batch(model, batch, max_new)):
                outputs[i] = cont
    return outputs


@torch.no_grad()
def top1_agreement(model: nn.Module, data: TokenBlocks, batch_size: int = 32) -> float:
    """Fraction of scored targets equal to the model's argmax (float32 compute)."""
    model.eval()
    hits = 0
    for start in range(0, len(data), batch_size):
        predicted = model(data.inputs[start:start + batch_size]).argmax(dim=-1)
        targets = data.targets[start:start + batch_size]
        hits += int(((predicted == targets) & (targets != IGNORE_INDEX)).sum())
    return hits / data.num_targets()


def sample_text(model: LlamaForCausalLM, sp: spm.SentencePieceProcessor, prompt: str,
                max_new: int) -> str:
    ids = [BOS_ID] + sp.encode(prompt)
    return sp.decode(ids + greedy_batch(model, torch.tensor([ids]), max_new)[0])


# ----------------------------------------------------------------------------- export

def save_safetensors(path: Path, tensors: Dict[str, torch.Tensor]) -> None:
    """float16 safetensors: u64 header length, JSON header padded to 8 bytes, raw data."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):  # fixed order makes the file byte-reproducible
        data = tensors[name].detach().to(torch.float16).contiguous().numpy().astype("<f2")
        blob = data.tobytes()
        header[name] = {"dtype": "F16", "shape": list(data.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in chunks:
            f.write(blob)


def load_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    data = raw[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F16", info
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f2").reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.astype(np.float32))
    return tensors


def export_tensors(model: LlamaForCausalLM) -> Dict[str, torch.Tensor]:
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        del state["lm_head.weight"]  # readers take it from model.embed_tokens.weight
    return state


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def save_model_folder(model: LlamaForCausalLM, tokenizer: Path, folder: Path,
                      max_new_tokens: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", model.config.hf_config())
    write_json(folder / "generation_config.json",
               {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "do_sample": False,
                "max_new_tokens": max_new_tokens})
    save_safetensors(folder / "model.safetensors", export_tensors(model))
    shutil.copyfile(tokenizer, folder / "tokenizer.model")


def verify_folder(folder: Path, model: LlamaForCausalLM, probe: torch.Tensor) -> float:
    """Rebuild the model from the folder alone; returns max |logit difference| on `probe`."""
    cfg = ModelConfig.from_hf(json.loads((folder / "config.json").read_text()))
    reloaded = LlamaForCausalLM(cfg)
    result = reloaded.load_state_dict(load_safetensors(folder / "model.safetensors"),
                                      strict=False)
    allowed_missing = ["lm_head.weight"] if cfg.tie_word_embeddings else []
    if result.missing_keys != allowed_missing or result.unexpected_keys:
        sys.exit(f"{folder}: tensor names do not match: {result}")
    spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        diff = (model(probe) - reloaded(probe)).abs().max().item()
    if diff > 1e-2:
        sys.exit(f"{folder}: reloaded logits differ by {diff}")
    return diff


# ----------------------------------------------------------------------------- reports

def describe(cfg: ModelConfig) -> str:
    return (f"hidden {cfg.hidden_size}, layers {cfg.num_hidden_layers}, heads "
            f"{cfg.num_attention_heads} (kv {cfg.num_key_value_heads}, head_dim {cfg.head_dim}), "
            f"intermediate {cfg.intermediate_size}, vocab {cfg.vocab_size}, "
            f"max positions {cfg.max_position_embeddings}, tied embeddings "
            f"{cfg.tie_word_embeddings}")


def format_history(history: List[dict]) -> List[str]:
    keys = [k for k in history[0] if k not in ("step",)]
    lines = ["step  " + "  ".join(f"{k:>16}" for k in keys)]
    for record in history:
        lines.append(f"{record['step']:4d}  " + "  ".join(
            f"{record[k]:16.6g}" for k in keys))
    return lines


def write_training_log(path: Path, title: str, facts: List[str],
                       curves: List[Tuple[str, List[dict]]], val_blocks: int,
                       sample: str) -> None:
    lines = [title, "=" * len(title), ""] + facts
    for name, history in curves:
        lines += ["", f"Loss curve: {name} (train_loss: mean over the steps since the last "
                      f"evaluation; val_loss: the first {val_blocks} validation blocks, "
                      "bfloat16 autocast; heldout_llm_text_loss: the held-out LLM text)"]
        lines += format_history(history)
    lines += ["", "Greedy continuation of \"Once upon a time\":", sample, ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def plot_losses(path: Path, llm_history: List[dict], ssm_history: List[dict],
                boost_history: List[dict], ssm_steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(axis, history, key, label, offset=0):
        axis.plot([r["step"] + offset for r in history], [r[key] for r in history],
                  marker=".", label=label)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    curve(left, llm_history, "train_loss", "train")
    curve(left, llm_history, "val_loss", "validation")
    left.set_title("demo-llm")
    boost_as_ssm = [dict(r, step=r["step"] + ssm_steps) for r in boost_history]
    curve(right, ssm_history + boost_as_ssm, "val_loss", "validation (stories)")
    curve(right, ssm_history, "train_loss", "train (stories)")
    curve(right, boost_as_ssm, "train_loss", "train (LLM greedy text)")
    curve(right, boost_as_ssm, "heldout_llm_text_loss", "held-out LLM greedy text")
    right.axvline(ssm_steps, color="grey", linestyle=":", label="boost-tuning starts")
    right.set_title("demo-ssm")
    for axis in (left, right):
        axis.set_xlabel("step")
        axis.set_ylabel("cross-entropy (nats/token)")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp in the PNG
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def parse_args() -> argparse.Namespace:
    full = full_config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help="folder holding the TinyStories text files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: {DEFAULT_OUT}; a new temporary folder "
                             "with --smoke)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; results are reproducible for a fixed count")
    parser.add_argument("--llm-steps", type=int, default=full.llm_train.steps)
    parser.add_argument("--ssm-steps", type=int, default=full.ssm_train.steps)
    parser.add_argument("--boost-steps", type=int, default=full.boost_train.steps)
    parser.add_argument("--boost-prompts", type=int, default=full.boost_prompts,
                        help="training-story prompts whose LLM continuations tune the SSM")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny models and data, under a minute, to test the pipeline")
    return parser.parse_args()


def run_config(args: argparse.Namespace) -> RunConfig:
    if args.smoke:
        return smoke_config()
    cfg = full_config()
    return replace(cfg,
                   llm_train=replace(cfg.llm_train, steps=args.llm_steps),
                   ssm_train=replace(cfg.ssm_train, steps=args.ssm_steps),
                   boost_train=replace(cfg.boost_train, steps=args.boost_steps),
                   boost_prompts=args.boost_prompts)


def make_deterministic(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def main() -> None:
    args = parse_args()
    cfg = run_config(args)
    make_deterministic(args.seed, args.threads)
    out = args.out or (Path(tempfile.mkdtemp(prefix="demo_models_")) if args.smoke
                       else DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    command = "/usr/bin/python3 " + " ".join(sys.argv)
    timings: Dict[str, float] = {}
    run_start = time.time()

    train_stories = read_stories([args.corpus / f for f in TRAIN_FILES])
    val_stories = read_stories([args.corpus / f for f in VALID_FILES])
    if cfg.max_stories:
        train_stories, val_stories = (train_stories[:cfg.max_stories],
                                      val_stories[:cfg.max_stories])
    print(f"stories: {len(train_stories)} train, {len(val_stories)} validation", flush=True)

    with tempfile.TemporaryDirectory(prefix="demo_tokenizer_") as workdir:
        t0 = time.time()
        tokenizer_file = train_tokenizer(train_stories, cfg.vocab_size, Path(workdir))
        timings["tokenizer"] = time.time() - t0
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer_file))
        check_round_trip(sp, train_stories[:200] + val_stories[:200])

        train_ids, val_ids = encode_stories(sp, train_stories), encode_stories(sp, val_stories)
        train_data = pack_blocks(train_ids, cfg.seq_len)
        val_data = pack_blocks(val_ids, cfg.seq_len)
        data_facts = [
            f"tokenizer: SentencePiece BPE, vocab {sp.get_piece_size()}, byte fallback, "
            f"trained in {timings['tokenizer']:.0f}s",
            f"training text: {len(train_stories)} stories, {train_data.num_targets()} "
            f"tokens in {len(train_data)} blocks of {cfg.seq_len}",
            f"validation text: {len(val_stories)} stories, {val_data.num_targets()} tokens "
            f"in {len(val_data)} blocks",
        ]
        print("\n".join(data_facts), flush=True)
        periodic_val = {"val_loss": val_data.head(cfg.eval_blocks)}

        # LLM pre-training.
        llm = build_model(cfg.llm)
        print(f"LLM: {count_parameters(llm):,} parameters; {describe(cfg.llm)}", flush=True)
        t0 = time.time()
        llm_history = train(llm, train_data, periodic_val, cfg.llm_train, args.seed, "llm")
        timings["llm_train"] = time.time() - t0
        round_to_fp16(llm)
        llm_val = evaluate(llm, val_data, bf16=False)
        print(f"LLM final validation loss (fp16 weights, fp32 compute): {llm_val:.4f}")

        # SSM pre-training on the same data.
        ssm = build_model(cfg.ssm)
        print(f"SSM: {count_parameters(ssm):,} parameters; {describe(cfg.ssm)}", flush=True)
        t0 = time.time()
        ssm_history = train(ssm, train_data, periodic_val, cfg.ssm_train, args.seed + 1, "ssm")
        timings["ssm_train"] = time.time() - t0
        round_to_fp16(ssm)
        ssm_val_pretrained = evaluate(ssm, val_data, bf16=False)
        print(f"SSM validation loss after pre-training: {ssm_val_pretrained:.4f}")

        # Boost-tuning data: the LLM's greedy continuations of training-story openings (and
        # of plain story starts); held-out continuations of validation-story openings.
        t0 = time.time()
        rng = np.random.default_rng(args.seed)
        boost_prompts = (story_prompts(train_ids, cfg.boost_prompts, rng)
                         + [[BOS_ID] + sp.encode(s) for s in PLAIN_STARTS])
        heldout_prompts = story_prompts(val_ids, cfg.heldout_prompts, rng)
        boost_data = continuation_blocks(boost_prompts, greedy_generate(
            llm, boost_prompts, cfg.max_new_tokens, cfg.generate_batch))
        heldout_data = continuation_blocks(heldout_prompts, greedy_generate(
            llm, heldout_prompts, cfg.max_new_tokens, cfg.generate_batch))
        timings["generation"] = time.time() - t0
        llm_self_agreement = top1_agreement(llm, heldout_data)  # checks the KV-cache path
        agreement_before = top1_agreement(ssm, heldout_data)
        print(f"generated {boost_data.num_targets()} boost-tuning and "
              f"{heldout_data.num_targets()} held-out tokens in {timings['generation']:.0f}s; "
              f"LLM self-agreement {llm_self_agreement:.4f}; SSM top-1 agreement before "
              f"boost-tuning {agreement_before:.4f}", flush=True)

        # Boost-tuning: cross-entropy on the LLM's greedy tokens only.
        t0 = time.time()
        boost_evals = dict(periodic_val, heldout_llm_text_loss=heldout_data)
        boost_history = train(ssm, boost_data, boost_evals, cfg.boost_train, args.seed + 2,
                              "ssm-boost")
        timings["ssm_boost"] = time.time() - t0
        round_to_fp16(ssm)
        ssm_val = evaluate(ssm, val_data, bf16=False)
        agreement_after = top1_agreement(ssm, heldout_data)
        print(f"SSM validation loss after boost-tuning: {ssm_val:.4f}; top-1 agreement "
              f"{agreement_before:.4f} -> {agreement_after:.4f}", flush=True)

        # Export and check.
        llm_dir, ssm_dir = out / "demo-llm", out / "demo-ssm"
        save_model_folder(llm, tokenizer_file, llm_dir, cfg.max_new_tokens)
        save_model_folder(ssm, tokenizer_file, ssm_dir, cfg.max_new_tokens)
    probe = val_data.inputs[:4]
    llm_diff, ssm_diff = verify_folder(llm_dir, llm, probe), verify_folder(ssm_dir, ssm, probe)
    llm_sample = sample_text(llm, sp, "Once upon a time", cfg.max_new_tokens)
    ssm_sample = sample_text(ssm, sp, "Once upon a time", cfg.max_new_tokens)
    plot_losses(out / "training_loss.png", llm_history, ssm_history, boost_history,
                cfg.ssm_train.steps)
    timings["total"] = time.time() - run_start

    common = [f"command: {command}", f"seed {args.seed}, torch threads {args.threads}, "
              f"torch {torch.__version__}", f"total run wall time: {timings['total']:.0f}s"
              ] + data_facts
    agreement_facts = [
        f"held-out agreement set: LLM greedy continuations ({cfg.max_new_tokens} tokens max) "
        f"of {len(heldout_prompts)} validation-story openings, "
        f"{heldout_data.num_targets()} tokens",
        f"SSM top-1 agreement with the LLM's greedy next token: {agreement_before:.4f} "
        f"before boost-tuning, {agreement_after:.4f} after",
        f"LLM self-agreement (teacher-forced vs KV-cached generation): "
        f"{llm_self_agreement:.4f}",
    ]
    write_training_log(
        llm_dir / "training_log.txt", "demo-llm training log",
        common + [
            f"model: {count_parameters(llm):,} parameters; {describe(cfg.llm)}",
            f"training: {cfg.llm_train}",
            f"training wall time: {timings['llm_train']:.0f}s",
            f"final validation loss (all validation blocks, fp16 weights): {llm_val:.4f}",
            f"export check: max |logit difference| after reload {llm_diff:.2e}",
        ] + agreement_facts,
        [("pre-training", llm_history)], cfg.eval_blocks, llm_sample)
    write_training_log(
        ssm_dir / "training_log.txt", "demo-ssm training log",
        common + [
            f"model: {count_parameters(ssm):,} parameters; {describe(cfg.ssm)}",
            f"pre-training: {cfg.ssm_train}",
            f"pre-training wall time: {timings['ssm_train']:.0f}s",
            f"boost-tuning: {boost_data.num_targets()} LLM greedy tokens from "
            f"{len(boost_prompts)} prompts ({cfg.boost_prompts} training-story openings + "
            f"{len(PLAIN_STARTS)} plain starts); generation took {timings['generation']:.0f}s",
            f"boost-tuning: {cfg.boost_train}",
            f"boost-tuning wall time: {timings['ssm_boost']:.0f}s",
            f"validation loss (all validation blocks, fp16 weights): "
            f"{ssm_val_pretrained:.4f} after pre-training, {ssm_val:.4f} after boost-tuning",
            f"export check: max |logit difference| after reload {ssm_diff:.2e}",
        ] + agreement_facts,
        [("pre-training", ssm_history), ("boost-tuning", boost_history)], cfg.eval_blocks,
        ssm_sample)

    print(f"\nLLM sample:\n{llm_sample}\n\nSSM sample:\n{ssm_sample}\n")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"wrote {llm_dir}, {ssm_dir} and {out / 'training_loss.png'}")


if __name__ == "__main__":
    main()
