#!/usr/bin/python3
"""test_recorder.py - unit tests of adapters/torch/roteq_recorder.py, independent of roteq's C side.

Every file the recorder writes is read back here by code written from the format specs, not by
the recorder's own helpers: the CSV with the csv module (docs/FORMATS.md section 1), the metadata
with json, the safetensors files by a strict reader of the published layout. Values are checked
against quantities computed here (norms from the parameters themselves, angles of constructed
rotations). Run by meson (suite e2e); fails, never skips, when torch is missing: CI installs
python3-torch through scripts/setup.sh.
"""

import csv
import glob
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import unittest
import warnings

import torch  # an ImportError here fails the test on purpose

SOURCE = os.environ.get("ROTEQ_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "adapters", "torch"))
import roteq_recorder as rr  # noqa: E402

torch.set_num_threads(1)

ST_DTYPES = {"F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
             "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
             "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1),
             "BOOL": (torch.bool, 1)}
COLUMNS = ["step", "layer", "neuron", "norm", "angle", "lr", "weight_decay"]
STAT_COLUMNS = ["grad_cos", "update_norm", "update_radial", "update_cos_prev"]


def read_safetensors(path):
    """A strict reader of the safetensors layout: u64 LE header size, JSON header, data whose
    tensors exactly tile the byte buffer. Returns ({name: tensor}, metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    assert len(blob) >= 8, f"{path}: shorter than the header size"
    (n,) = struct.unpack("<Q", blob[:8])
    assert 8 + n <= len(blob), f"{path}: header size {n} beyond the file"
    assert n % 8 == 0, f"{path}: header not padded to 8 bytes"
    raw = blob[8:8 + n]
    assert raw.decode("utf-8").startswith("{")
    header = json.loads(raw.decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    spans, out = [], {}
    for name, info in header.items():
        assert set(info) == {"dtype", "shape", "data_offsets"}, info
        dtype, size = ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        assert end - begin == size * math.prod(info["shape"]), f"{name}: size/shape mismatch"
        spans.append((begin, end))
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else \
            torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    spans.sort()
    pos = 0
    for begin, end in spans:  # contiguous, no holes, no overlap, covering all data
        assert begin == pos, f"{path}: hole or overlap at byte {pos}"
        pos = end
    assert pos == len(data), f"{path}: {len(data) - pos} trailing bytes"
    return out, meta


def read_trace(path, stats=True):
    with open(path, newline="") as f:
        lines = [ln for ln in f if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    want = COLUMNS + (STAT_COLUMNS if stats else [])
    assert rows and list(rows[0].keys()) == want, list(rows[0].keys())
    return rows


def fnum(text):
    """A trace field as a float; an empty field is NaN (not available)."""
    return float(text) if text != "" else math.nan


class Net(torch.nn.Module):
    """A Linear and a Conv2d, each followed by a normalisation, and an output Linear."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 6, 3, bias=False)
        self.bn = torch.nn.BatchNorm2d(6)
        self.fc = torch.nn.Linear(6 * 3 * 3, 7, bias=False)
        self.ln = torch.nn.LayerNorm(7)
        self.out = torch.nn.Linear(7, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.out(torch.relu(self.ln(self.fc(x))))


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 2, 5, 5, generator=g), torch.randint(0, 3, (16,), generator=g)


def groups(model, wd, wd_out=None):
    g = [{"params": [model.conv.weight, model.fc.weight], "weight_decay": wd},
         {"params": [p for n, p in model.named_parameters()
                     if n not in ("conv.weight", "fc.weight", "out.weight")], "weight_decay": 0.0},
         {"params": [model.out.weight], "weight_decay": wd if wd_out is None else wd_out}]
    return g


class TmpCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="roteq-rec-")
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def train(self, opt_fn, steps=12, sched=None, **kw):
        """Train Net for `steps`; returns (model, recorder, weights after each step)."""
        torch.manual_seed(3)
        model = Net()
        opt = opt_fn(model)
        scheduler = sched(opt) if sched else None
        rec = rr.RoteqRecorder(model, opt, os.path.join(self.dir, "trace.csv"), **kw)
        history = {0: {n: p.detach().clone() for n, p in model.named_parameters()}}
        lrs = {}
        self.grads = {}
        for step in range(1, steps + 1):
            x, y = batch(step)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            lrs[step] = opt.param_groups[0]["lr"]
            self.grads[step] = {n: p.grad.clone() for n, p in model.named_parameters()}
            rec.step()
            if scheduler:
                scheduler.step()
            history[step] = {n: p.detach().clone() for n, p in model.named_parameters()}
        rec.close()
        return model, rec, history, lrs


