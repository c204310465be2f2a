#!/usr/bin/env python3
"""Writes the Muon reference trajectories that tests/sim/test_muon.c replays through sim/muon.c.

PyTorch 1.13 (Debian) has no torch.optim.Muon (it arrived in PyTorch 2.9), so this is a float64
re-implementation of its published algorithm, torch/optim/_muon.py, written in torch operations:

    buf.lerp_(grad, 1 - momentum)                      (buffer starts at zero)
    update = grad.lerp(buf, momentum) if nesterov else buf
    X = update (transposed if rows > cols); X = X / max(||X||_F, eps)
    ns_steps times: A = X X^T; B = b A + c A A; X = a X + B X      (a, b, c) = (3.4445, -4.775, 2.0315)
    adjusted_lr = lr sqrt(max(1, rows/cols))       ("original", the default)
                = 0.2 lr sqrt(max(rows, cols))     ("match_rms_adamw")
    W = W (1 - lr wd) - adjusted_lr O

The float64 files run the iteration in float64, as roteq's default does. PyTorch itself runs it
in bfloat16; the muon_bf16_* files do too, with torch.optim.Muon's own code (its
_zeropower_via_newtonschulz: grad.bfloat16(), norm, div_, and torch.addmm for both updates, each
rounding once), so roteq's --ns-precision bfloat16 is checked against torch's bfloat16 kernels
rather than against a second emulation. Torch 1.13 multiplies bfloat16 matrices with oneDNN,
accumulating in float32 as PyTorch 2.9 does, only when m*k*n > 4096 for each product (below
that its own loop accumulates in bfloat16: 7 of the 25 entries of a 5x5 product differ from
float32 accumulation), so these runs have a smaller side of at least 17. oneDNN's float32
summation order is its own (on this machine's AVX-512 BF16 kernel), so these files may differ
on another CPU, and roteq (OpenBLAS's order) matches them to the tolerance test_muon.c explains,
not bit for bit. The bfloat16 files also carry the iteration's output per step (kind "ortho").

Each CSV file: '#' lines with the source and the hyperparameters, a column line, then the
initial matrix (step 0, row-major x0..x{rows*cols-1}) and per step the gradient, the matrix
after the step and (bfloat16 files) before it the orthogonalised update.

    /usr/bin/python3 tests/data/gen_muon_steps.py [OUTDIR]   (default tests/data/muon_steps)
    /usr/bin/python3 tests/data/gen_muon_steps.py --check    regenerate into a temporary folder
                                                             and compare byte for byte
"""
import filecmp
import math
import os
import sys
import tempfile

import torch

SEED = 4321
STEPS = 25
SCALES = (0.1, 2.1, 4.1)
NS = (3.4445, -4.7750, 2.0315)

# (file stem, rows, cols, hyperparameters)
RUNS = [
    ("muon_square", 5, 5, dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True,
                               ns_steps=5, eps=1e-07, adjust_lr="original")),
    ("muon_tall", 7, 4, dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True,
                             ns_steps=5, eps=1e-07, adjust_lr="original")),
    ("muon_wide_heavy_ball", 4, 7, dict(lr=0.01, weight_decay=0.2, momentum=0.9, nesterov=False,
                                        ns_steps=5, eps=1e-07, adjust_lr="match_rms_adamw")),
    ("muon_tall_match_rms", 6, 3, dict(lr=0.005, weight_decay=0.3, momentum=0.5, nesterov=True,
                                       ns_steps=10, eps=1e-07, adjust_lr="match_rms_adamw")),
    ("muon_bf16_wide", 20, 24, dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True,
                                    ns_steps=5, eps=1e-07, adjust_lr="original",
                                    ns_precision="bfloat16")),
    ("muon_bf16_tall_one_step", 24, 18, dict(lr=0.02, weight_decay=0.1, momentum=0.9,
                                             nesterov=False, ns_steps=1, eps=1e-07,
                                             adjust_lr="original", ns_precision="bfloat16")),
]
BF16_STEPS = 12


