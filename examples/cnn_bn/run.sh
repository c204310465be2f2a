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
explain=()
if "$ROTEQ" analyze --help 2>&1 | grep -q -- '--explain'; then explain=(--explain); fi
mkdir -p "$out/figures"
echo "== roteq analyze $out/trace.csv (every step) =="
"$ROTEQ" analyze "$out/trace.csv" --series "$out/series.csv" "${explain[@]}" | tee "$out/analysis.txt"
"$ROTEQ" analyze "$out/trace.csv" --format json "${explain[@]}" > "$out/analysis.json"
"$ROTEQ" analyze "$out/trace.csv" --per-neuron --format csv > "$out/neurons.csv"
echo "== roteq analyze $out/snapshots (recorder, every 100 steps) =="
"$ROTEQ" analyze "$out/snapshots" | tee "$out/analysis_snapshots.txt"
"$ROTEQ" analyze "$out/snapshots" --format json > "$out/analysis_snapshots.json"
echo "== roteq analyze $out/checkpoints (torch.save with the optimizer state, every 250 steps) =="
if "$ROTEQ" analyze "$out/checkpoints" > "$out/analysis_checkpoints.txt" 2>&1; then
  cat "$out/analysis_checkpoints.txt"
  "$ROTEQ" analyze "$out/checkpoints" --format json > "$out/analysis_checkpoints.json"
else
  echo "run.sh: this roteq cannot analyse the checkpoints:"; cat "$out/analysis_checkpoints.txt"
fi
"$ROTEQ" plot norm "$out/series.csv" --out "$out/figures" --name norm \
  --title "cnn_bn (AdamW): weight norm per layer"
"$ROTEQ" plot angle "$out/series.csv" --out "$out/figures" --name angle --log-y \
  --title "cnn_bn (AdamW): angular update per layer"
"$ROTEQ" plot histogram "$out/neurons.csv" --out "$out/figures" --name neurons \
  --title "cnn_bn: per-neuron angular update / prediction"
"$PYTHON" - "$out" <<'PY'
import json, sys
run = json.load(open(f"{sys.argv[1]}/run.json"))
print(f"test accuracy {run['test_accuracy']:.4f} ({run['test_images']} images), "
      f"{run['ms_per_step']:.1f} ms/step of which recorder {run['recorder_ms_per_step']:.2f}, "
      f"checkpoints {run['checkpoint_ms_per_step']:.2f}; {run['seconds']:.0f} s")
PY
echo "figures: $out/figures"
