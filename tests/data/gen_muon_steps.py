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

PyTorch itself runs the iteration in bfloat16; the reference, like roteq, runs it in float64.
Each CSV file: '#' lines with the source and the hyperparameters, a column line, then the
initial matrix (step 0, row-major x0..x{rows*cols-1}) and per step the gradient and the matrix
after the step.

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
]


def orthogonalise(update, ns_steps, eps):
    a, b, c = NS
    x = update.T if update.shape[0] > update.shape[1] else update
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if update.shape[0] > update.shape[1] else x


def adjusted(lr, mode, rows, cols):
    if mode == "match_rms_adamw":
        return 0.2 * lr * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1, rows / cols))


def write_run(path, stem, rows, cols, hp):
    gen = torch.Generator().manual_seed(SEED + rows * 100 + cols)
    w = torch.randn(rows, cols, dtype=torch.float64, generator=gen)
    buf = torch.zeros_like(w)
    head = " ".join(f"{k}={v}" for k, v in hp.items())
    lines = [f"# source: torch.optim.Muon algorithm (PyTorch 2.9 torch/optim/_muon.py), float64, "
             f"written with PyTorch {torch.__version__.split('+')[0]}",
             f"# optimizer=muon rows={rows} cols={cols} {head}",
             "step,kind," + ",".join(f"x{i}" for i in range(rows * cols))]

    def row(step, kind, t):
        return f"{step},{kind}," + ",".join(repr(float(v)) for v in t.reshape(-1).tolist())

    lines.append(row(0, "param", w))
    for t in range(1, STEPS + 1):
        g = SCALES[(t - 1) % len(SCALES)] * torch.randn(rows, cols, dtype=torch.float64,
                                                          generator=gen)
        buf.lerp_(g, 1 - hp["momentum"])
        update = g.lerp(buf, hp["momentum"]) if hp["nesterov"] else buf
        o = orthogonalise(update, hp["ns_steps"], hp["eps"])
        lr = hp["lr"]
        w.mul_(1 - lr * hp["weight_decay"])
        w.add_(o, alpha=-adjusted(lr, hp["adjust_lr"], rows, cols))
        lines.append(row(t, "grad", g))
        lines.append(row(t, "param", w))
    with open(os.path.join(path, stem + ".csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_all(outdir):
    os.makedirs(outdir, exist_ok=True)
    for stem, rows, cols, hp in RUNS:
        write_run(outdir, stem, rows, cols, hp)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "muon_steps")
    if len(argv) > 1 and argv[1] == "--check":
        with tempfile.TemporaryDirectory() as tmp:
            write_all(tmp)
            names = [stem + ".csv" for stem, _, _, _ in RUNS]
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