class TestAngles(unittest.TestCase):
    def rotated(self, angle, rows=5, dim=300, dtype=torch.float64):
        g = torch.Generator().manual_seed(11)
        a = torch.randn(rows, dim, generator=g, dtype=torch.float64)
        p = torch.randn(rows, dim, generator=g, dtype=torch.float64)
        p -= (p * a).sum(1, keepdim=True) / (a * a).sum(1, keepdim=True) * a
        p *= a.norm(dim=1, keepdim=True) / p.norm(dim=1, keepdim=True)
        return a, math.cos(angle) * a + math.sin(angle) * p

    def test_small_and_large_angles_are_accurate(self):
        # The input rotation has a representation error of ~1e-16/angle relative; acos of the
        # cosine would be off by ~1e-16/angle^2 (1e-2 relative already at 1e-7).
        for angle in (3.0, 1.0, 1e-2, 1e-4, 1e-6):
            a, b = self.rotated(angle)
            norms, got = rr.row_norms_and_angles(a, b)
            tol = 1e-13 + 1e-15 / angle
            self.assertLess(float((got / angle - 1).abs().max()), tol, angle)
            self.assertTrue(torch.allclose(norms, b.norm(dim=1), rtol=1e-14))

    def test_workspace_matches_reference_and_float32_input(self):
        a, b = self.rotated(1e-3)
        a32, b32 = a.float(), b.float()
        ws = rr._Workspace(a32)
        ws.save_before(a32, False)
        norms, got = ws.compute(b32)
        ref_n, ref_a = rr.row_norms_and_angles(a32.double(), b32.double())
        self.assertTrue(torch.allclose(got, ref_a, rtol=1e-13, atol=0))
        self.assertTrue(torch.allclose(norms, ref_n, rtol=1e-15, atol=0))
        # float32 rounding of the weights limits the angle to ~1e-7/1e-3 relative, not worse.
        self.assertLess(float((got / 1e-3 - 1).abs().max()), 1e-3)

    def test_zero_row_gives_nan_angle(self):
        a, b = self.rotated(0.1, rows=3)
        b[1] = 0.0
        norms, got = rr.row_norms_and_angles(a, b)
        self.assertEqual(float(norms[1]), 0.0)
        self.assertTrue(math.isnan(float(got[1])))
        self.assertFalse(math.isnan(float(got[0])))


