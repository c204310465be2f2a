#!/usr/bin/python3
"""test_examples.py - the CI versions of examples/cnn_bn and examples/tiny_gpt: each trains for a
few dozen steps with the real script, then the test checks what the recorder wrote against
quantities computed here and runs `roteq analyze` on the result.

- cnn_bn: trace with the step statistics (the per-step norm balance identity holds on every
  neuron of every layer), metadata dims, recorder snapshots equal to the torch.save checkpoints'
  weights, checkpoints holding the optimizer state; `roteq analyze` finds the ten layers with
  their dims from the trace and from the snapshots, and the per-step angles it rebuilds from
  the checkpoints' optimizer state are the trace's at the same steps.
- tiny_gpt: 15 layers, the HF-layout Conv1D projections with neuron axis -1 (neurons = columns,
  dim = rows) in the metadata and the trace, the identity under the warmup's changing lr,
  snapshots with the optimizer state (tensors in the parameter's layout, lr_applied = the lr
  the trace recorded for that step); `roteq analyze` of the trace.

Run by meson (suite e2e) with ROTEQ_EXE and ROTEQ_SOURCE_DIR set; fails, never skips, without
torch or the Fashion-MNIST data (scripts/setup.sh installs both).
"""

import csv
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import torch  # an ImportError here fails the test on purpose

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("ROTEQ_SOURCE_DIR", os.path.join(HERE, "..", ".."))
ROTEQ = os.environ.get("ROTEQ_EXE", os.path.join(SOURCE, "build", "cli", "roteq"))
sys.path.insert(0, HERE)
from test_recorder import read_safetensors  # noqa: E402  (the strict reader)

STATS = ["grad_cos", "update_norm", "update_radial", "update_cos_prev"]


def run(args):
    subprocess.run(args, check=True, stdout=sys.stderr)


def analyze(path, *extra):
    out = subprocess.run([ROTEQ, "analyze", path, "--format", "json", *extra], check=True,
                         capture_output=True, text=True)
    return {l["layer"]: l for l in json.loads(out.stdout)["layers"]}


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(ln for ln in f if not ln.startswith("#")))
    return rows


def check_norm_balance(test, rows, layers):
    """||w_{t+1}||^2 = c^2 ||w_t||^2 + 2 c lr <w_t, d_t> + lr^2 ||d_t||^2 (c = 1 - lr*wd) on
    every neuron of every recorded step that follows a recorded step; returns the number of
    checks and the largest relative residual."""
    norm = {}
    for r in rows:
        norm[(int(r["step"]), r["layer"], int(r["neuron"]))] = float(r["norm"])
    checked, worst = 0, 0.0
    for r in rows:
        t, layer, i = int(r["step"]), r["layer"], int(r["neuron"])
        if t == 0 or (t - 1, layer, i) not in norm or r["update_norm"] == "":
            continue
        lr, wd = float(r["lr"]), float(r["weight_decay"])
        c, n0, n1 = 1 - lr * wd, norm[(t - 1, layer, i)], float(r["norm"])
        rhs = (c * c * n0 * n0 + 2 * c * lr * float(r["update_radial"]) * n0
               + lr * lr * float(r["update_norm"]) ** 2)
        worst = max(worst, abs(n1 * n1 - rhs) / (n1 * n1))
        checked += 1
    test.assertGreater(checked, 0)
    test.assertLess(worst, 1e-8)
    test.assertEqual({r["layer"] for r in rows}, set(layers))
    return checked, worst


