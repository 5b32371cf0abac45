#!/usr/bin/python3
"""An independent LLaMA forward pass, written the way Hugging Face's modeling_llama does it
(rotate-half RoPE, repeat_kv for grouped-query attention, RMSNorm in full precision), in float64.

Reads a Hugging Face folder holding config.json and pytorch_model.bin, and writes JSON with the
logits of every prompt position and the greedy continuation (stopping at EOS or --steps).
The C++ test test_reference runs it and compares Banyan's CPU engine against it.
"""
import argparse
import json

import torch


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(sd, cfg, ids):
    dim, heads, kv_heads = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd, eps, theta = dim // heads, cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    T = len(ids)
    x = sd["model.embed_tokens.weight"][torch.tensor(ids)]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, sd[p + "input_layernorm.weight"], eps)
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(T, heads, hd).transpose(0, 1)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(T, kv_heads, hd).transpose(0, 1)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(T, kv_heads, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv_heads, dim=0)  # repeat_kv
        v = v.repeat_interleave(heads // kv_heads, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / hd ** 0.5 + mask, dim=-1) @ v
        x = x + att.transpose(0, 1).reshape(T, dim) @ sd[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, sd[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(h @ sd[p + "mlp.gate_proj.weight"].T)
        x = x + (gate * (h @ sd[p + "mlp.up_proj.weight"].T)) @ sd[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, sd["model.norm.weight"], eps)
    head = sd["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else sd["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder with config.json and pytorch_model.bin")
    ap.add_argument("--prompt-ids", required=True, help="space-separated token ids")
    ap.add_argument("--steps", type=int, default=64, help="greedy tokens to generate")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()

    with open(f"{args.model}/config.json") as f:
        cfg = json.load(f)
    sd = {k: v.to(torch.float64) for k, v in torch.load(f"{args.model}/pytorch_model.bin").items()}
    ids = [int(t) for t in args.prompt_ids.split()]
    logits = forward(sd, cfg, ids)

    seq, greedy = list(ids), []
    for _ in range(args.steps):
        nxt = int(forward(sd, cfg, seq)[-1].argmax())
        if nxt == cfg["eos_token_id"]:
            break
        greedy.append(nxt)
        seq.append(nxt)
    with open(args.out, "w") as f:
        json.dump({"logits": logits.tolist(), "greedy": greedy}, f)


if __name__ == "__main__":
    main()
