#!/usr/bin/python3
"""checkpoints_run.py OUT - one small run saved the ways trainers save it, for test_checkpoints.c.

A conv + BatchNorm + three-linear net (fc2 and fc3 share the shape [16, 16]) trained with AdamW
for 40 steps on random data; the weights at steps 0, 4, ..., 40 are written as:
  OUT/st/step_N.safetensors             safetensors (the reference; the recorder's writer)
  OUT/pt/step_N.pt                      torch.save(model.state_dict())
  OUT/train/step_N.pt                   torch.save({"model": ..., "optimizer": ..., "step": N})
  OUT/hf/checkpoint-N/                  pytorch_model-0000{1,2}-of-00002.bin + index, optimizer.pt,
                                        trainer_state.json; the final model at the top level
  OUT/flax/N/NAME.npy                   Flax layout: linear [in, out], conv [kh, kw, in, out],
                                        with OUT/flax.json giving each layer's neuron_axis -1
  OUT/evil/step_{1,2}.pt                a pickle that would run os.system("touch OUT/pwned")
and OUT/expected_state.json holds, for the last training-script checkpoint, the first values of
each layer's exp_avg / exp_avg_sq and its step as torch holds them (for the mapping check).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "adapters", "torch"))
from roteq_recorder import save_safetensors  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 6, (3, 2), bias=False)
        self.bn = torch.nn.BatchNorm2d(6)
        self.fc1 = torch.nn.Linear(6 * 4 * 5, 16)
        self.fc2 = torch.nn.Linear(16, 16)
        self.fc3 = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).flatten(1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.head(torch.relu(self.fc3(x)))


class Evil:
    """Unpickling this runs a shell command: roteq must refuse it, not run it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def save_hf(out, step, sd, opt):
    d = os.path.join(out, "hf", f"checkpoint-{step}")
    os.makedirs(d, exist_ok=True)
    names = list(sd)
    half = len(names) // 2
    index = {"metadata": {}, "weight_map": {}}
    for i, part in enumerate((names[:half], names[half:])):
        shard = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: sd[k] for k in part}, os.path.join(d, shard))
        index["weight_map"].update({k: shard for k in part})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f)
    torch.save(opt.state_dict(), os.path.join(d, "optimizer.pt"))
    with open(os.path.join(d, "trainer_state.json"), "w") as f:
        json.dump({"global_step": step, "log_history": []}, f)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "custom"}, f)


def save_flax(out, step, sd):
    d = os.path.join(out, "flax", str(step))
    os.makedirs(d, exist_ok=True)
    for k, v in sd.items():
        if v.dim() == 2:
            a = v.t()  # [in, out]
        elif v.dim() == 4:
            a = v.permute(2, 3, 1, 0)  # [kh, kw, in, out]
        else:
            continue
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(a.numpy()))


def main():
    out = sys.argv[1]
    torch.set_num_threads(1)
    torch.manual_seed(11)
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    gen = torch.Generator().manual_seed(12)
    for sub in ("st", "pt", "train", "evil"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for step in range(41):
        if step % 4 == 0:
            sd = {k: v.clone() for k, v in model.state_dict().items()}
            save_safetensors(os.path.join(out, "st", f"step_{step}.safetensors"), sd)
            torch.save(model.state_dict(), os.path.join(out, "pt", f"step_{step}.pt"))
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step},
                       os.path.join(out, "train", f"step_{step}.pt"))
            save_hf(out, step, model.state_dict(), opt)
            save_flax(out, step, sd)
        if step == 40:
            break
        x = torch.randn(32, 2, 6, 6, generator=gen)
        y = torch.randint(0, 4, (32,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    # HF's output folder: the final model at the top level (its step is checkpoint-40's).
    torch.save(model.state_dict(), os.path.join(out, "hf", "pytorch_model.bin"))
    with open(os.path.join(out, "hf", "trainer_state.json"), "w") as f:
        json.dump({"global_step": 40, "log_history": []}, f)
    torch.save({"note": "not weights"}, os.path.join(out, "hf", "training_args.bin"))
    layers = [k for k, v in model.state_dict().items() if v.dim() >= 2]
    with open(os.path.join(out, "flax.json"), "w") as f:
        json.dump({"layers": {k: {"neuron_axis": -1} for k in layers}}, f)
    for step in (1, 2):
        torch.save({"fc1.weight": torch.zeros(2, 2), "x": Evil(os.path.join(out, "pwned"))},
                   os.path.join(out, "evil", f"step_{step}.pt"))
    # What torch holds for the last training-script checkpoint, by parameter name.
    names = [n for n, _ in model.named_parameters()]
    state = opt.state_dict()["state"]
    expected = {}
    for i, n in enumerate(names):
        if model.get_parameter(n).dim() < 2:
            continue
        s = state[i]
        expected[n] = {"step": int(s["step"]), "shape": list(s["exp_avg"].shape),
                       "exp_avg": s["exp_avg"].flatten()[:8].tolist(),
                       "exp_avg_sq": s["exp_avg_sq"].flatten()[:8].tolist(),
                       "weight": model.get_parameter(n).detach().flatten()[:8].tolist()}
    with open(os.path.join(out, "expected_state.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