class TestCnnBn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="roteq-cnn-")
        cls.out = os.path.join(cls.tmp.name, "run")
        run([sys.executable, os.path.join(SOURCE, "examples", "cnn_bn", "train.py"),
             "--steps", "40", "--width", "8", "--batch-size", "64", "--train-size", "4000",
             "--test-size", "500", "--snapshot-every", "20", "--checkpoint-every", "20",
             "--out", cls.out])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    # name -> (neurons, dim) for width 8
    LAYERS = {"stem.weight": (8, 9), "layer1.conv1.weight": (8, 72),
              "layer1.conv2.weight": (8, 72), "layer2.conv1.weight": (16, 72),
              "layer2.conv2.weight": (16, 144), "layer2.shortcut.0.weight": (16, 8),
              "layer3.conv1.weight": (32, 144), "layer3.conv2.weight": (32, 288),
              "layer3.shortcut.0.weight": (32, 16), "fc.weight": (10, 32)}

    def test_trace_columns_and_norm_balance(self):
        rows = read_rows(os.path.join(self.out, "trace.csv"))
        self.assertEqual(list(rows[0])[-4:], STATS)
        self.assertEqual(len(rows), 41 * sum(n for n, _ in self.LAYERS.values()))
        checked, _ = check_norm_balance(self, rows, self.LAYERS)
        self.assertEqual(checked, 40 * sum(n for n, _ in self.LAYERS.values()))
        # Scale-invariant conv layers: the weight gets no gradient along itself (BatchNorm):
        # |grad_cos| is at rounding level; the output layer's is not.
        conv = [abs(float(r["grad_cos"])) for r in rows
                if r["layer"] == "layer2.conv2.weight" and r["grad_cos"] != ""]
        fc = [abs(float(r["grad_cos"])) for r in rows
              if r["layer"] == "fc.weight" and r["grad_cos"] != ""]
        self.assertLess(max(conv), 1e-4)
        self.assertGreater(sum(fc) / len(fc), 1e-3)

    def test_metadata(self):
        with open(os.path.join(self.out, "trace.csv.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["optimizer"], "adamw")
        for name, (_, dim) in self.LAYERS.items():
            self.assertEqual(meta["layers"][name]["dim"], dim, name)
            self.assertEqual(meta["layers"][name]["neuron_axis"], 0, name)

    def test_checkpoints_and_snapshots_hold_the_same_weights(self):
        pts = sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.out, "checkpoints",
                                                                          "*.pt")))
        self.assertEqual(pts, ["step_00000000.pt", "step_00000020.pt", "step_00000040.pt"])
        for step in (0, 20, 40):
            # Our own file; torch 1.13's weights_only unpickler refuses the optimizer's float
            # hyperparameters (BINFLOAT), which roteq's reader must accept.
            ck = torch.load(os.path.join(self.out, "checkpoints", f"step_{step:08d}.pt"))
            self.assertEqual(set(ck), {"model", "optimizer", "step"})
            self.assertEqual(ck["step"], step)
            snap, meta = read_safetensors(
                os.path.join(self.out, "snapshots", f"step_{step:08d}.safetensors"))
            self.assertEqual(meta["step"], str(step))
            for name in self.LAYERS:
                self.assertTrue(torch.equal(snap[name], ck["model"][name]), (step, name))
            state = ck["optimizer"]["state"]
            if step == 0:
                self.assertEqual(state, {})
            else:  # AdamW state for every parameter, by index in the param groups
                n = sum(len(g["params"]) for g in ck["optimizer"]["param_groups"])
                self.assertEqual(len(state), n)
                self.assertTrue(all(float(s["step"]) == step for s in state.values()))
                self.assertIn("num_batches_tracked", " ".join(ck["model"]))

    def test_checkpoints_give_the_traces_per_step_angles(self):
        # roteq reads the torch.save checkpoints (named param groups: the optimizer state maps
        # onto the layers by name), rebuilds each checkpoint's last step from exp_avg/exp_avg_sq
        # and measures its angle: the RMS over neurons equals the trace's at the same step.
        series = os.path.join(self.tmp.name, "ck_series.csv")
        subprocess.run([ROTEQ, "analyze", os.path.join(self.out, "checkpoints"), "--meta",
                        os.path.join(self.out, "trace.csv.json"), "--series", series],
                       check=True, capture_output=True)
        ck = {(int(r["step"]), r["group"]): float(r["angle_rms"]) for r in read_rows(series)
              if r["angle_rms"] != ""}
        self.assertEqual(sorted({s for s, _ in ck}), [20, 40])
        self.assertEqual({g for _, g in ck}, set(self.LAYERS))
        angles = {}
        for r in read_rows(os.path.join(self.out, "trace.csv")):
            if (int(r["step"]), r["layer"]) in ck:
                angles.setdefault((int(r["step"]), r["layer"]), []).append(float(r["angle"]))
        for key, rms in ck.items():
            want = math.sqrt(sum(a * a for a in angles[key]) / len(angles[key]))
            self.assertAlmostEqual(rms / want, 1.0, delta=1e-4, msg=str(key))

    def test_roteq_analyze_trace_and_snapshots(self):
        for path in ("trace.csv", "snapshots"):
            with self.subTest(input=path):
                layers = analyze(os.path.join(self.out, path))
                self.assertEqual(set(layers), set(self.LAYERS))
                for name, (neurons, dim) in self.LAYERS.items():
                    self.assertEqual(layers[name]["neurons"], neurons, name)
                    self.assertEqual(layers[name]["dim"], dim, name)
                    self.assertGreater(layers[name]["measured"]["norm"], 0)


