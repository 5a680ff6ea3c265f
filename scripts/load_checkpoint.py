#!/usr/bin/env python3
"""Load a `trainer` checkpoint into the equivalent PyTorch module.

    python3 scripts/load_checkpoint.py RUN_DIR            # builds the module from RUN_DIR/config.resolved.toml,
                                                          # loads RUN_DIR/model.safetensors with strict=True
    python3 -i scripts/load_checkpoint.py RUN_DIR         # ... and keep `model` for interactive use

Needs `pip install torch safetensors` (Python >= 3.11 for tomllib). The modules below are the reference layouts the
Rust code follows: tensor names are exactly their `state_dict()` keys, Linear weights are [out, in], Conv2d weights
[out, in, kh, kw], GELU is the tanh form, LayerNorm eps is 1e-5, the GPT is nanoGPT's layout without dropout and
with an untied, bias-free lm_head. Token ids go in as integers (the Rust side carries them as f32).
"""

import math
import sys
import tomllib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class MLP(nn.Module):
    def __init__(self, widths, activation="relu"):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = nn.ReLU() if activation == "relu" else nn.GELU(approximate="tanh")

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CausalSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class MLPBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLPBlock(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, context, d_model, n_layers, n_heads):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, d_model),
                wpe=nn.Embedding(context, d_model),
                h=nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers)),
                ln_f=nn.LayerNorm(d_model),
            )
        )
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t, device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def build(model_cfg):
    kind = model_cfg["kind"]
    if kind == "mlp":
        return MLP(model_cfg["widths"], model_cfg.get("activation", "relu"))
    if kind == "lenet5":
        return LeNet5()
    if kind == "gpt":
        return GPT(*(model_cfg[k] for k in ("vocab", "context", "d_model", "n_layers", "n_heads")))
    raise SystemExit(f"unknown model kind {kind!r}")


def load(run_dir):
    run = Path(run_dir)
    cfg = tomllib.loads((run / "config.resolved.toml").read_text())
    model = build(cfg["model"])
    model.load_state_dict(load_file(str(run / "model.safetensors")), strict=True)
    return model.eval()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    model = load(sys.argv[1])
    n = sum(p.numel() for p in model.parameters())
    print(f"loaded {type(model).__name__} with {n} parameters from {sys.argv[1]}")