class TestTrace(TmpCase):
    def test_rows_match_parameters_step_by_step(self):
        model, rec, hist, lrs = self.train(lambda m: torch.optim.AdamW(groups(m, 0.1), lr=3e-3))
        rows = read_trace(os.path.join(self.dir, "trace.csv"))
        layers = {"conv.weight": 6, "fc.weight": 7, "out.weight": 3}
        self.assertEqual(len(rows), 13 * sum(layers.values()))
        seen = set()
        for r in rows:
            step, layer, i = int(r["step"]), r["layer"], int(r["neuron"])
            key = (step, layer, i)
            self.assertNotIn(key, seen)
            seen.add(key)
            w1 = hist[step][layer].double().reshape(layers[layer], -1)[i]
            if step == 0:  # the initial norms, no angle
                self.assertAlmostEqual(float(r["norm"]), float(w1.norm()), delta=1e-15)
                self.assertEqual(r["angle"], "")
                continue
            w0 = hist[step - 1][layer].double().reshape(layers[layer], -1)[i]
            self.assertAlmostEqual(float(r["norm"]), float(w1.norm()), delta=1e-14 * float(w1.norm()))
            cos = float(w0 @ w1 / (w0.norm() * w1.norm()))
            sin = float(torch.sqrt(((w1 / w1.norm() - w0 / w0.norm()) ** 2).sum()) *
                        torch.sqrt(((w1 / w1.norm() + w0 / w0.norm()) ** 2).sum())) / 2
            self.assertAlmostEqual(float(r["angle"]), math.atan2(sin, cos), delta=1e-12)
            self.assertEqual(float(r["lr"]), 3e-3)
            self.assertEqual(float(r["weight_decay"]), 0.1)
        self.assertEqual({r["layer"] for r in rows}, set(layers))
        # Step 0 (initial state), then optimizer steps from 1, ascending within each layer.
        for layer in layers:
            steps = [int(r["step"]) for r in rows if r["layer"] == layer]
            self.assertEqual(steps, sorted(steps))
            self.assertEqual(sorted(set(steps)), list(range(13)))

    def test_around_step_equals_step(self):
        # The same training with rec.step() and with `with rec.around_step(): opt.step()`
        # writes the same trace.
        texts = []
        for mode in ("step", "around"):
            torch.manual_seed(5)
            model = Net()
            opt = torch.optim.AdamW(groups(model, 0.1), lr=3e-3)
            path = os.path.join(self.dir, f"{mode}.csv")
            with rr.RoteqRecorder(model, opt, path) as rec:
                for step in range(1, 4):
                    x, y = batch(step)
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    if mode == "step":
                        rec.step()
                    else:
                        with rec.around_step():
                            opt.step()
            with open(path) as f:
                texts.append(f.read())
        self.assertEqual(texts[0], texts[1])
        self.assertEqual(rec.step_count, 3)

    def test_attach_records_through_step_hooks(self):
        # torch 2.x optimizers have register_step_pre_hook/register_step_post_hook; emulate them
        # on this torch so that the wiring is tested: the trace equals rec.step()'s.
        class Handle:
            def __init__(self, hooks, h):
                self.hooks, self.h = hooks, h

            def remove(self):
                self.hooks.remove(self.h)

        class HookedAdamW(torch.optim.AdamW):
            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                self.pre, self.post = [], []

            def register_step_pre_hook(self, h):
                self.pre.append(h)
                return Handle(self.pre, h)

            def register_step_post_hook(self, h):
                self.post.append(h)
                return Handle(self.post, h)

            def step(self, closure=None):
                for h in list(self.pre):
                    h(self, (), {})
                out = super().step(closure)
                for h in list(self.post):
                    h(self, (), {})
                return out

        texts = []
        for mode in ("step", "attach"):
            torch.manual_seed(5)
            model = Net()
            opt = HookedAdamW(groups(model, 0.1), lr=3e-3)
            path = os.path.join(self.dir, f"{mode}.csv")
            rec = rr.RoteqRecorder(model, opt, path)
            if mode == "attach":
                rec.attach()
            for step in range(1, 4):
                x, y = batch(step)
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                rec.step() if mode == "step" else opt.step()
            rec.detach()
            opt.step()  # not recorded any more
            rec.close()
            self.assertEqual(rec.step_count, 3)
            with open(path) as f:
                texts.append(f.read().replace("HookedAdamW", "AdamW"))
        self.assertEqual(texts[0], texts[1])
        self.assertEqual(rec.metadata["optimizer"], "adamw")
        torch.manual_seed(5)
        model = Net()
        with self.assertRaisesRegex(RuntimeError, "torch >= 2.0"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.1)),
                             os.path.join(self.dir, "x.csv")).attach()

    def test_wrapped_optimizer_is_unwrapped_for_metadata(self):
        # Accelerate's AcceleratedOptimizer (what HF Trainer passes to callbacks) keeps the torch
        # optimizer as .optimizer and shares its param_groups.
        class Wrapper(torch.optim.Optimizer):
            def __init__(self, inner):
                self.optimizer = inner
                self.param_groups = inner.param_groups
                self.state = inner.state
                self.defaults = inner.defaults

            def step(self, closure=None):
                return self.optimizer.step(closure)

        torch.manual_seed(5)
        model = Net()
        inner = torch.optim.SGD(groups(model, 1e-3), lr=0.1, momentum=0.9, nesterov=True)
        rec = rr.RoteqRecorder(model, Wrapper(inner), os.path.join(self.dir, "w.csv"))
        x, y = batch(1)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        rec.step()
        rec.close()
        self.assertEqual(rec.metadata["optimizer"], "nesterov")
        self.assertEqual(rec.metadata["recorder"]["torch_optimizer"], "SGD")
        self.assertEqual(len(read_trace(os.path.join(self.dir, "w.csv"))), 2 * (6 + 7 + 3))

    def test_file_appears_only_on_close(self):
        torch.manual_seed(1)
        model = Net()
        opt = torch.optim.AdamW(groups(model, 0.1))
        path = os.path.join(self.dir, "t.csv")
        rec = rr.RoteqRecorder(model, opt, path)
        x, y = batch(1)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        rec.step()
        self.assertFalse(os.path.exists(path))
        self.assertEqual(len(glob.glob(path + ".tmp.*")), 1)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "t.csv.json")))
        rec.close()
        rec.close()  # idempotent
        self.assertTrue(os.path.exists(path))
        self.assertEqual(glob.glob(os.path.join(self.dir, "*.tmp.*")), [])

    def test_scheduler_is_followed(self):
        model, rec, hist, lrs = self.train(
            lambda m: torch.optim.SGD(groups(m, 0.01), lr=0.1, momentum=0.9),
            sched=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5))
        rows = read_trace(os.path.join(self.dir, "trace.csv"))
        lrs[0] = 0.1
        for r in rows:
            self.assertEqual(float(r["lr"]), lrs[int(r["step"])])
        self.assertEqual(sorted({float(r["lr"]) for r in rows}), [0.025, 0.05, 0.1])
        # The metadata is rewritten at close() with the lr of the last step taken (step 12:
        # 0.025), not the one the scheduler has set for step 13 (0.0125), nor the first (0.1):
        # snapshot analyses take the equilibrium from it.
        self.assertEqual(rec.optimizer.param_groups[0]["lr"], 0.0125)
        with open(os.path.join(self.dir, "trace.csv.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["lr"], 0.025)
        self.assertEqual(meta["layers"]["fc.weight"]["neuron_axis"], 0)
        self.assertEqual(meta["recorder"]["steps"], 12)

    def test_every_k_records_the_single_step_angle(self):
        model, rec, hist, _ = self.train(lambda m: torch.optim.AdamW(groups(m, 0.1), lr=3e-3),
                                         steps=10, every=3)
        rows = read_trace(os.path.join(self.dir, "trace.csv"))
        self.assertEqual(sorted({int(r["step"]) for r in rows}), [0, 3, 6, 9])
        for r in rows:
            if r["layer"] != "fc.weight" or r["step"] == "0":
                continue
            s, i = int(r["step"]), int(r["neuron"])
            _, ref = rr.row_norms_and_angles(hist[s - 1]["fc.weight"].double(),
                                             hist[s]["fc.weight"].double())
            self.assertAlmostEqual(float(r["angle"]), float(ref[i]), delta=1e-15)

    def test_zero_row_is_written_as_empty_angle(self):
        torch.manual_seed(1)
        model = Net()
        with torch.no_grad():
            model.fc.weight[2] = 0.0
        opt = torch.optim.SGD(groups(model, 0.0), lr=0.0)  # nothing moves: row 2 stays zero
        rec = rr.RoteqRecorder(model, opt, os.path.join(self.dir, "z.csv"),
                               neurons=["fc.weight"], optimizer_name="sgd",
                               hparams={"weight_decay": 1e-3})
        rec.step()
        rec.close()
        rows = read_trace(os.path.join(self.dir, "z.csv"))
        self.assertEqual([r["angle"] for r in rows if r["neuron"] == "2"], ["", ""])
        self.assertEqual([float(r["norm"]) for r in rows if r["neuron"] == "2"], [0.0, 0.0])
        self.assertTrue(all(r["angle"] == "0.0" for r in rows
                            if r["neuron"] != "2" and r["step"] == "1"))

    def test_non_finite_weights_raise(self):
        torch.manual_seed(1)
        model = Net()
        opt = torch.optim.AdamW(groups(model, 0.1))
        rec = rr.RoteqRecorder(model, opt, os.path.join(self.dir, "n.csv"))
        rec.before_step()
        with torch.no_grad():
            model.fc.weight[4, 1] = math.inf
        with self.assertRaisesRegex(FloatingPointError, r"fc.weight neuron 4 .* step 1"):
            rec.after_step()
        rec.close()


class TestMetadata(TmpCase):
    def meta(self, opt_fn, **kw):
        torch.manual_seed(1)
        model = Net()
        rec = rr.RoteqRecorder(model, opt_fn(model), os.path.join(self.dir, "m.csv"), **kw)
        rec.close()
        with open(os.path.join(self.dir, "m.csv.json")) as f:
            return json.load(f)

    def test_optimizer_names_and_hyperparameters(self):
        cases = [
            (lambda m: torch.optim.SGD(groups(m, 1e-3), lr=0.1),
             {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3}),
            (lambda m: torch.optim.SGD(groups(m, 1e-3), lr=0.1, momentum=0.8, dampening=0.1),
             {"optimizer": "sgdm", "lr": 0.1, "weight_decay": 1e-3, "momentum": 0.8,
              "dampening": 0.1}),
            (lambda m: torch.optim.SGD(groups(m, 1e-3), lr=0.1, momentum=0.9, nesterov=True),
             {"optimizer": "nesterov", "lr": 0.1, "weight_decay": 1e-3, "momentum": 0.9}),
            (lambda m: torch.optim.Adam(groups(m, 5e-3), lr=2e-3, betas=(0.8, 0.99), eps=1e-7),
             {"optimizer": "adam_l2", "lr": 2e-3, "weight_decay": 5e-3, "beta1": 0.8,
              "beta2": 0.99, "eps": 1e-7}),
            (lambda m: torch.optim.AdamW(groups(m, 0.5), lr=1e-3),
             {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.5, "beta1": 0.9,
              "beta2": 0.999, "eps": 1e-8}),
        ]
        for opt_fn, want in cases:
            meta = self.meta(opt_fn)
            layers = meta.pop("layers")
            recorder = meta.pop("recorder")
            self.assertEqual(meta, want)
            self.assertEqual(recorder["steps"], 0)
            self.assertEqual(recorder["every"], 1)
            self.assertEqual(layers, {"conv.weight": {"dim": 18, "neuron_axis": 0},
                                      "fc.weight": {"dim": 54, "neuron_axis": 0},
                                      "out.weight": {"dim": 7, "neuron_axis": 0}})

    def test_lion_by_class_name(self):
        # Lion is not in torch; ports (lion-pytorch and others) name the class Lion and keep
        # betas in the param groups. A minimal one, enough for the mapping.
        class Lion(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
                super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

        meta = self.meta(lambda m: Lion(groups(m, 1.0), lr=3e-4, betas=(0.95, 0.98)))
        meta.pop("layers"), meta.pop("recorder")
        self.assertEqual(meta, {"optimizer": "lion", "lr": 3e-4, "weight_decay": 1.0,
                                "beta1": 0.95, "beta2": 0.98})

    def test_muon_by_class_name(self):
        # torch.optim.Muon arrived in PyTorch 2.9 and Keller Jordan's classes are not in torch:
        # minimal stand-ins with their param-group keys, enough for the mapping.
        class Muon(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                         ns_steps=5, adjust_lr_fn=None):
                super().__init__(params, dict(lr=lr, weight_decay=weight_decay,
                                              momentum=momentum, nesterov=nesterov,
                                              ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))

        meta = self.meta(lambda m: Muon(groups(m, 0.1), lr=0.02, momentum=0.9, nesterov=False,
                                        adjust_lr_fn="match_rms_adamw"))
        meta.pop("layers"), meta.pop("recorder")
        self.assertEqual(meta, {"optimizer": "muon", "lr": 0.02, "weight_decay": 0.1,
                                "momentum": 0.9, "nesterov": 0.0, "ns_steps": 5.0,
                                "adjust_lr": "match_rms_adamw"})

        class MuonWithAuxAdam(torch.optim.Optimizer):
            def __init__(self, param_groups):
                super().__init__(param_groups, {})

        def aux(m):
            g = groups(m, 0.1)
            for i, grp in enumerate(g):  # biases and the output layer on the auxiliary Adam
                grp.update(dict(use_muon=True, momentum=0.95, lr=0.02) if i == 0 else
                           dict(use_muon=False, betas=(0.9, 0.95), eps=1e-10, lr=3e-4))
            return MuonWithAuxAdam(g)

        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            meta = self.meta(aux)
        self.assertEqual(meta["optimizer"], "muon")
        self.assertEqual(meta["adjust_lr"], "original")
        self.assertEqual(meta["layers"]["out.weight"]["optimizer"], "adamw")
        self.assertEqual(meta["layers"]["out.weight"]["beta2"], 0.95)

    def test_per_layer_overrides(self):
        def opt_fn(m):
            g = groups(m, 0.5, wd_out=0.05)
            g[2]["lr"] = 1e-4
            return torch.optim.AdamW(g, lr=1e-3)
        meta = self.meta(opt_fn)
        self.assertEqual(meta["weight_decay"], 0.5)
        self.assertEqual(meta["lr"], 1e-3)
        self.assertEqual(meta["layers"]["out.weight"], {"dim": 7, "lr": 1e-4, "weight_decay": 0.05,
                                                        "neuron_axis": 0})
        self.assertEqual(meta["layers"]["fc.weight"], {"dim": 54, "neuron_axis": 0})

    def test_grad_norm_is_the_rms_scaled_gradient_over_the_last_quarter(self):
        # ||g~|| = ||g|| ||w|| per neuron, averaged in square over neurons and over the last
        # quarter of the recorded steps (steps 7..8 of 8 here, recorded every step).
        lin = torch.nn.Linear(5, 4, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.arange(20, dtype=torch.float32).reshape(4, 5) / 7 - 1)
        opt = torch.optim.SGD([{"params": [lin.weight], "weight_decay": 0.01}], lr=0.0)
        rec = rr.RoteqRecorder(lin, opt, os.path.join(self.dir, "g.csv"))
        w = lin.weight.detach().double()
        want = []
        for step in range(1, 9):
            lin.weight.grad = torch.full((4, 5), float(step)) * torch.tensor([[1.0], [2], [0], [3]])
            rec.step()
            g = lin.weight.grad.double()
            want.append(float((g.norm(dim=1) ** 2 * w.norm(dim=1) ** 2).mean()))
        rec.close()
        with open(os.path.join(self.dir, "g.csv.json")) as f:
            meta = json.load(f)
        self.assertAlmostEqual(meta["layers"]["weight"]["grad_norm"],
                               math.sqrt((want[6] + want[7]) / 2), delta=1e-12)
        self.assertEqual(meta["optimizer"], "sgd")

    def test_default_selection_and_explicit_names(self):
        meta = self.meta(lambda m: torch.optim.AdamW(groups(m, 0.5, wd_out=0.0)))
        self.assertEqual(sorted(meta["layers"]), ["conv.weight", "fc.weight"])
        meta = self.meta(lambda m: torch.optim.AdamW(groups(m, 0.5)), neurons=["fc.weight"])
        self.assertEqual(sorted(meta["layers"]), ["fc.weight"])

    def test_unknown_optimizer_and_bad_selection(self):
        torch.manual_seed(1)
        model = Net()
        path = os.path.join(self.dir, "u.csv")
        with self.assertRaisesRegex(ValueError, "RMSprop.*optimizer_name"):
            rr.RoteqRecorder(model, torch.optim.RMSprop(groups(model, 0.1)), path)
        rec = rr.RoteqRecorder(model, torch.optim.RMSprop(groups(model, 0.1)), path,
                               optimizer_name="rv_adamw", hparams={"beta1": 0.9})
        rec.close()
        self.assertEqual(rec.metadata["optimizer"], "rv_adamw")
        self.assertEqual(rec.metadata["beta1"], 0.9)
        with self.assertRaisesRegex(ValueError, "momentum do not apply to adamw"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.1)), path,
                             hparams={"momentum": 0.9})
        with self.assertRaisesRegex(ValueError, "nope"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.1)), path, neurons=["nope"])
        with self.assertRaisesRegex(ValueError, "rank 1"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.1)), path,
                             neurons=["bn.weight"])
        with self.assertRaisesRegex(ValueError, "no parameter selected"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.0, wd_out=0.0)), path)
        with self.assertRaisesRegex(ValueError, "every"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.1)), path, every=0)
        with self.assertRaisesRegex(ValueError, "snapshot"):
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.1)), path,
                             snapshot_every=5)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            rr.RoteqRecorder(model, torch.optim.AdamW(groups(model, 0.0)), path,
                             neurons=["fc.weight"]).close()
        self.assertTrue(any("no weight decay" in str(x.message) for x in w))


