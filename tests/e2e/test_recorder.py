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
             "BF16": (torch.bfloat16, 2)}


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


def read_trace(path):
    with open(path, newline="") as f:
        lines = [ln for ln in f if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert rows and list(rows[0].keys()) == ["step", "layer", "neuron", "norm", "angle", "lr",
                                             "weight_decay"], list(rows[0].keys())
    return rows


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
        for step in range(1, steps + 1):
            x, y = batch(step)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            lrs[step] = opt.param_groups[0]["lr"]
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
            self.assertEqual(layers, {"conv.weight": {"dim": 18}, "fc.weight": {"dim": 54},
                                      "out.weight": {"dim": 7}})

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

    def test_per_layer_overrides(self):
        def opt_fn(m):
            g = groups(m, 0.5, wd_out=0.05)
            g[2]["lr"] = 1e-4
            return torch.optim.AdamW(g, lr=1e-3)
        meta = self.meta(opt_fn)
        self.assertEqual(meta["weight_decay"], 0.5)
        self.assertEqual(meta["lr"], 1e-3)
        self.assertEqual(meta["layers"]["out.weight"], {"dim": 7, "lr": 1e-4, "weight_decay": 0.05})
        self.assertEqual(meta["layers"]["fc.weight"], {"dim": 54})

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

    def test_writer_rejects_integer_tensors(self):
        with self.assertRaisesRegex(ValueError, "dtype"):
            rr.save_safetensors(os.path.join(self.dir, "x.safetensors"),
                                {"w": torch.zeros(2, 2, dtype=torch.int32)})
        self.assertEqual(os.listdir(self.dir), [])


class TestNumpyExample(TmpCase):
    def test_numpy_example_writes_a_valid_trace(self):
        out = os.path.join(self.dir, "np.csv")
        subprocess.run([sys.executable, os.path.join(SOURCE, "examples", "numpy_trace.py"), out],
                       check=True)
        rows = read_trace(out)
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
