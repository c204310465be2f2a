#!/usr/bin/python3
"""numpy_peer.py - the NumPy peer of `roteq bench`: the same AdamW random walk as the simulator.

N neurons of dimension C (float64); each step draws standard-normal gradient coordinates
(default_rng), projects them orthogonal to w and divides by ||w|| (the scale-invariant model),
applies torch.optim.AdamW's update written with vector operations, and computes every neuron's
norm and angular update (stable atan2 form) every step. Prints one line:
    numpy ns_per_ncs=X cpu_ns_per_ncs=W norm=Y angle_rms=Z
where ns_per_ncs is wall time (cpu_ns_per_ncs CPU time) per neuron-coordinate-step of the
step loop and norm / angle_rms
are last-quarter averages (a sanity check that the work is the same).

Run with /usr/bin/python3 (the interpreter that has numpy). One thread: set by `roteq bench`
through OMP_NUM_THREADS / OPENBLAS_NUM_THREADS (nothing here calls BLAS anyway).
"""
import argparse
import math
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neurons", type=int, default=128)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    N, C, T = a.neurons, a.dim, a.steps
    lr, wd, b1, b2, eps = a.lr, a.weight_decay, 0.9, 0.999, 1e-8
    rng = np.random.default_rng(a.seed)
    w = rng.standard_normal((N, C))
    w *= math.sqrt(lr * C / (2 * wd)) / np.linalg.norm(w, axis=1, keepdims=True)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    w_old = np.empty_like(w)
    q_start = T - T // 4 + 1
    sum_norm = np.zeros(N)
    sum_ang2 = np.zeros(N)
    a2 = np.einsum("ij,ij->i", w, w)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for t in range(1, T + 1):
        z = rng.standard_normal((N, C))
        dot = np.einsum("ij,ij->i", z, w)
        inv_a = 1.0 / np.sqrt(a2)
        g = z * inv_a[:, None] - (dot * inv_a / a2)[:, None] * w
        np.copyto(w_old, w)
        w *= 1.0 - lr * wd
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        denom = np.sqrt(v)
        denom /= math.sqrt(1.0 - b2**t)
        denom += eps
        w -= (lr / (1.0 - b1**t)) * (m / denom)
        d = w - w_old
        new_a2 = np.einsum("ij,ij->i", w, w)
        dd = np.einsum("ij,ij->i", d, d)
        dw = np.einsum("ij,ij->i", d, w_old)
        perp2 = np.maximum(dd - dw * dw / a2, 0.0)
        angle = np.arctan2(np.sqrt(a2 * perp2), a2 + dw)
        a2 = new_a2
        if t >= q_start:
            sum_norm += np.sqrt(new_a2)
            sum_ang2 += angle * angle
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    q = T - q_start + 1
    print("numpy ns_per_ncs=%.4f cpu_ns_per_ncs=%.4f norm=%.6g angle_rms=%.6g"
          % (secs * 1e9 / (N * C * T), cpu * 1e9 / (N * C * T),
             np.mean(sum_norm / q), math.sqrt(np.mean(sum_ang2 / q))))


if __name__ == "__main__":
    main()