class TestSnapshots(TmpCase):
    def test_layouts_and_dtypes(self):
        for layout, dtype in (("files", None), ("hf", torch.bfloat16), ("files", torch.float16),
                              ("hf", torch.float64)):
            with self.subTest(layout=layout, dtype=dtype):
                snap = os.path.join(self.dir, f"snap-{layout}-{dtype}")
                _, _, hist, _ = self.train(
                    lambda m: torch.optim.AdamW(groups(m, 0.1), lr=3e-3), steps=7,
                    snapshot_dir=snap, snapshot_every=3, snapshot_layout=layout,
                    snapshot_dtype=dtype)
                if layout == "files":
                    paths = sorted(glob.glob(os.path.join(snap, "*.safetensors")))
                    names = [os.path.basename(p) for p in paths]
                    self.assertEqual(names, ["step_00000000.safetensors",
                                             "step_00000003.safetensors",
                                             "step_00000006.safetensors"])
                else:
                    self.assertEqual(sorted(os.listdir(snap)),
                                     ["checkpoint-0", "checkpoint-3", "checkpoint-6"])
                    paths = [os.path.join(snap, f"checkpoint-{s}", "model.safetensors")
                             for s in (0, 3, 6)]
                for step, path in zip((0, 3, 6), paths):
                    tensors, meta = read_safetensors(path)
                    self.assertEqual(meta["step"], str(step))
                    self.assertEqual(sorted(tensors), ["conv.weight", "fc.weight", "out.weight"])
                    for name, t in tensors.items():
                        want = hist[step][name]
                        if dtype is not None:
                            want = want.to(dtype)
                        self.assertEqual(t.dtype, want.dtype)
                        self.assertEqual(t.shape, want.shape)
                        self.assertTrue(torch.equal(t, want), name)
                self.assertEqual(glob.glob(os.path.join(snap, "**", "*.tmp.*"), recursive=True), [])
                with open(snap + ".json") as f, open(os.path.join(self.dir, "trace.csv.json")) as g:
                    self.assertEqual(json.load(f), json.load(g))

    def test_full_state_dict_is_written_with_its_dtypes(self):
        # A full state_dict holds BatchNorm's int64 num_batches_tracked: written as I64 beside
        # the float tensors, read back bit for bit.
        torch.manual_seed(2)
        model = Net()
        model(batch(1)[0])  # one forward in train mode: num_batches_tracked = 1
        sd = dict(model.state_dict())
        sd["mask"] = torch.tensor([True, False, True])
        sd["codes"] = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
        path = os.path.join(self.dir, "full.safetensors")
        rr.save_safetensors(path, sd, {"step": 1})
        got, meta = read_safetensors(path)
        self.assertEqual(meta, {"step": "1"})
        self.assertEqual(sorted(got), sorted(sd))
        for name, t in sd.items():
            self.assertEqual(got[name].dtype, t.dtype, name)
            self.assertTrue(torch.equal(got[name], t), name)
        self.assertEqual(got["bn.num_batches_tracked"].dtype, torch.int64)
        self.assertEqual(int(got["bn.num_batches_tracked"]), 1)

    def test_writer_rejects_other_dtypes(self):
        with self.assertRaisesRegex(ValueError, "tensor w: dtype torch.complex64"):
            rr.save_safetensors(os.path.join(self.dir, "x.safetensors"),
                                {"ok": torch.zeros(2), "w": torch.zeros(2, 2, dtype=torch.complex64)})
        self.assertEqual(os.listdir(self.dir), [])


