#!/usr/bin/env bash
# The tiny GPT example in one command: train it on Python's standard-library sources with AdamW
# (100-step warmup, then constant lr), recorded every 10 steps with the step statistics and with
# HF-style snapshots holding the optimizer state every 200 steps; then `roteq analyze` the trace
# and the snapshots, and draw the figures (27 layers: small multiples by layer type).
#
#   examples/tiny_gpt/run.sh [--steps N] [--out DIR] [--quick] [--analyze-only]
#
# --quick: 300 steps. --analyze-only: keep DIR's run, redo the analysis and figures.
# Outputs in DIR (default runs/tiny_gpt): trace.csv(.json), snapshots/checkpoint-N/, run.json,
#   analysis.txt/.json (trace), analysis_snapshots.txt/.json, series.csv, neurons.csv, figures/*.png
# Environment: ROTEQ (default build/cli/roteq, built if missing), PYTHON (default /usr/bin/python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
steps=3000
out=runs/tiny_gpt
help_lines=12
. "$root/examples/common.sh"
example_args "$@"
example_tools

if [ "$train" = 1 ]; then
  rm -rf "$out/snapshots"
  echo "== training $steps steps (recorded every 10) =="
  "$PYTHON" "$root/examples/tiny_gpt/train.py" --steps "$steps" --out "$out"
fi
example_trace tiny_gpt "every 10th step"
example_series snapshots "checkpoint-N every 200 steps, with the optimizer state"
"$PYTHON" - "$out" <<'PY'
import json, sys
run = json.load(open(f"{sys.argv[1]}/run.json"))
print(f"validation {run['val_bits_per_byte']:.3f} bits/byte, {run['parameters']} parameters, "
      f"{run['ms_per_step']:.1f} ms/step of which recorder {run['recorder_ms_per_step']:.2f}; "
      f"{run['seconds']:.0f} s")
PY
echo "figures: $out/figures"
