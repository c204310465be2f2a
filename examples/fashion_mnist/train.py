#!/usr/bin/python3
"""train.py - a real training run for roteq to analyse: an MLP with BatchNorm on Fashion-MNIST.

Every hidden Linear layer is followed by BatchNorm1d, so its neurons (rows of the weight matrix)
are scale-invariant: the loss does not change when a row is scaled, which is the setting of the
rotational-equilibrium theory. The output layer has no normalisation after it and is not
scale-invariant; it is recorded anyway, to show what roteq says about such a layer.

Weight decay goes on the Linear weights only (biases and BatchNorm parameters get none, the
usual recipe). The recorder (adapters/torch/roteq_recorder.py) writes OUT/trace.csv, its
metadata OUT/trace.csv.json and, with --snapshot-every, safetensors snapshots in OUT/snapshots.

    /usr/bin/python3 examples/fashion_mnist/train.py --optimizer adamw --steps 3000 --out runs/adamw

Reads the idx files of Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "adapters", "torch"))
from roteq_recorder import RoteqRecorder  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"

# Per-optimizer defaults of this example: chosen so that lr * weight decay (the rate at which
# the norm relaxes) lets the hidden layers approach equilibrium within a few thousand steps.
DEFAULTS = {
    "adamw": {"lr": 1e-3, "weight_decay": 1.0},
    "sgdm": {"lr": 0.05, "weight_decay": 5e-3, "momentum": 0.9},
    "adam_l2": {"lr": 1e-3, "weight_decay": 5e-3},
}


def read_idx(path):
    """An idx file (the MNIST format: big-endian magic with the dtype and rank, then the dims,
    then the data) as a uint8 tensor."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    body = data[4 + 4 * rank:]
    if len(body) != torch.Size(dims).numel():
        raise ValueError(f"{path}: {len(body)} data bytes for dims {dims}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    try:
        x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    except FileNotFoundError as e:
        sys.exit(f"train.py: {e.filename}: not found (Debian package dataset-fashion-mnist; "
                 "scripts/setup.sh installs it)")
    return x.reshape(x.shape[0], -1), y.long()


class MLP(nn.Module):
    """784 -> hidden... -> 10. Hidden layer i is fc{i} (no bias: BatchNorm removes it), then
    BatchNorm1d bn{i} and ReLU; the output layer is `out`."""

    def __init__(self, hidden):
        super().__init__()
        dims = [784] + list(hidden)
        self.depth = len(hidden)
        for i, (a, b) in enumerate(zip(dims, dims[1:]), 1):
            setattr(self, f"fc{i}", nn.Linear(a, b, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm1d(b))
        self.out = nn.Linear(dims[-1], 10)

    def forward(self, x):
        for i in range(1, self.depth + 1):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"fc{i}")(x)))
        return self.out(x)


def make_optimizer(name, model, hp):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": hp["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=hp["lr"])
    if name == "adam_l2":
        return torch.optim.Adam(groups, lr=hp["lr"])
    if name == "sgdm":
        return torch.optim.SGD(groups, lr=hp["lr"], momentum=hp["momentum"])
    raise ValueError(name)