class TestTinyGpt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="roteq-gpt-")
        cls.out = os.path.join(cls.tmp.name, "run")
        run([sys.executable, os.path.join(SOURCE, "examples", "tiny_gpt", "train.py"),
             "--steps", "30", "--d-model", "32", "--layers", "2", "--heads", "2",
             "--block", "32", "--batch-size", "8", "--warmup", "20", "--every", "1",
             "--snapshot-every", "10", "--eval-batches", "2", "--out", cls.out])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def layers(self):
        out = {"wte.weight": (256, 32, 0), "wpe.weight": (32, 32, 0),
               "lm_head.weight": (256, 32, 0)}
        for i in range(2):
            for p in ("q", "k", "v", "proj"):
                out[f"h.{i}.attn.{p}.weight"] = (32, 32, 0)
            out[f"h.{i}.mlp.c_fc.weight"] = (128, 32, -1)  # Conv1D [in=32, out=128]
            out[f"h.{i}.mlp.c_proj.weight"] = (32, 128, 0)
        return out

    def test_metadata_neuron_axis(self):
        with open(os.path.join(self.out, "trace.csv.json")) as f:
            meta = json.load(f)
        want = self.layers()
        self.assertEqual(set(meta["layers"]), set(want))
        for name, (_, dim, axis) in want.items():
            self.assertEqual(meta["layers"][name]["dim"], dim, name)
            self.assertEqual(meta["layers"][name]["neuron_axis"], axis, name)

    def test_trace_and_norm_balance_under_warmup(self):
        rows = read_rows(os.path.join(self.out, "trace.csv"))
        self.assertEqual(list(rows[0])[-4:], STATS)
        want = self.layers()
        check_norm_balance(self, rows, want)
        per_layer = {}
        for r in rows:
            if r["step"] == "30":
                per_layer[r["layer"]] = per_layer.get(r["layer"], 0) + 1
        self.assertEqual(per_layer, {n: v[0] for n, v in want.items()})
        lrs = {int(r["step"]): float(r["lr"]) for r in rows}
        self.assertAlmostEqual(lrs[10], 2e-3 * 10 / 20, delta=1e-15)
        self.assertAlmostEqual(lrs[30], 2e-3, delta=1e-15)

    def test_snapshots_with_optimizer_state(self):
        rows = read_rows(os.path.join(self.out, "trace.csv"))
        lrs = {int(r["step"]): float(r["lr"]) for r in rows}
        for step in (10, 30):
            tensors, meta = read_safetensors(os.path.join(self.out, "snapshots",
                                                          f"checkpoint-{step}",
                                                          "model.safetensors"))
            doc = json.loads(meta["roteq.optimizer"])
            self.assertEqual(doc["class"], "AdamW")
            fc = doc["params"]["h.1.mlp.c_fc.weight"]
            self.assertEqual(fc["step"], step)
            group = doc["groups"][fc["group"]]
            self.assertEqual(group["lr_applied"], lrs[step])
            self.assertEqual(group["weight_decay"], 0.5)
            self.assertEqual(group["betas"], [0.9, 0.999])
            self.assertEqual(list(tensors["h.1.mlp.c_fc.weight"].shape), [32, 128])
            for key in ("exp_avg", "exp_avg_sq"):
                self.assertEqual(list(tensors[f"optimizer/h.1.mlp.c_fc.weight/{key}"].shape),
                                 [32, 128])

    def test_roteq_analyze_trace(self):
        layers = analyze(os.path.join(self.out, "trace.csv"))
        want = self.layers()
        self.assertEqual(set(layers), set(want))
        for name, (neurons, dim, _) in want.items():
            self.assertEqual(layers[name]["neurons"], neurons, name)
            self.assertEqual(layers[name]["dim"], dim, name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
