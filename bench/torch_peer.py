#!/usr/bin/python3
"""torch_peer.py - the PyTorch peer of `roteq bench`: the same AdamW random walk driven by
torch.optim.AdamW itself (float64, one thread).

Each step draws standard-normal gradient coordinates (torch.randn), projects them orthogonal to
w and divides by ||w||, hands them to torch.optim.AdamW as the gradient, and computes every
neuron's norm and angular update (stable atan2 form) every step. Prints one line:
    torch ns_per_ncs=X cpu_ns_per_ncs=W norm=Y angle_rms=Z
Run with /usr/bin/python3 (the interpreter that has torch).
"""
import argparse
import math
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neurons", type=int, default=128)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    N, C, T = a.neurons, a.dim, a.steps
    gen = torch.Generator().manual_seed(a.seed)
    w0 = torch.randn(N, C, dtype=torch.float64, generator=gen)
    w0 *= math.sqrt(a.lr * C / (2 * a.weight_decay)) / w0.norm(dim=1, keepdim=True)
    p = torch.nn.Parameter(w0)
    opt = torch.optim.AdamW([p], lr=a.lr, weight_decay=a.weight_decay)
    q_start = T - T // 4 + 1
    sum_norm = torch.zeros(N, dtype=torch.float64)
    sum_ang2 = torch.zeros(N, dtype=torch.float64)
    w_old = torch.empty_like(w0)
    with torch.no_grad():
        a2 = (p * p).sum(dim=1)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for t in range(1, T + 1):
        with torch.no_grad():
            z = torch.randn(N, C, dtype=torch.float64, generator=gen)
            dot = (z * p).sum(dim=1)
            inv_a = a2.rsqrt()
            p.grad = z * inv_a[:, None] - (dot * inv_a / a2)[:, None] * p
            w_old.copy_(p)
        opt.step()
        with torch.no_grad():
            d = p - w_old
            new_a2 = (p * p).sum(dim=1)
            dd = (d * d).sum(dim=1)
            dw = (d * w_old).sum(dim=1)
            perp2 = (dd - dw * dw / a2).clamp_min(0.0)
            angle = torch.atan2((a2 * perp2).sqrt(), a2 + dw)
            a2 = new_a2
            if t >= q_start:
                sum_norm += new_a2.sqrt()
                sum_ang2 += angle * angle
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    q = T - q_start + 1
    print("torch ns_per_ncs=%.4f cpu_ns_per_ncs=%.4f norm=%.6g angle_rms=%.6g"
          % (secs * 1e9 / (N * C * T), cpu * 1e9 / (N * C * T),
             (sum_norm / q).mean().item(),
             math.sqrt((sum_ang2 / q).mean().item())))


if __name__ == "__main__":
    main()