def evaluate(model, x, y, mean, std):
    model.eval()
    with torch.no_grad():
        correct = 0
        for i in range(0, x.shape[0], 2000):
            logits = model((x[i:i + 2000].float() - mean) / std)
            correct += int((logits.argmax(1) == y[i:i + 2000]).sum())
    model.train()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--optimizer", choices=sorted(DEFAULTS), default="adamw")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--hidden", default="512,256", help="hidden widths, comma-separated")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--momentum", type=float)
    ap.add_argument("--out", required=True, help="output folder (trace.csv, trace.csv.json, ...)")
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="lr schedule; cosine: roteq's cosine:STEPS:FLOOR (lr factor at step t "
                    "is FLOOR + (1-FLOOR)(1+cos(pi t/STEPS))/2, t from 1)")
    ap.add_argument("--lr-floor", type=float, default=0.1, help="cosine: final lr factor")
    ap.add_argument("--every", type=int, default=1, help="record every k-th step")
    ap.add_argument("--snapshot-every", type=int, default=0)
    ap.add_argument("--snapshot-layout", choices=["files", "hf"], default="files")
    ap.add_argument("--no-record", action="store_true", help="train without the recorder")
    ap.add_argument("--train-size", type=int, default=0, help="use the first N training images")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: this small MLP gains little from more, and "
                    "OpenMP threads spin badly on shared or oversubscribed cores)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=DATA_DIR)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hp = dict(DEFAULTS[args.optimizer])
    for key in ("lr", "weight_decay", "momentum"):
        if getattr(args, key) is not None:
            hp[key] = getattr(args, key)

    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "test")
    if args.train_size > 0:
        x_train, y_train = x_train[:args.train_size], y_train[:args.train_size]
    mean, std = x_train.float().mean(), x_train.float().std()

    model = MLP([int(h) for h in args.hidden.split(",")])
    opt = make_optimizer(args.optimizer, model, hp)
    os.makedirs(args.out, exist_ok=True)
    rec = None
    if not args.no_record:
        snap = os.path.join(args.out, "snapshots") if args.snapshot_every > 0 else None
        rec = RoteqRecorder(model, opt, os.path.join(args.out, "trace.csv"), every=args.every,
                            snapshot_dir=snap, snapshot_every=args.snapshot_every,
                            snapshot_layout=args.snapshot_layout)

    sched = None
    if args.schedule == "cosine":
        # LambdaLR's epoch e is the number of scheduler.step() calls so far, so the factor in
        # force at optimizer step t = e + 1 is roteq's factor for step t (the recorder writes
        # the lr of each step, and `roteq analyze` predicts the transient from it).
        steps, floor = args.steps, args.lr_floor
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: floor + (1 - floor) * 0.5 * (
            1 + math.cos(math.pi * min(e + 1, steps) / steps)))

    gen = torch.Generator().manual_seed(args.seed)
    perm, pos = torch.randperm(x_train.shape[0], generator=gen), 0
    t0 = time.perf_counter()
    loss_sum, loss_n = 0.0, 0
    for step in range(1, args.steps + 1):
        if pos + args.batch_size > perm.numel():
            perm, pos = torch.randperm(x_train.shape[0], generator=gen), 0
        idx = perm[pos:pos + args.batch_size]
        pos += args.batch_size
        xb = (x_train[idx].float() - mean) / std
        loss = F.cross_entropy(model(xb), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if rec is not None:
            rec.step()
        else:
            opt.step()
        if sched is not None:
            sched.step()
        loss_sum, loss_n = loss_sum + float(loss), loss_n + 1
        if step % 500 == 0 or step == args.steps:
            print(f"train.py: {args.optimizer} step {step}/{args.steps} "
                  f"loss {loss_sum / loss_n:.4f}", file=sys.stderr)
            loss_sum, loss_n = 0.0, 0
    seconds = time.perf_counter() - t0
    if rec is not None:
        rec.close()

    acc = evaluate(model, x_test, y_test, mean, std)
    summary = {
        "optimizer": args.optimizer, "hparams": hp, "steps": args.steps,
        "schedule": args.schedule if args.schedule == "constant" else
        f"cosine:{args.steps}:{args.lr_floor!r}",
        "batch_size": args.batch_size, "hidden": args.hidden, "seed": args.seed,
        "threads": torch.get_num_threads(), "test_accuracy": acc,
        "ms_per_step": 1e3 * seconds / args.steps,
        "recorder_ms_per_step": 1e3 * rec.seconds / args.steps if rec else 0.0,
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"train.py: {args.optimizer}: test accuracy {acc:.4f}, "
          f"{summary['ms_per_step']:.2f} ms/step"
          + (f" of which recorder {summary['recorder_ms_per_step']:.2f} ms" if rec else
             " (no recorder)"))


if __name__ == "__main__":
    main()
