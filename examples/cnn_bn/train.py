#!/usr/bin/python3
"""train.py - a ResNet-style CNN with BatchNorm on Fashion-MNIST, AdamW at constant lr, recorded
for roteq three ways at once:

- the per-step trace (OUT/trace.csv, metadata OUT/trace.csv.json) with the recorder's step
  statistics (grad_cos, update_norm, update_radial, update_cos_prev);
- the recorder's safetensors snapshots of the recorded weights every --snapshot-every steps
  (OUT/snapshots/step_*.safetensors, metadata OUT/snapshots.json);
- ordinary `torch.save` checkpoints every --checkpoint-every steps, as a training script writes
  them: {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": N}
  (OUT/checkpoints/step_*.pt), the input of roteq's checkpoint readers (optimizer state, per-step
  rotation from a single checkpoint).

Network (every convolution is followed by BatchNorm, so its output channels are scale-invariant;
the final Linear is not):
    stem   conv 3x3, 1 -> W, stride 2 (28 -> 14), BN, ReLU
    layer1 BasicBlock(W -> W)               two 3x3 convs with BN, identity shortcut
    layer2 BasicBlock(W -> 2W, stride 2)    14 -> 7, shortcut 1x1 conv + BN
    layer3 BasicBlock(2W -> 4W, stride 2)   7 -> 4, shortcut 1x1 conv + BN
    head   global average pool, Linear(4W -> 10)
Weight decay on every conv and Linear weight; none on biases and BatchNorm parameters.

    /usr/bin/python3 examples/cnn_bn/train.py --steps 2000 --out runs/cnn_bn

Reads Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), as
examples/fashion_mnist does.
"""

import argparse
import importlib.util
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "adapters", "torch"))
from roteq_recorder import RoteqRecorder  # noqa: E402


def _fashion_mnist():
    """examples/fashion_mnist/train.py, for its idx reader (one copy of the data loading)."""
    spec = importlib.util.spec_from_file_location(
        "fashion_mnist_train", os.path.join(HERE, "..", "fashion_mnist", "train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class BasicBlock(nn.Module):
    """ResNet's basic block: conv-BN-ReLU-conv-BN plus the shortcut, then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNetSmall(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(1, w, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(w)
        self.layer1 = BasicBlock(w, w, 1)
        self.layer2 = BasicBlock(w, 2 * w, 2)
        self.layer3 = BasicBlock(2 * w, 4 * w, 2)
        self.fc = nn.Linear(4 * w, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


def evaluate(model, x, y, mean, std):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            xb = ((x[i:i + 1000].float() - mean) / std).reshape(-1, 1, 28, 28)
            correct += int((model(xb).argmax(1) == y[i:i + 1000]).sum())
    model.train()
    return correct / x.shape[0]


def save_checkpoint(path, model, opt, step):
    """torch.save of the dict a training script keeps, written to a temporary name first."""
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=16, help="channels of the first stage")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--every", type=int, default=1, help="record every k-th step")
    ap.add_argument("--snapshot-every", type=int, default=100, help="0: no recorder snapshots")
    ap.add_argument("--snapshot-optimizer", action="store_true",
                    help="recorder snapshots also hold the optimizer state")
    ap.add_argument("--checkpoint-every", type=int, default=250, help="0: no torch.save files")
    ap.add_argument("--train-size", type=int, default=0, help="use the first N training images")
    ap.add_argument("--test-size", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    fm = _fashion_mnist()
    x_train, y_train = fm.load(args.data, "train")
    x_test, y_test = fm.load(args.data, "test")
    if args.train_size > 0:
        x_train, y_train = x_train[:args.train_size], y_train[:args.train_size]
    x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    mean, std = x_train.float().mean(), x_train.float().std()

    model = ResNetSmall(args.width)
    # The usual split: decay on the conv and Linear weights, none on biases and BatchNorm. Each
    # group also lists its parameters' names as `param_names`, as torch >= 2.6 writes it when
    # the optimizer is given model.named_parameters(): torch keeps extra group keys in its
    # state_dict, so the checkpoints name their optimizer state. Without the names, a reader
    # must map the numbered state by model order, which two groups of repeated BatchNorm shapes
    # make ambiguous (roteq then refuses rather than guess).
    named = list(model.named_parameters())
    decay = [(n, p) for n, p in named if p.dim() >= 2]
    no_decay = [(n, p) for n, p in named if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": [p for _, p in decay], "param_names": [n for n, _ in decay],
          "weight_decay": args.weight_decay},
         {"params": [p for _, p in no_decay], "param_names": [n for n, _ in no_decay],
          "weight_decay": 0.0}], lr=args.lr)
    os.makedirs(args.out, exist_ok=True)
    snap = os.path.join(args.out, "snapshots") if args.snapshot_every > 0 else None
    ckpt_dir = os.path.join(args.out, "checkpoints")
    if args.checkpoint_every > 0:
        os.makedirs(ckpt_dir, exist_ok=True)
        save_checkpoint(os.path.join(ckpt_dir, "step_00000000.pt"), model, opt, 0)
    rec = RoteqRecorder(model, opt, os.path.join(args.out, "trace.csv"), every=args.every,
                        snapshot_dir=snap, snapshot_every=args.snapshot_every,
                        snapshot_optimizer=args.snapshot_optimizer)

    gen = torch.Generator().manual_seed(args.seed)
    perm, pos = torch.randperm(x_train.shape[0], generator=gen), 0
    t0 = time.perf_counter()
    ckpt_seconds = 0.0
    loss_sum, loss_n = 0.0, 0
    with rec:
        for step in range(1, args.steps + 1):
            if pos + args.batch_size > perm.numel():
                perm, pos = torch.randperm(x_train.shape[0], generator=gen), 0
            idx = perm[pos:pos + args.batch_size]
            pos += args.batch_size
            xb = ((x_train[idx].float() - mean) / std).reshape(-1, 1, 28, 28)
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            rec.step()
            if args.checkpoint_every > 0 and step % args.checkpoint_every == 0:
                c0 = time.perf_counter()
                save_checkpoint(os.path.join(ckpt_dir, f"step_{step:08d}.pt"), model, opt, step)
                ckpt_seconds += time.perf_counter() - c0
            loss_sum, loss_n = loss_sum + float(loss), loss_n + 1
            if step % 250 == 0 or step == args.steps:
                print(f"cnn_bn: step {step}/{args.steps} loss {loss_sum / loss_n:.4f}",
                      file=sys.stderr)
                loss_sum, loss_n = 0.0, 0
    seconds = time.perf_counter() - t0
    acc = evaluate(model, x_test, y_test, mean, std)
    run = {"steps": args.steps, "batch_size": args.batch_size, "width": args.width,
           "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.seed,
           "threads": torch.get_num_threads(), "test_accuracy": acc,
           "test_images": int(x_test.shape[0]), "seconds": seconds,
           "ms_per_step": 1e3 * seconds / args.steps,
           "recorder_ms_per_step": 1e3 * rec.seconds / args.steps,
           "checkpoint_ms_per_step": 1e3 * ckpt_seconds / args.steps,
           "recorded_layers": len(rec.layers),
           "recorded_neurons": sum(p.shape[0] for p, _ in rec.layers.values()),
           "recorded_weights": sum(p.numel() for p, _ in rec.layers.values())}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
        f.write("\n")
    print(f"cnn_bn: test accuracy {acc:.4f}, {run['ms_per_step']:.1f} ms/step "
          f"(recorder {run['recorder_ms_per_step']:.2f}), {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
