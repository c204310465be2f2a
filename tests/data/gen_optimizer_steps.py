#!/usr/bin/env python3
"""Writes the reference trajectories that tests/sim/test_parity.c replays through roteq's rules.

Each CSV file is one optimizer run on 8 float64 coordinates: the initial parameters (step 0), then
for every step the gradient the optimizer saw and the parameters after its step. The gradients do
not depend on the parameters (a fixed random sequence, scaled 0.1, 2.1, 4.1 in turn so the
adaptive rules see changing magnitudes), so every file shares them. SGD and Adam(W) come from
torch.optim itself; Lion is not in torch 1.13 and follows its published algorithm (Chen et al.
2023, Algorithm 2, decoupled weight decay), written here in torch float64 operations.

    /usr/bin/python3 tests/data/gen_optimizer_steps.py [OUTDIR]   (default tests/data/optimizer_steps)
    /usr/bin/python3 tests/data/gen_optimizer_steps.py --check    regenerate into a temporary folder
                                                                  and compare (the meson test)

The files in the repository were written with Debian's python3-torch 1.13.1 (torch.__version__
1.13.0a0); each file's first line names the torch version that wrote it. Float64 on a CPU is
deterministic, so rerunning the script must reproduce them byte for byte.
"""
import filecmp
import os
import sys
import tempfile

import torch

SEED = 1234
COORDS = 8
STEPS = 25
SCALES = (0.1, 2.1, 4.1)
TORCH = "PyTorch " + torch.__version__.split("+")[0]

# (file stem, header source, torch class or None for Lion, hyperparameters in header order)
RUNS = [
    ("adam_l2", "torch.optim.Adam", torch.optim.Adam,
     dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.1)),
    ("adamw", "torch.optim.AdamW", torch.optim.AdamW,
     dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.1)),
    ("adamw_beta", "torch.optim.AdamW", torch.optim.AdamW,
     dict(lr=0.003, beta1=0.8, beta2=0.95, eps=1e-06, weight_decay=0.5)),
    ("lion", None, None, dict(lr=0.001, weight_decay=1.0, beta1=0.9, beta2=0.99)),
    ("sgd", "torch.optim.SGD", torch.optim.SGD, dict(lr=0.1, weight_decay=0.01)),
    ("sgd_nesterov", "torch.optim.SGD", torch.optim.SGD,
     dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgdm", "torch.optim.SGD", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgdm_dampening", "torch.optim.SGD", torch.optim.SGD,
     dict(lr=0.05, momentum=0.8, dampening=0.8, weight_decay=0.001)),
]


def trajectory_inputs():
    """Initial parameters and the gradient sequence, one generator in a fixed order."""
    torch.manual_seed(SEED)
    x0 = torch.randn(COORDS, dtype=torch.float64)
    grads = [SCALES[t % len(SCALES)] * torch.randn(COORDS, dtype=torch.float64)
             for t in range(STEPS)]
    return x0, grads


def torch_kwargs(hp):
    kw = dict(hp)
    if "beta1" in kw:
        kw["betas"] = (kw.pop("beta1"), kw.pop("beta2"))
    return kw


class Lion:
    """Chen et al. 2023, Algorithm 2: c = b1 m + (1-b1) g; x -= lr (sign(c) + wd x);
    m = b2 m + (1-b2) g."""

    def __init__(self, p, lr, weight_decay, beta1, beta2):
        self.p, self.lr, self.wd, self.b1, self.b2 = p, lr, weight_decay, beta1, beta2
        self.m = torch.zeros_like(p)

    @torch.no_grad()
    def step(self):
        g = self.p.grad
        c = self.m * self.b1 + g * (1 - self.b1)
        self.p.sub_(self.lr * (torch.sign(c) + self.wd * self.p))
        self.m.mul_(self.b2).add_(g, alpha=1 - self.b2)


def row(step, kind, x):
    return ",".join([str(step), kind] + [repr(v) for v in x.tolist()]) + "\n"


def write_run(outdir, stem, source, cls, hp, x0, grads):
    p = torch.nn.Parameter(x0.clone())
    opt = cls([p], **torch_kwargs(hp)) if cls else Lion(p, **hp)
    if source is None:
        source = "Lion published algorithm (Chen et al. 2023, Algorithm 2), decoupled weight decay"
        head = "# source: %s\n" % source
    else:
        head = "# source: %s (%s)\n" % (source, TORCH)
    params = " ".join("%s=%s" % (k, v) for k, v in hp.items())
    lines = [head, "# optimizer=%s %s\n" % (stem, params),
             "step,kind," + ",".join("x%d" % i for i in range(COORDS)) + "\n", row(0, "param", x0)]
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        lines += [row(t, "grad", g), row(t, "param", p.detach())]
    with open(os.path.join(outdir, stem + ".csv"), "w") as f:
        f.writelines(lines)


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    x0, grads = trajectory_inputs()
    for stem, source, cls, hp in RUNS:
        write_run(outdir, stem, source, cls, hp, x0, grads)


def check(committed):
    """0 when every committed file is reproduced byte for byte."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        bad = [stem for stem, _, _, _ in RUNS
               if not filecmp.cmp(os.path.join(tmp, stem + ".csv"),
                                  os.path.join(committed, stem + ".csv"), shallow=False)]
    for stem in bad:
        print("%s.csv: %s does not reproduce the committed file" % (stem, TORCH), file=sys.stderr)
    print("%d of %d reference files reproduced by %s" % (len(RUNS) - len(bad), len(RUNS), TORCH))
    return 1 if bad else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    committed = os.path.join(here, "optimizer_steps")
    if sys.argv[1:] == ["--check"]:
        return check(committed)
    generate(sys.argv[1] if len(sys.argv) > 1 else committed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
