#!/usr/bin/python3
"""bench_recorder.py - the recorder's overhead on the Fashion-MNIST example, measured fairly.

On a shared machine two separate runs are not comparable, so one process trains one model and
interleaves blocks of steps in each mode (plain optimizer.step(); the recorder recording every
step, with the step statistics columns (the default) and without them; every 10th step; every
step plus a safetensors snapshot every 100 steps), round-robin,
and reports the median wall time and CPU time (of this process) per step of each mode and their
ratios to the plain step: CPU time is what to compare when other jobs share the cores. The
traces go to a temporary folder and are deleted.

    /usr/bin/python3 examples/fashion_mnist/bench_recorder.py [--rounds 5 --block 100 --threads 1]

--parts also times the recorder's pieces on one 512 x 784 layer (CPU time, 200 repetitions).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train  # noqa: E402  (the example's model, data and optimizer)
import roteq_recorder  # noqa: E402  (train put adapters/torch on the path)
from roteq_recorder import RoteqRecorder  # noqa: E402


def parts():
    """CPU time of each piece of a recorded step on a 512 x 784 float32 layer."""
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(512, 784))
    p.grad = torch.randn(512, 784)
    ws = roteq_recorder._Workspace(p)
    prefix = [f",fc1.weight,{i}," for i in range(512)]

    def timed(fn, n=200):
        fn()
        t = time.process_time()
        for _ in range(n):
            fn()
        return 1e3 * (time.process_time() - t) / n

    ws.save_before(p, True)
    norms, angles = ws.compute(p)
    nl, al = norms.tolist(), angles.tolist()
    ws.save_before(p, True)
    ws.update(p, 1, 1e-3, 1.0)
    ws.update(p, 2, 1e-3, 1.0)
    gc, un, ur, uc = ws.stats()
    fmt, f9 = roteq_recorder._fmt, roteq_recorder._fmt9
    rows = [
        ("save weights before the step", timed(lambda: ws.save_before(p, False))),
        ("  ... and measure the gradient", timed(lambda: ws.save_before(p, True))),
        ("float64 norms and angles", timed(lambda: ws.compute(p))),
        ("update statistics (d, radial, cos)", timed(lambda: ws.update(p, 3, 1e-3, 1.0))),
        ("format 512 CSV lines", timed(lambda: "".join(
            [f"12{pre}{n!r},{fmt(a)},0.001,1.0\n" for pre, n, a in zip(prefix, nl, al)]))),
        ("  ... with the 4 statistics", timed(lambda: "".join(
            [f"12{pre}{n!r},{fmt(a)},0.001,1.0,{f9(c)},{f9(m)},{f9(r)},{f9(q)}\n"
             for pre, n, a, c, m, r, q in zip(prefix, nl, al, gc, un, ur, uc)]))),
    ]
    print(f"bench_recorder --parts: one 512 x 784 layer, {torch.get_num_threads()} thread(s)")
    for name, ms in rows:
        print(f"  {name:32s} {ms:7.3f} ms CPU")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=100, help="steps per block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", default="512,256")
    ap.add_argument("--optimizer", default="adamw", choices=sorted(train.DEFAULTS))
    ap.add_argument("--parts", action="store_true", help="also time the recorder's pieces")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.parts:
        parts()
    torch.manual_seed(1)
    x, y = train.load(train.DATA_DIR, "train")
    mean, std = x.float().mean(), x.float().std()
    model = train.MLP([int(h) for h in args.hidden.split(",")])
    opt = train.make_optimizer(args.optimizer, model, train.DEFAULTS[args.optimizer])
    tmp = tempfile.TemporaryDirectory(prefix="roteq-bench-")
    recs = {
        "record every step": RoteqRecorder(model, opt, os.path.join(tmp.name, "a.csv")),
        "every step, no statistics": RoteqRecorder(model, opt, os.path.join(tmp.name, "s.csv"),
                                                   record_stats=False),
        "record every 10th step": RoteqRecorder(model, opt, os.path.join(tmp.name, "b.csv"),
                                                every=10),
        "every step + snapshot/100": RoteqRecorder(
            model, opt, os.path.join(tmp.name, "c.csv"),
            snapshot_dir=os.path.join(tmp.name, "snap"), snapshot_every=100),
    }
    modes = ["plain optimizer.step()"] + list(recs)
    times = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    gen = torch.Generator().manual_seed(1)

    def block(mode):
        step_fn = opt.step if mode == modes[0] else recs[mode].step
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.block):
            idx = torch.randint(0, x.shape[0], (128,), generator=gen)
            loss = F.cross_entropy(model((x[idx].float() - mean) / std), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step_fn()
        return ((time.perf_counter() - t0) / args.block,
                (time.process_time() - c0) / args.block)

    block(modes[0])  # warm-up
    for _ in range(args.rounds):
        for m in modes:
            wall, used = block(m)
            times[m].append(wall)
            cpu[m].append(used)
    for r in recs.values():
        r.close()
    n = sum(p.numel() for p, _ in recs["record every step"].layers.values())
    rows = sum(p.shape[0] for p, _ in recs["record every step"].layers.values())
    base = statistics.median(times[modes[0]])
    cbase = statistics.median(cpu[modes[0]])
    print(f"bench_recorder: {args.optimizer}, MLP 784-{args.hidden.replace(',', '-')}-10, batch 128, "
          f"{torch.get_num_threads()} thread(s), {len(recs['record every step'].layers)} layers, "
          f"{rows} neurons, {n} recorded weights; median of {args.rounds} blocks of "
          f"{args.block} steps")
    print(f"  {'mode':28s} {'wall ms/step':>12s} {'ratio':>6s} {'CPU ms/step':>12s} {'ratio':>6s}"
          f" {'recorder CPU ms':>15s}")
    for m in modes:
        med, cmed = statistics.median(times[m]), statistics.median(cpu[m])
        print(f"  {m:28s} {1e3 * med:12.3f} {med / base:6.2f} {1e3 * cmed:12.3f} "
              f"{cmed / cbase:6.2f} {1e3 * (cmed - cbase):15.3f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
