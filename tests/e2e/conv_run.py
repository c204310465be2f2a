#!/usr/bin/python3
"""conv_run.py OUT - a small convolutional run for the e2e test: conv weights are 4-D
([out, in, kh, kw]), so the recorder's rows (out x in*kh*kw, C order) and roteq's snapshot reader
(trailing axes flattened) must agree on what a neuron is. Trains a two-conv BatchNorm net on
random data (no dataset needed) for 60 AdamW steps, recording every step, with float32
snapshots every step in OUT/snapshots and the trace in OUT/trace.csv. The two convolutions are in
different param groups (conv2: half the lr and weight decay), so the metadata carries per-layer
overrides.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "adapters", "torch"))
from roteq_recorder import RoteqRecorder  # noqa: E402


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 12, (3, 2), bias=False)  # non-square: kh != kw
        self.bn2 = torch.nn.BatchNorm2d(12)
        self.head = torch.nn.Linear(12, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean((2, 3)))


def main():
    out = sys.argv[1]
    torch.set_num_threads(1)
    torch.manual_seed(4)
    model = ConvNet()
    rest = [p for n, p in model.named_parameters() if n not in ("conv1.weight", "conv2.weight")]
    opt = torch.optim.AdamW([{"params": [model.conv1.weight], "weight_decay": 0.5},
                             {"params": [model.conv2.weight], "weight_decay": 0.25, "lr": 1e-3},
                             {"params": rest, "weight_decay": 0.0}], lr=2e-3)
    gen = torch.Generator().manual_seed(5)
    with RoteqRecorder(model, opt, os.path.join(out, "trace.csv"),
                       snapshot_dir=os.path.join(out, "snapshots"), snapshot_every=1) as rec:
        for _ in range(60):
            x = torch.randn(32, 3, 9, 9, generator=gen)
            y = torch.randint(0, 5, (32,), generator=gen)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            rec.step()


if __name__ == "__main__":
    main()