def orthogonalise(update, ns_steps, eps):
    a, b, c = NS
    x = update.T if update.shape[0] > update.shape[1] else update
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if update.shape[0] > update.shape[1] else x


def orthogonalise_bf16(grad, ns_steps, eps):
    """torch.optim.Muon's _zeropower_via_newtonschulz (PyTorch 2.9), line for line."""
    a, b, c = NS
    ortho_grad = grad.bfloat16()
    transposed = grad.size(0) > grad.size(1)
    if transposed:
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    return ortho_grad.T if transposed else ortho_grad


def adjusted(lr, mode, rows, cols):
    if mode == "match_rms_adamw":
        return 0.2 * lr * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1, rows / cols))


def write_run(path, stem, rows, cols, hp):
    gen = torch.Generator().manual_seed(SEED + rows * 100 + cols)
    w = torch.randn(rows, cols, dtype=torch.float64, generator=gen)
    buf = torch.zeros_like(w)
    head = " ".join(f"{k}={v}" for k, v in hp.items())
    bf16 = hp.get("ns_precision") == "bfloat16"
    arith = ("Newton-Schulz in bfloat16 by torch's kernels (oneDNN, float32 accumulation)"
             if bf16 else "float64")
    lines = [f"# source: torch.optim.Muon algorithm (PyTorch 2.9 torch/optim/_muon.py), {arith}, "
             f"written with PyTorch {torch.__version__.split('+')[0]}",
             f"# optimizer=muon rows={rows} cols={cols} {head}",
             "step,kind," + ",".join(f"x{i}" for i in range(rows * cols))]

    def row(step, kind, t):
        return f"{step},{kind}," + ",".join(repr(float(v)) for v in t.reshape(-1).tolist())

    lines.append(row(0, "param", w))
    for t in range(1, (BF16_STEPS if bf16 else STEPS) + 1):
        g = SCALES[(t - 1) % len(SCALES)] * torch.randn(rows, cols, dtype=torch.float64,
                                                          generator=gen)
        buf.lerp_(g, 1 - hp["momentum"])
        update = g.lerp(buf, hp["momentum"]) if hp["nesterov"] else buf
        if bf16:
            o = orthogonalise_bf16(update, hp["ns_steps"], hp["eps"])
        else:
            o = orthogonalise(update, hp["ns_steps"], hp["eps"])
        lr = hp["lr"]
        w.mul_(1 - lr * hp["weight_decay"])
        w.add_(o, alpha=-adjusted(lr, hp["adjust_lr"], rows, cols))
        lines.append(row(t, "grad", g))
        if bf16:
            lines.append(row(t, "ortho", o.double()))
        lines.append(row(t, "param", w))
    with open(os.path.join(path, stem + ".csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def same_kernel():
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512_bf16" in f.read()
    except OSError:
        return False


def write_all(outdir):
    os.makedirs(outdir, exist_ok=True)
    for stem, rows, cols, hp in RUNS:
        write_run(outdir, stem, rows, cols, hp)


def main(argv):
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "muon_steps")
    if len(argv) > 1 and argv[1] == "--check":
        with tempfile.TemporaryDirectory() as tmp:
            write_all(tmp)
            # oneDNN's bfloat16 kernels (their float32 summation order) depend on the CPU: the
            # bfloat16 files are compared only on one with the AVX-512 BF16 kernel they came from
            names = [stem + ".csv" for stem, _, _, hp in RUNS
                     if "ns_precision" not in hp or same_kernel()]
            match, mismatch, errors = filecmp.cmpfiles(default, tmp, names, shallow=False)
            if mismatch or errors:
                print("differ from the committed files:", " ".join(mismatch + errors))
                return 1
            print(f"{len(match)} Muon reference files reproduced")
            return 0
    write_all(argv[1] if len(argv) > 1 else default)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
