#!/usr/bin/env bash
# The ResNet-style CNN example in one command: train it on Fashion-MNIST with AdamW at constant
# lr (recorded every step with the step statistics, recorder snapshots every 100 steps, torch.save
# checkpoints with the optimizer state every 250), then `roteq analyze` the trace, the snapshots
# and the checkpoints, and draw the figures.
#
#   examples/cnn_bn/run.sh [--steps N] [--out DIR] [--quick] [--analyze-only]
#
# --quick: 300 steps. --analyze-only: keep DIR's run, redo the analysis and figures.
# Outputs in DIR (default runs/cnn_bn): trace.csv(.json), snapshots/, checkpoints/, run.json,
#   analysis.txt/.json (trace), analysis_snapshots.txt/.json,
#   analysis_checkpoints.txt/.json, series.csv,
#   neurons.csv, figures/*.png
# Environment: ROTEQ (default build/cli/roteq, built if missing), PYTHON (default /usr/bin/python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
steps=3000
out=runs/cnn_bn
help_lines=14
. "$root/examples/common.sh"
example_args "$@"
example_tools

if [ "$train" = 1 ]; then
  rm -rf "$out/snapshots" "$out/checkpoints"
  echo "== training $steps steps (recorded) =="
  "$PYTHON" "$root/examples/cnn_bn/train.py" --steps "$steps" --out "$out"
fi
# --explain where this roteq has it.
example_trace cnn_bn "every step"
example_series snapshots "recorder, every 100 steps"
# The checkpoints carry no roteq metadata: the run's is the recorder's.
example_series checkpoints "torch.save with the optimizer state, every 250 steps" \
  --meta "$out/trace.csv.json"
"$PYTHON" - "$out" <<'PY'
import json, sys
run = json.load(open(f"{sys.argv[1]}/run.json"))
print(f"test accuracy {run['test_accuracy']:.4f} ({run['test_images']} images), "
      f"{run['ms_per_step']:.1f} ms/step of which recorder {run['recorder_ms_per_step']:.2f}, "
      f"checkpoints {run['checkpoint_ms_per_step']:.2f}; {run['seconds']:.0f} s")
PY
echo "figures: $out/figures"
