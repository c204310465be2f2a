#!/usr/bin/python3
"""grad_spread.py - why SGD's layer-level norm prediction comes out high on the example.

roteq predicts SGD's equilibrium norm from the layer's RMS gradient norm at unit weight norm,
(eta*G^2/(2*lambda*(1-alpha)))^(1/4) (paper Table 1), but each neuron i settles at its own
(eta*G_i^2/(2*lambda*(1-alpha)))^(1/4); with G_i spread across neurons the mean of those
fourth roots lies below the value at the RMS (Jensen). This script repeats the example's SGDM
run (same seed, model and data order as train.py) and, over the last quarter of the steps,
accumulates each neuron's ||g~_i||^2 = ||grad_i||^2 ||w_i||^2 and its norm, then prints
measured mean norm vs both predictions.

    /usr/bin/python3 examples/fashion_mnist/grad_spread.py [--steps 3000 --threads 1]
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    x, y = train.load(train.DATA_DIR, "train")
    mean, std = x.float().mean(), x.float().std()
    model = train.MLP([512, 256])
    hp = train.DEFAULTS["sgdm"]
    opt = train.make_optimizer("sgdm", model, hp)
    layers = {n: p for n, p in model.named_parameters() if p.dim() == 2}
    g2 = {n: torch.zeros(p.shape[0], dtype=torch.float64) for n, p in layers.items()}
    norm = {n: torch.zeros(p.shape[0], dtype=torch.float64) for n, p in layers.items()}
    gen = torch.Generator().manual_seed(1)
    perm, pos, start, count = torch.randperm(x.shape[0], generator=gen), 0, args.steps * 3 // 4, 0
    for step in range(1, args.steps + 1):  # the data order of train.py
        if pos + 128 > perm.numel():
            perm, pos = torch.randperm(x.shape[0], generator=gen), 0
        idx = perm[pos:pos + 128]
        pos += 128
        loss = F.cross_entropy(model((x[idx].float() - mean) / std), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step > start:
            for n, p in layers.items():
                g2[n] += (p.grad.double().norm(dim=1) * p.detach().double().norm(dim=1)) ** 2
        opt.step()
        if step > start:
            count += 1
            for n, p in layers.items():
                norm[n] += p.detach().double().norm(dim=1)
    lr, wd, m = hp["lr"], hp["weight_decay"], hp["momentum"]
    pred = lambda G2: (lr * G2 / (2 * wd * (1 - m))) ** 0.25  # noqa: E731
    print(f"grad_spread: sgdm lr {lr} weight_decay {wd} momentum {m}, steps {start + 1}-{args.steps}")
    print(f"{'layer':11s} {'measured':>9s} {'layer RMS G':>12s} {'mean per-neuron':>16s} "
          f"{'CV of G_i':>9s} {'corr':>6s}")
    for n in layers:
        G2 = g2[n] / count
        meas = norm[n] / count
        per = pred(G2)
        G = G2.sqrt()
        corr = float(torch.corrcoef(torch.stack([meas, per]))[0, 1])
        print(f"{n:11s} {float(meas.mean()):9.4f} {pred(float(G2.mean())):12.4f} "
              f"{float(per.mean()):16.4f} {float(G.std() / G.mean()):9.3f} {corr:6.3f}")


if __name__ == "__main__":
    main()
