#!/usr/bin/python3
"""fc1_gap.py - why the input layer fc1 rotates slower than AdamW's prediction in this example.

Repeats the example's AdamW run (same seed, model, data order and hyperparameters as
train.py, no recorder) and, over the last quarter of the steps, measures per layer what the
random-walk model of theory/README.md section 3 assumes:

  u_t  = w_{t+1} - (1 - lr*wd) w_t          the Adam part of the step (exact, from the weights)
  g^_t = grad_t / (sqrt(v^_t) + eps)        the normalised gradient Adam applies (v^ bias-corrected)

and expresses everything as an "effective dimension" per neuron (theory: all equal to dim C):

  C_g    = E||g^||^2                                    (Adam's normaliser; theory C)
  C_rot  = E||u||^2 / (lr^2 (1-b1)/(1+b1))              (per-step update; sets the angle)
  C_norm = 2 wd E||w||^2 / lr                           (sets the norm: ||w|| = sqrt(lr C_norm/(2 wd)))

so that norm/prediction = sqrt(C_norm/C) and angle/prediction ~ sqrt(C_rot/C_norm). With
rho_k the lag-k autocorrelation of g^ and rad = -2 E<w, g^>/lr, the weights being a decayed sum
of past normalised gradients gives (derived in the example's README, first order in lr*wd):

  C_rot  ~ C_g (1 + 2 sum_k b1^k rho_k)      (short-lag correlation: the momentum's share)
  C_norm ~ C_rot + rad                       (rad: the part of g^ along w)

The random-walk model has rho_k = 0 and rad = 0. BatchNorm makes grad exactly orthogonal to w
(the largest |cos(w_i, grad_i)| is printed), but Adam's per-coordinate division by sqrt(v) need
not keep g^ orthogonal to w: rad > 0 (g^ pointing inwards, the update outwards) grows the norm
without adding rotation. The script prints rho_k for lags 1..--lags, the b1-weighted sum (from a
running filter, all lags) and rad.
For fc1 it also splits the per-coordinate quantities by input pixel (column), grouped by how
often the pixel is 0 in the training images.

    /usr/bin/python3 examples/fashion_mnist/fc1_gap.py [--steps 3000] [--threads 1]
        [--input global|pixel] [--v-per-neuron] [--seed 1] [--lags 30] [--json OUT.json]

Controls: --input pixel standardises every pixel on its own (mean 0, std 1 over the training
set; the example uses one global mean and std), which evens out the input coordinates'
gradient scales; --v-per-neuron trains with RowAdamW (below), whose normalised gradient is
orthogonal to w, so rad = 0. About 30 s for 3000 steps on one thread (10000 steps: 2 min).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402


class LayerStats:
    """Accumulators for one weight matrix (rows = neurons) over the measurement window."""

    def __init__(self, p, lags, start_corr):
        n, c = p.shape
        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        self.rows, self.dim, self.lags = n, c, lags
        self.count = 0
        self.w2, self.u2, self.gh2, self.wgh = z(n), z(n), z(n), z(n)
        self.ang2, self.cos_wg, self.uerr = z(n), 0.0, 0.0
        self.col_u2, self.col_gh2, self.col_w2, self.col_wgh, self.col_v = z(c), z(c), z(c), z(c), z(c)
        self.col_g2, self.col_wg, self.col_s = z(c), z(c), z(c)
        self.min_s = math.inf
        self.lagdot = z(lags, n)          # sum_t <g^_t, g^_{t-k}> per neuron
        self.ring = []                    # last `lags` g^ (float64)
        self.acc_b = z(n, c)              # b_t = b1 b_{t-1} + g^_t   (momentum-weighted past)
        self.dot_b = z(n)
        self.start_corr = start_corr

    def filters(self, gh, b1, measure):
        """Advance the running filters of g^ (from start_corr on); in the window, accumulate
        <past filter, g^_t> before adding g^_t."""
        if measure:
            self.dot_b += (self.acc_b * gh).sum(1)
            for k, old in enumerate(reversed(self.ring)):
                self.lagdot[k] += (old * gh).sum(1)
        self.acc_b.mul_(b1).add_(gh)
        self.ring.append(gh)
        if len(self.ring) > self.lags:
            self.ring.pop(0)

    def add(self, w, w_new, g, gh, v_hat, u_adam, d):
        u = w_new - d * w
        self.count += 1
        self.w2 += (w * w).sum(1)
        self.u2 += (u * u).sum(1)
        self.gh2 += (gh * gh).sum(1)
        self.wgh += (w * gh).sum(1)
        wn, gn = w.norm(dim=1), g.norm(dim=1)
        self.cos_wg = max(self.cos_wg, float(((w * g).sum(1).abs() / (wn * gn).clamp_min(1e-300)).max()))
        self.uerr = max(self.uerr, float((u - u_adam).norm() / u.norm()))
        a = w / wn[:, None]
        b = w_new / w_new.norm(dim=1)[:, None]
        self.ang2 += (2 * torch.atan2((a - b).norm(dim=1), (a + b).norm(dim=1))) ** 2
        self.col_u2 += (u * u).sum(0)
        self.col_gh2 += (gh * gh).sum(0)
        self.col_w2 += (w * w).sum(0)
        self.col_wgh += (w * gh).sum(0)
        self.col_v += v_hat.sum(0)
        self.col_g2 += (g * g).sum(0)
        self.col_wg += (w * g).sum(0)
        self.col_s += v_hat.sqrt().sum(0)
        self.min_s = min(self.min_s, float(v_hat.min().sqrt()))


class RowAdamW:
    """AdamW (PyTorch semantics) whose second moment is shared by a weight matrix's row: v of
    row i is the mean over the row of the per-coordinate EMA of g^2. Then g^ = grad/sqrt(v_row)
    is a per-neuron rescaling of the gradient and stays exactly orthogonal to w, as SGD's does.
    Other parameters (biases, BatchNorm) get ordinary per-coordinate Adam. A control for the
    radial term; the state mimics torch's (exp_avg_sq holds the row mean, broadcast)."""

    def __init__(self, groups, lr, betas=(0.9, 0.999), eps=1e-8):
        self.param_groups = [dict(g, lr=lr, betas=betas, eps=eps) for g in groups]
        self.state = {}

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self):
        for grp in self.param_groups:
            lr, (b1, b2), eps, wd = grp["lr"], grp["betas"], grp["eps"], grp["weight_decay"]
            for p in grp["params"]:
                s = self.state.setdefault(p, {"step": 0, "exp_avg": torch.zeros_like(p),
                                              "raw_sq": torch.zeros_like(p)})
                s["step"] += 1
                t = s["step"]
                p.mul_(1 - lr * wd)
                s["exp_avg"].mul_(b1).add_(p.grad, alpha=1 - b1)
                s["raw_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                v = s["raw_sq"]
                if p.dim() == 2:
                    v = v.mean(1, keepdim=True).expand_as(v)
                s["exp_avg_sq"] = v
                den = (v / (1 - b2 ** t)).sqrt().add_(eps)
                p.addcdiv_(s["exp_avg"], den, value=-lr / (1 - b1 ** t))


def summary(st, lr, wd, b1):
    k = (1 - b1) / (1 + b1)
    n = st.count
    C = st.dim
    A = float(st.w2.mean()) / n
    r = {
        "dim": C,
        "norm_rms": math.sqrt(A),
        "norm_pred": math.sqrt(lr * C / (2 * wd)),
        "angle_rms": math.sqrt(float(st.ang2.mean()) / n),
        "angle_pred": math.sqrt(2 * lr * wd * k),
        "C_g": float(st.gh2.mean()) / n,
        "C_rot": float(st.u2.mean()) / n / (lr * lr * k),
        "C_norm": 2 * wd * A / lr,
        "radial_wgh": -2 * float(st.wgh.mean()) / n / lr,         # -2E<w,g^>/lr (theory 0)
        "corr_b1": 2 * b1 * float(st.dot_b.mean()) / n / (float(st.gh2.mean()) / n),
        "rho": [float(x.mean()) / float(st.gh2.mean()) for x in st.lagdot],
        "max_cos_w_grad": st.cos_wg,
        "max_rel_err_u": st.uerr,
    }
    r["ratio_angle"] = r["angle_rms"] / r["angle_pred"]
    r["ratio_norm"] = r["norm_rms"] / r["norm_pred"]
    r["per_neuron_C_rot_over_C_norm_cv"] = None
    cr = st.u2 / n / (lr * lr * k)
    cn = 2 * wd * st.w2 / n / lr
    q = cr / cn
    r["per_neuron_C_rot_over_C_norm_cv"] = float(q.std() / q.mean())
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--input", choices=["global", "pixel"], default="global",
                    help="input standardisation: one mean/std (the example) or per pixel")
    ap.add_argument("--lags", type=int, default=30, help="lags of the g^ autocorrelation")
    ap.add_argument("--seed", type=int, default=1, help="seed (1: the example's run)")
    ap.add_argument("--eps", type=float, default=1e-8, help="Adam's eps")
    ap.add_argument("--v-per-neuron", action="store_true",
                    help="control: share Adam's second moment across each weight row (RowAdamW)")
    ap.add_argument("--json", help="also write the figures as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y = train.load(train.DATA_DIR, "train")
    xf = x.float()
    zero_frac = (x == 0).double().mean(0)
    if args.input == "global":
        mean, std = xf.mean(), xf.std()
    else:
        mean, std = xf.mean(0), xf.std(0).clamp_min(1e-6)
    model = train.MLP([512, 256])
    hp = train.DEFAULTS["adamw"]
    lr, wd = hp["lr"], hp["weight_decay"]
    if args.v_per_neuron:
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        opt = RowAdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}],
                       lr=lr)
    else:
        opt = train.make_optimizer("adamw", model, hp)
    for g in opt.param_groups:
        g["eps"] = args.eps
    b1, b2 = opt.param_groups[0]["betas"]
    eps = opt.param_groups[0]["eps"]
    d = 1 - lr * wd
    layers = {nm: p for nm, p in model.named_parameters() if p.dim() == 2}
    start = args.steps * 3 // 4
    start_corr = max(1, start - 1500)
    stats = {nm: LayerStats(p, args.lags, start_corr) for nm, p in layers.items()}
    gen = torch.Generator().manual_seed(args.seed)
    perm, pos = torch.randperm(x.shape[0], generator=gen), 0
    for step in range(1, args.steps + 1):  # the data order of train.py
        if pos + 128 > perm.numel():
            perm, pos = torch.randperm(x.shape[0], generator=gen), 0
        idx = perm[pos:pos + 128]
        pos += 128
        loss = F.cross_entropy(model((xf[idx] - mean) / std), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        track = step >= start_corr
        if track:
            before = {nm: (p.detach().double().clone(), p.grad.double().clone())
                      for nm, p in layers.items()}
        opt.step()
        if not track:
            continue
        for nm, p in layers.items():
            w, g = before[nm]
            s = opt.state[p]
            t = float(s["step"])
            v_hat = s["exp_avg_sq"].double() / (1 - b2 ** t)
            m_hat = s["exp_avg"].double() / (1 - b1 ** t)
            den = v_hat.sqrt() + eps
            gh = g / den
            stats[nm].filters(gh, b1, step > start)
            if step > start:
                stats[nm].add(w, p.detach().double(), g, gh, v_hat, -lr * m_hat / den, d)

    res = {"steps": args.steps, "seed": args.seed, "window": [start + 1, args.steps], "input": args.input,
           "eps": eps, "v_per_neuron": args.v_per_neuron, "layers": {}}
    print(f"fc1_gap: {'RowAdamW (v per neuron)' if args.v_per_neuron else 'adamw'} lr {lr} wd {wd} "
          f"betas ({b1}, {b2}) eps {eps:g}, seed {args.seed}, input "
          f"standardisation {args.input}, steps {start + 1}-{args.steps}")
    print(f"{'layer':11s} {'dim':>4s} {'norm/pred':>9s} {'angle/pred':>10s} {'C_g/C':>6s} "
          f"{'C_rot/C':>7s} {'C_norm/C':>8s} {'sqrt(Cr/Cn)':>11s} {'1+corr_b1':>9s} "
          f"{'rad/C':>6s} {'(Crot+rad)/C':>12s} {'max cos(w,g)':>12s}")
    for nm, st in stats.items():
        r = summary(st, lr, wd, b1)
        res["layers"][nm] = r
        C = r["dim"]
        print(f"{nm:11s} {C:4d} {r['ratio_norm']:9.4f} {r['ratio_angle']:10.4f} "
              f"{r['C_g'] / C:6.3f} {r['C_rot'] / C:7.3f} {r['C_norm'] / C:8.3f} "
              f"{math.sqrt(r['C_rot'] / r['C_norm']):11.4f} {1 + r['corr_b1']:9.3f} "
              f"{r['radial_wgh'] / C:6.3f} {(r['C_rot'] + r['radial_wgh']) / C:12.3f} "
              f"{r['max_cos_w_grad']:12.2e}")
    print("lag-k autocorrelation of g^ (E<g^_t, g^_t-k> / E||g^||^2):")
    for nm in stats:
        rho = res["layers"][nm]["rho"]
        print(f"  {nm:11s} " + " ".join(f"{x:+.3f}" for x in rho[:10])
              + f"  sum(1..{args.lags}) {sum(rho):+.3f}; 1+2*sum b1^k rho_k (lags) "
              f"{1 + 2 * sum(b1 ** (k + 1) * x for k, x in enumerate(rho)):.3f}")
    for nm in stats:
        print(f"  {nm}: max |u - (-lr m^/(sqrt v^ + eps))| / |u| = {res['layers'][nm]['max_rel_err_u']:.1e}, "
              f"per-neuron CV of C_rot/C_norm {res['layers'][nm]['per_neuron_C_rot_over_C_norm_cv']:.3f}, "
              f"min sqrt(v^) {stats[nm].min_s:.1e} = {stats[nm].min_s / eps:.0f} eps")

    # fc1 by input pixel
    st = stats["fc1.weight"]
    n, N = st.count, st.rows
    k = (1 - b1) / (1 + b1)
    col = {
        "C_g": st.col_gh2 / n / N,                       # per coordinate; theory 1
        "C_rot": st.col_u2 / n / N / (lr * lr * k),
        "C_norm": 2 * wd * st.col_w2 / n / N / lr,
        "rad": -2 * st.col_wgh / n / N / lr,
        "v": st.col_v / n / N,
        "g2": st.col_g2 / n / N,
        "wg": st.col_wg / n / N,     # E[w_j grad_j] (mean over neurons); sums to ~0 over j (BN)
        "s": st.col_s / n / N,       # mean sqrt(v^_j)
    }
    groups = [("zero in >=99%", zero_frac >= 0.99), ("90-99%", (zero_frac >= 0.9) & (zero_frac < 0.99)),
              ("50-90%", (zero_frac >= 0.5) & (zero_frac < 0.9)), ("<50%", zero_frac < 0.5),
              ("all", zero_frac >= 0)]
    print("fc1 by input pixel (how often the pixel is 0 in the 60000 training images); per-coordinate"
          " means, theory 1 each:")
    print(f"  {'pixels zero':14s} {'count':>5s} {'C_g':>6s} {'C_rot':>6s} {'C_norm':>6s} {'rad':>7s} "
          f"{'Crot+rad':>8s} {'share C_rot':>11s} {'share C_norm':>12s} {'E g^2/v^':>8s} {'sqrt v^ rel':>11s} "
          f"{'sum E[w g] (x1e-6)':>18s}")
    res["fc1_pixels"] = []
    for name, msk in groups:
        c = int(msk.sum())
        row = {"group": name, "pixels": c}
        for key in ("C_g", "C_rot", "C_norm", "rad"):
            row[key] = float(col[key][msk].mean())
        row["share_C_rot"] = float(col["C_rot"][msk].sum() / col["C_rot"].sum())
        row["share_C_norm"] = float(col["C_norm"][msk].sum() / col["C_norm"].sum())
        row["g2_over_v"] = float((col["g2"][msk] / col["v"][msk]).mean())
        row["sqrt_v_rel"] = float(col["s"][msk].mean() / col["s"].mean())
        row["sum_wg"] = float(col["wg"][msk].sum())
        res["fc1_pixels"].append(row)
        print(f"  {name:14s} {c:5d} {row['C_g']:6.3f} {row['C_rot']:6.3f} {row['C_norm']:6.3f} "
              f"{row['rad']:+7.3f} {row['C_rot'] + row['rad']:8.3f} {row['share_C_rot']:11.3f} "
              f"{row['share_C_norm']:12.3f} {row['g2_over_v']:8.3f} {row['sqrt_v_rel']:11.3f} "
              f"{row['sum_wg'] * 1e6:18.3f}")
    rr = col["C_norm"] / col["C_rot"]
    res["fc1_corr_Cnorm_over_Crot_vs_zero_frac"] = float(torch.corrcoef(torch.stack([rr, zero_frac]))[0, 1])
    print(f"  correlation across pixels of C_norm/C_rot with the zero fraction: "
          f"{res['fc1_corr_Cnorm_over_Crot_vs_zero_frac']:+.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
