#!/usr/bin/python3
"""muon_peer.py - the PyTorch peer of `roteq bench`'s Muon rows: the same Muon random walk as
`roteq simulate --optimizer muon` on one n x n matrix (float64, one thread), written in torch.

Each step draws standard-normal gradient rows (torch.randn), projects every row orthogonal to
its weight row and divides by the row norm, runs torch.optim.Muon's algorithm (lerp momentum,
Nesterov, Newton-Schulz with (3.4445, -4.775, 2.0315) on the Frobenius-normalised update, decay
with the unadjusted lr; PyTorch 1.13 has no torch.optim.Muon, so the step is written out) and
computes every row's norm and angle (stable 2 asin form), as roteq does. Also times the
Newton-Schulz iteration alone. Prints one line per size:
    muon n=N cpu_s_per_step=X cpu_s_per_ns=Y row_norm=Z
Run with /usr/bin/python3 (the interpreter that has torch).
"""
import argparse
import time

import torch

A, B, C = 3.4445, -4.7750, 2.0315


def newton_schulz(u, steps, eps=1e-7):
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = A * x + (B * gram + C * gram @ gram) @ x
    return x.T if u.shape[0] > u.shape[1] else x


def walk(n, steps, gen, lr=0.02, wd=0.1, momentum=0.95):
    w = torch.randn(n, n, dtype=torch.float64, generator=gen)
    w *= 1.3 / w.norm(dim=1, keepdim=True)
    buf = torch.zeros_like(w)
    t0 = time.process_time()
    for _ in range(steps):
        z = torch.randn(n, n, dtype=torch.float64, generator=gen)
        ww = (w * w).sum(dim=1, keepdim=True)
        g = (z - (z * w).sum(dim=1, keepdim=True) / ww * w) / ww.sqrt()
        buf.lerp_(g, 1 - momentum)
        o = newton_schulz(g.lerp(buf, momentum), 5)
        old = w.clone()
        w.mul_(1 - lr * wd).add_(o, alpha=-lr)
        a = old / old.norm(dim=1, keepdim=True)
        b = w / w.norm(dim=1, keepdim=True)
        angle = 2 * torch.asin(((a - b).norm(dim=1) / 2).clamp(max=1.0))
        norm = w.norm(dim=1).mean().item() + 0 * angle.sum().item()
    return (time.process_time() - t0) / steps, norm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--work", type=float, default=2e9, help="flops per size (sets the steps)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(a.seed)
    for n in (int(s) for s in a.sizes.split(",")):
        flops = 5 * 5 * n ** 3  # X X^T (as dsyrk), (X X^T)^2, B X: n^3 + 2n^3 + 2n^3 per step
        steps = max(2, int(a.work / flops))
        per_step, norm = walk(n, steps, gen)
        u = torch.randn(n, n, dtype=torch.float64, generator=gen)
        t0 = time.process_time()
        for _ in range(steps):
            newton_schulz(u, 5)
        per_ns = (time.process_time() - t0) / steps
        print(f"muon n={n} cpu_s_per_step={per_step:.6e} cpu_s_per_ns={per_ns:.6e} "
              f"row_norm={norm:.6g}", flush=True)


if __name__ == "__main__":
    main()
