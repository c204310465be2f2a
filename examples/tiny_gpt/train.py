#!/usr/bin/python3
"""train.py - a tiny pre-LayerNorm GPT, byte level, trained with AdamW on Python's standard
library sources (/usr/lib/python3.X/*.py: every Debian machine with Python has them), recorded
for roteq.

Model (GPT-2's layout at toy size; n = --d-model, L = --layers):
    wte  Embedding(256, n)      byte embeddings        (untied: the output layer is separate)
    wpe  Embedding(T, n)        learned positions
    h.i  for i < L: x + attn(ln_1(x)), then x + mlp(ln_2(x))
         attn: q, k, v, proj   nn.Linear(n, n), causal softmax attention, --heads heads
         mlp:  c_fc            Conv1D(4n, n): HF transformers' GPT-2 layout, weight [in, out]
               c_proj          nn.Linear(4n, n)
    ln_f, lm_head Linear(n, 256, bias=False)
`Conv1D` is written here as transformers.pytorch_utils.Conv1D is (weight [nx, nf], y = x @ W + b),
so the recorder's neuron axis for it (-1: a neuron is a column) is exercised without transformers.

AdamW with weight decay on every matrix (embeddings, projections, lm_head) and none on biases and
LayerNorm parameters; linear warmup over --warmup steps, then constant lr. The recorder writes
OUT/trace.csv every --every steps (default 10: 27 layers and ~2900 neurons make a trace of every
step ~0.4 MB per step) with the step statistics, and HF-style snapshots with the optimizer state
(OUT/snapshots/checkpoint-N/model.safetensors) every --snapshot-every steps.

    /usr/bin/python3 examples/tiny_gpt/train.py --steps 2000 --out runs/tiny_gpt
"""

import argparse
import glob
import json
import math
import os
import sys
import sysconfig
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "adapters", "torch"))
from roteq_recorder import RoteqRecorder  # noqa: E402


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: a Linear whose weight is stored [in, out] (nx, nf)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Attention(nn.Module):
    def __init__(self, n, heads, block):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(n, n)
        self.k = nn.Linear(n, n)
        self.v = nn.Linear(n, n)
        self.proj = nn.Linear(n, n)
        self.register_buffer("mask", torch.tril(torch.ones(block, block, dtype=torch.bool)),
                             persistent=False)

    def forward(self, x):
        b, t, n = x.shape
        h = self.heads

        def split(y):
            return y.view(b, t, h, n // h).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(n // h)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, n))


class Block(nn.Module):
    def __init__(self, n, heads, block):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n)
        self.attn = Attention(n, heads, block)
        self.ln_2 = nn.LayerNorm(n)
        self.mlp = nn.Module()
        self.mlp.c_fc = Conv1D(4 * n, n)
        self.mlp.c_proj = nn.Linear(4 * n, n)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    def __init__(self, n=64, layers=4, heads=4, block=64, vocab=256):
        super().__init__()
        self.wte = nn.Embedding(vocab, n)
        self.wpe = nn.Embedding(block, n)
        self.h = nn.ModuleList(Block(n, heads, block) for _ in range(layers))
        self.ln_f = nn.LayerNorm(n)
        self.lm_head = nn.Linear(n, vocab, bias=False)
        for name, p in self.named_parameters():  # GPT-2's initialisation
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def corpus(pattern):
    """The bytes of every file matching `pattern`, sorted by name, concatenated."""
    files = sorted(glob.glob(pattern))
    if not files:
        sys.exit(f"tiny_gpt: no files match {pattern} (pass --corpus)")
    data = bytearray()
    for path in files:
        with open(path, "rb") as f:
            data += f.read()
    return torch.frombuffer(data, dtype=torch.uint8).long(), len(files)


def batch(data, size, block, gen):
    ix = torch.randint(0, data.numel() - block - 1, (size,), generator=gen)
    x = torch.stack([data[i:i + block] for i in ix.tolist()])
    y = torch.stack([data[i + 1:i + 1 + block] for i in ix.tolist()])
    return x, y


def evaluate(model, data, block, batches, gen):
    model.eval()
    total = 0.0
    with torch.no_grad():
        for _ in range(batches):
            x, y = batch(data, 32, block, gen)
            total += float(F.cross_entropy(model(x).flatten(0, 1), y.flatten()))
    model.train()
    return total / batches


def main():
    default_corpus = os.path.join(sysconfig.get_paths()["stdlib"], "*.py")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--block", type=int, default=64, help="context length in bytes")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=100, help="linear warmup steps (0: none)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--every", type=int, default=10, help="record every k-th step")
    ap.add_argument("--snapshot-every", type=int, default=200, help="0: no snapshots")
    ap.add_argument("--corpus", default=default_corpus, help="glob of the training text")
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data, nfiles = corpus(args.corpus)
    split = int(0.95 * data.numel())
    train_data, val_data = data[:split], data[split:]
    model = TinyGPT(args.d_model, args.layers, args.heads, args.block)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    warm = args.warmup
    # LambdaLR's epoch e counts the scheduler.step() calls so far: the factor of step e + 1.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / warm)
                                              if warm > 0 else 1.0)
    os.makedirs(args.out, exist_ok=True)
    snap = os.path.join(args.out, "snapshots") if args.snapshot_every > 0 else None
    rec = RoteqRecorder(model, opt, os.path.join(args.out, "trace.csv"), every=args.every,
                        snapshot_dir=snap, snapshot_every=args.snapshot_every,
                        snapshot_layout="hf", snapshot_optimizer=True)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    loss_sum, loss_n = 0.0, 0
    with rec:
        for step in range(1, args.steps + 1):
            x, y = batch(train_data, args.batch_size, args.block, gen)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            rec.step()
            sched.step()
            loss_sum, loss_n = loss_sum + float(loss), loss_n + 1
            if step % 250 == 0 or step == args.steps:
                print(f"tiny_gpt: step {step}/{args.steps} loss {loss_sum / loss_n:.4f} "
                      f"({loss_sum / loss_n / math.log(2):.3f} bits/byte)", file=sys.stderr)
                loss_sum, loss_n = 0.0, 0
    seconds = time.perf_counter() - t0
    val = evaluate(model, val_data, args.block, args.eval_batches,
                   torch.Generator().manual_seed(args.seed + 1))
    run = {"steps": args.steps, "batch_size": args.batch_size, "block": args.block,
           "d_model": args.d_model, "layers": args.layers, "heads": args.heads,
           "lr": args.lr, "weight_decay": args.weight_decay, "warmup": args.warmup,
           "seed": args.seed, "threads": torch.get_num_threads(),
           "corpus": args.corpus, "corpus_files": nfiles, "corpus_bytes": int(data.numel()),
           "val_loss": val, "val_bits_per_byte": val / math.log(2),
           "parameters": sum(p.numel() for p in model.parameters()),
           "seconds": seconds, "ms_per_step": 1e3 * seconds / args.steps,
           "recorder_ms_per_step": 1e3 * rec.seconds / args.steps,
           "recorded_layers": len(rec.layers),
           "recorded_neurons": sum(p.shape[rec.axes[n]] for n, (p, _) in rec.layers.items()),
           "recorded_weights": sum(p.numel() for p, _ in rec.layers.values())}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
        f.write("\n")
    print(f"tiny_gpt: validation {run['val_bits_per_byte']:.3f} bits/byte, "
          f"{run['ms_per_step']:.1f} ms/step (recorder {run['recorder_ms_per_step']:.2f}), "
          f"{seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