class Conv1D(torch.nn.Module):
    """transformers.pytorch_utils.Conv1D as HF defines it: weight [nx, nf] = [in, out],
    y = x @ W + b. The recorder recognises it by class name."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = torch.nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = torch.nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = Conv1D(12, 8)  # 8 -> 12: 12 neurons of dim 8, stored [8, 12]
        self.ln = torch.nn.LayerNorm(12)
        self.head = torch.nn.Linear(12, 3, bias=False)

    def forward(self, x):
        return self.head(torch.relu(self.ln(self.c_fc(x))))


class TestStats(TmpCase):
    """The step statistics: d_t = (w_{t+1} - (1 - lr*wd) w_t) / lr per neuron."""

    def rows_by_key(self, path="trace.csv"):
        return {(int(r["step"]), r["layer"], int(r["neuron"])): r
                for r in read_trace(os.path.join(self.dir, path))}

    def test_columns_against_history_and_adam_state(self):
        # AdamW: d_t is exactly -m_hat/(sqrt(v_hat)+eps) from the optimizer's own state.
        states = {}

        class Spy(torch.optim.AdamW):
            def step(self, closure=None):
                out = super().step(closure)
                states[len(states) + 1] = {
                    id(p): {k: (v.clone() if isinstance(v, torch.Tensor) else v)
                            for k, v in self.state[p].items()} for g in self.param_groups
                    for p in g["params"]}
                return out
        _, rec, hist, _ = self.train(lambda m: Spy(groups(m, 0.1), lr=3e-3), steps=6)
        rows = self.rows_by_key()
        lr, wd = 3e-3, 0.1

        def row(t, i):
            return t.double().reshape(t.shape[0], -1)[i]
        for (step, layer, i), r in rows.items():
            if step == 0:
                self.assertEqual([r[c] for c in STAT_COLUMNS], ["", "", "", ""])
                continue
            w0, w1 = row(hist[step - 1][layer], i), row(hist[step][layer], i)
            g = row(self.grads[step][layer], i)
            d = (w1 - (1 - lr * wd) * w0) / lr
            # The statistics are written with 9 significant digits.
            self.assertAlmostEqual(fnum(r["grad_cos"]),
                                   float(g @ w0 / (g.norm() * w0.norm())), delta=1e-9)
            self.assertAlmostEqual(fnum(r["update_norm"]), float(d.norm()),
                                   delta=1e-8 * float(d.norm()))
            self.assertAlmostEqual(fnum(r["update_radial"]), float(d @ w0 / w0.norm()),
                                   delta=1e-8 * float(d.norm()))
            if step == 1:
                self.assertEqual(r["update_cos_prev"], "")
            else:
                dp = (w0 - (1 - lr * wd) * row(hist[step - 2][layer], i)) / lr
                self.assertAlmostEqual(fnum(r["update_cos_prev"]),
                                       float(d @ dp / (d.norm() * dp.norm())), delta=1e-9)
        # Against Adam's state (float32 state, float32 weights: ~1e-4 relative).
        _, p_fc = [(n, p) for n, (p, _) in rec.layers.items() if n == "fc.weight"][0]
        st = states[6][id(p_fc)]
        step = float(st["step"])
        m_hat = st["exp_avg"].double() / (1 - 0.9 ** step)
        v_hat = st["exp_avg_sq"].double() / (1 - 0.999 ** step)
        u = -m_hat / (v_hat.sqrt() + 1e-8)
        for i in range(7):
            self.assertAlmostEqual(fnum(rows[(6, "fc.weight", i)]["update_norm"]),
                                   float(u[i].norm()), delta=2e-4 * float(u[i].norm()))

    def test_norm_balance_identity(self):
        # Per step: ||w_{t+1}||^2 = c^2 ||w_t||^2 + 2 c lr <w_t, d_t> + lr^2 ||d_t||^2, c = 1-lr*wd,
        # from the trace's own columns; summed over the run it is the norm balance
        # (1-c^2) E||w||^2 = lr^2 E||d||^2 + 2 c lr E<w,d> up to the boundary term
        # (||w_T||^2 - ||w_0||^2)/T. For AdamW (decoupled) and SGD with momentum (L2 in the
        # gradient, same definition of d).
        for name, opt_fn, lr, wd in (
                ("adamw", lambda m: torch.optim.AdamW(groups(m, 0.1), lr=3e-3), 3e-3, 0.1),
                ("sgdm", lambda m: torch.optim.SGD(groups(m, 0.05), lr=0.1, momentum=0.9),
                 0.1, 0.05)):
            with self.subTest(optimizer=name):
                self.train(opt_fn, steps=20)
                rows = self.rows_by_key()
                c = 1 - lr * wd
                for layer, n in (("conv.weight", 6), ("fc.weight", 7), ("out.weight", 3)):
                    for i in range(n):
                        norms = [fnum(rows[(t, layer, i)]["norm"]) for t in range(21)]
                        lhs = rhs = 0.0
                        for t in range(1, 21):
                            r = rows[(t, layer, i)]
                            un, ur = fnum(r["update_norm"]), fnum(r["update_radial"])
                            step_rhs = (c * c * norms[t - 1] ** 2 + 2 * c * lr * ur * norms[t - 1]
                                        + lr * lr * un * un)
                            self.assertAlmostEqual(norms[t] ** 2, step_rhs,
                                                   delta=1e-9 * norms[t] ** 2)
                            lhs += (1 - c * c) * norms[t - 1] ** 2
                            rhs += lr * lr * un * un + 2 * c * lr * ur * norms[t - 1]
                        boundary = norms[20] ** 2 - norms[0] ** 2
                        self.assertAlmostEqual((lhs + boundary) / 20, rhs / 20,
                                               delta=1e-9 * norms[0] ** 2)

    def test_sgd_update_is_minus_the_loss_gradient(self):
        # Plain SGD with weight decay (L2 in the gradient): w_{t+1} = (1-lr*wd) w_t - lr g, so
        # d_t = -g exactly: update_norm = ||g|| and update_radial = -grad_cos * ||g||.
        self.train(lambda m: torch.optim.SGD(groups(m, 0.05), lr=0.1), steps=4)
        for (step, layer, i), r in self.rows_by_key().items():
            if step == 0:
                continue
            g = self.grads[step][layer].double()
            g = g.reshape(g.shape[0], -1)[i]
            self.assertAlmostEqual(fnum(r["update_norm"]), float(g.norm()),
                                   delta=1e-5 * float(g.norm()))
            self.assertAlmostEqual(fnum(r["update_radial"]),
                                   -fnum(r["grad_cos"]) * float(g.norm()),
                                   delta=1e-5 * float(g.norm()))

    def test_every_k_observes_the_step_before(self):
        # every=3: rows at steps 3, 6, 9; steps 2, 5, 8 are observed (no rows), so
        # update_cos_prev is there at every recorded step.
        _, rec, hist, _ = self.train(lambda m: torch.optim.AdamW(groups(m, 0.1), lr=3e-3),
                                     steps=10, every=3)
        rows = self.rows_by_key()
        self.assertEqual(sorted({k[0] for k in rows}), [0, 3, 6, 9])
        c, lr = 1 - 3e-3 * 0.1, 3e-3
        for (step, layer, i), r in rows.items():
            if step == 0:
                continue
            f = lambda t: hist[t][layer].double().reshape(hist[0][layer].shape[0], -1)[i]  # noqa
            d = (f(step) - c * f(step - 1)) / lr
            dp = (f(step - 1) - c * f(step - 2)) / lr
            self.assertAlmostEqual(fnum(r["update_cos_prev"]),
                                   float(d @ dp / (d.norm() * dp.norm())), delta=1e-9)
            self.assertAlmostEqual(fnum(r["update_norm"]), float(d.norm()),
                                   delta=1e-8 * float(d.norm()))

    def test_stats_off_writes_the_plain_columns(self):
        self.train(lambda m: torch.optim.AdamW(groups(m, 0.1), lr=3e-3), steps=2,
                   record_stats=False)
        rows = read_trace(os.path.join(self.dir, "trace.csv"), stats=False)
        self.assertEqual(len(rows), 3 * 16)

    def test_conv1d_neurons_are_columns(self):
        torch.manual_seed(7)
        model = Block()
        opt = torch.optim.AdamW([{"params": [model.c_fc.weight, model.head.weight],
                                  "weight_decay": 0.1},
                                 {"params": [model.c_fc.bias, model.ln.weight, model.ln.bias],
                                  "weight_decay": 0.0}], lr=1e-2)
        path = os.path.join(self.dir, "c.csv")
        rec = rr.RoteqRecorder(model, opt, path)
        before = model.c_fc.weight.detach().double().clone()
        x = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
        torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1])).backward()
        grad = model.c_fc.weight.grad.double().clone()
        rec.step()
        rec.close()
        after = model.c_fc.weight.detach().double()
        with open(path + ".json") as f:
            meta = json.load(f)
        for entry in meta["layers"].values():
            self.assertGreater(entry.pop("grad_norm"), 0)
        self.assertEqual(meta["layers"]["c_fc.weight"], {"dim": 8, "neuron_axis": -1})
        self.assertEqual(meta["layers"]["head.weight"], {"dim": 12, "neuron_axis": 0})
        rows = [r for r in read_trace(path) if r["layer"] == "c_fc.weight"]
        self.assertEqual(len(rows), 2 * 12)
        for r in rows:
            j = int(r["neuron"])
            w = (after if r["step"] == "1" else before)[:, j]
            self.assertAlmostEqual(float(r["norm"]), float(w.norm()), delta=1e-14)
            if r["step"] == "1":
                g, w0 = grad[:, j], before[:, j]
                self.assertAlmostEqual(fnum(r["grad_cos"]), float(g @ w0 / (g.norm() * w0.norm())),
                                       delta=1e-9)
                _, ref = rr.row_norms_and_angles(before.t().contiguous(), after.t().contiguous())
                self.assertAlmostEqual(float(r["angle"]), float(ref[j]), delta=1e-15)
        # neuron_axis= overrides and names; a bad axis or name is refused.
        rec = rr.RoteqRecorder(model, opt, path, neuron_axis={"head.weight": 1})
        rec.close()
        self.assertEqual(rec.metadata["layers"]["head.weight"], {"dim": 3, "neuron_axis": -1})
        with self.assertRaisesRegex(ValueError, "neuron_axis 2 of head.weight"):
            rr.RoteqRecorder(model, opt, path, neuron_axis={"head.weight": 2})
        with self.assertRaisesRegex(ValueError, "neuron_axis names no parameter.*nope"):
            rr.RoteqRecorder(model, opt, path, neuron_axis={"nope": 0})


class TestOptimizerSnapshots(TmpCase):
    def test_adamw_state_and_lr_applied_under_a_scheduler(self):
        # StepLR halves the lr after every 2nd step. The snapshot of step 4 is written right
        # after the step (lr = lr_applied = step 4's); the last update reconstructed from the
        # saved state with lr_applied gives back w_3 (what the C reader of the format does with
        # it). After scheduler.step() the group's lr is step 5's, and optimizer_state() with
        # rec.lr_applied still says which lr step 4 used.
        snap = os.path.join(self.dir, "snap")
        captured = {}

        class Spy(torch.optim.AdamW):
            def step(self, closure=None):
                out = super().step(closure)
                captured[len(captured) + 1] = {
                    id(p): {k: v.clone() for k, v in self.state[p].items()}
                    for g in self.param_groups for p in g["params"]}
                return out
        _, rec, hist, lrs = self.train(
            lambda m: Spy(groups(m, 0.1), lr=3e-3), steps=4,
            sched=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
            snapshot_dir=snap, snapshot_every=2, snapshot_optimizer=True)
        self.assertEqual(lrs, {1: 3e-3, 2: 3e-3, 3: 1.5e-3, 4: 1.5e-3})
        tensors, meta = read_safetensors(os.path.join(snap, "step_00000004.safetensors"))
        doc = json.loads(meta["roteq.optimizer"])
        self.assertEqual(doc["class"], "Spy")
        self.assertEqual(doc["params"], {"conv.weight": {"group": 0, "step": 4},
                                         "fc.weight": {"group": 0, "step": 4},
                                         "out.weight": {"group": 2, "step": 4}})
        self.assertEqual(len(doc["groups"]), 3)
        self.assertEqual(doc["groups"][0], {"lr": 1.5e-3, "lr_applied": 1.5e-3,
                                            "betas": [0.9, 0.999], "eps": 1e-8,
                                            "weight_decay": 0.1, "momentum": None,
                                            "dampening": None, "nesterov": False})
        want = sorted(f"optimizer/{n}/{k}" for n in ("conv.weight", "fc.weight", "out.weight")
                      for k in ("exp_avg", "exp_avg_sq"))
        self.assertEqual(sorted(t for t in tensors if t.startswith("optimizer/")), want)
        params = dict(rec.layers)
        for name in ("conv.weight", "fc.weight", "out.weight"):
            st = captured[4][id(params[name][0])]
            for k in ("exp_avg", "exp_avg_sq"):
                got = tensors[f"optimizer/{name}/{k}"]
                self.assertEqual(got.dtype, torch.float32)
                self.assertTrue(torch.equal(got, st[k]), (name, k))
            lr, wd, t = doc["groups"][doc["params"][name]["group"]]["lr_applied"], 0.1, 4
            m_hat = tensors[f"optimizer/{name}/exp_avg"].double() / (1 - 0.9 ** t)
            v_hat = tensors[f"optimizer/{name}/exp_avg_sq"].double() / (1 - 0.999 ** t)
            w_prev = (tensors[name].double() + lr * m_hat / (v_hat.sqrt() + 1e-8)) / (1 - lr * wd)
            err = float((w_prev - hist[3][name].double()).norm() / hist[3][name].double().norm())
            self.assertLess(err, 1e-6, name)
        _, later = rr.optimizer_state(rec.optimizer, {"fc.weight": params["fc.weight"][0]},
                                      rec.lr_applied)
        later = json.loads(later["roteq.optimizer"])
        self.assertEqual((later["groups"][0]["lr"], later["groups"][0]["lr_applied"]),
                         (7.5e-4, 1.5e-3))
        self.assertEqual(later["params"], {"fc.weight": {"group": 0, "step": 4}})
        # Step 0: no state yet, no step applied.
        tensors, meta = read_safetensors(os.path.join(snap, "step_00000000.safetensors"))
        doc = json.loads(meta["roteq.optimizer"])
        self.assertEqual(doc["params"]["fc.weight"], {"group": 0})
        self.assertIsNone(doc["groups"][0]["lr_applied"])
        self.assertEqual(sorted(tensors), ["conv.weight", "fc.weight", "out.weight"])

    def test_sgd_momentum_buffer(self):
        snap = os.path.join(self.dir, "snap")
        _, rec, hist, _ = self.train(
            lambda m: torch.optim.SGD(groups(m, 0.01), lr=0.1, momentum=0.9, nesterov=True),
            steps=3, snapshot_dir=snap, snapshot_every=3, snapshot_optimizer=True,
            snapshot_layout="hf")
        tensors, meta = read_safetensors(os.path.join(snap, "checkpoint-3", "model.safetensors"))
        doc = json.loads(meta["roteq.optimizer"])
        self.assertEqual(doc["class"], "SGD")
        self.assertEqual(doc["groups"][0], {"lr": 0.1, "lr_applied": 0.1, "betas": None,
                                            "eps": None, "weight_decay": 0.01, "momentum": 0.9,
                                            "dampening": 0.0, "nesterov": True})
        self.assertEqual(doc["params"]["fc.weight"], {"group": 0})
        opt = rec.optimizer
        p = rec.layers["fc.weight"][0]
        self.assertTrue(torch.equal(tensors["optimizer/fc.weight/momentum_buffer"],
                                    opt.state[p]["momentum_buffer"]))


class TestNumpyExample(TmpCase):
    def test_numpy_example_writes_a_valid_trace(self):
        out = os.path.join(self.dir, "np.csv")
        subprocess.run([sys.executable, os.path.join(SOURCE, "examples", "numpy_trace.py"), out],
                       check=True)
        rows = read_trace(out, stats=False)
        self.assertEqual(len(rows), 3000 * 64)
        for r in rows[:: 997]:
            self.assertTrue(math.isfinite(float(r["norm"])) and float(r["norm"]) > 0)
            self.assertTrue(0 < float(r["angle"]) < math.pi)
        with open(os.path.join(self.dir, "np.csv.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["layers"], {"toy": {"dim": 128, "grad_norm": 127 ** 0.5}})
        # The toy is SGD on a scale-invariant random walk: its RMS angle over the last third
        # is close to the closed form sqrt(2 eta lambda) (paper Table 1; 0.1 here).
        late = [float(r["angle"]) for r in rows if int(r["step"]) > 2000]
        rms = math.sqrt(sum(a * a for a in late) / len(late))
        self.assertAlmostEqual(rms, math.sqrt(2 * meta["lr"] * meta["weight_decay"]), delta=0.003)


if __name__ == "__main__":
    unittest.main(verbosity=2)
