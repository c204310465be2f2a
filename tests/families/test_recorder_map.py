#!/usr/bin/python3
"""test_recorder_map.py - the PyTorch recorder's optimizer map agrees with the list of optimizers.

adapters/torch/roteq_recorder.py keeps, per roteq optimizer it can recognise, the hyperparameter
keys it records (_HP_KEYS). The optimizers and their hyperparameters are defined once, in the
family files (families/); `roteq theory --list --format json` prints them. Every optimizer the
recorder maps must exist there, every key it records must apply to it, and it must record every
real-valued hyperparameter except the rotational variants' update_norm_decay (flags such as
nesterov are implied by the optimizer name). Run by meson (suite families); needs torch, which
scripts/setup.sh installs, because the recorder imports it.
"""

import json
import os
import subprocess
import sys

SOURCE = os.environ["ROTEQ_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE, "adapters", "torch"))
import roteq_recorder as rr  # noqa: E402

IMPLIED = {"nesterov", "update_norm_decay"}

listed = json.loads(subprocess.run([os.environ["ROTEQ_EXE"], "theory", "--list", "--format",
                                    "json"], check=True, capture_output=True, text=True).stdout)
known = {o["optimizer"]: set(o["hparams"]) for o in listed}
problems = []
for name, keys in rr._HP_KEYS.items():
    if name not in known:
        problems.append(f"recorder maps '{name}', which roteq does not list")
        continue
    extra = set(keys) - known[name]
    missing = known[name] - set(keys) - IMPLIED
    if extra:
        problems.append(f"{name}: recorder keys {sorted(extra)} do not apply")
    if missing:
        problems.append(f"{name}: recorder does not record {sorted(missing)}")
for p in problems:
    print("FAIL:", p)
print(f"{len(rr._HP_KEYS)} recorder optimizers checked against {len(known)} listed")
sys.exit(1 if problems else 0)
