#!/usr/bin/env bash
# The Fashion-MNIST example in one command: train the BatchNorm MLP with AdamW, SGD with
# momentum, Adam+L2 and AdamW under a cosine lr schedule (recorded by
# adapters/torch/roteq_recorder.py), then `roteq analyze` each
# trace (text table, JSON, series and per-neuron CSVs) and `roteq plot` the figures.
#
#   examples/fashion_mnist/run.sh [--steps N] [--out DIR] [--threads T] [--quick] [--analyze-only]
#
# --quick: 300 steps (a smoke test). --analyze-only: keep the traces in DIR, redo the rest.
# Outputs in DIR (default runs/fashion_mnist):
#   DIR/RUN/{trace.csv,trace.csv.json,run.json,analysis.txt,analysis.json,series.csv,neurons.csv}
#   for RUN in adamw sgdm adam_l2 adamw_cosine
#   DIR/figures/*.png (norm and angle per optimizer, per-neuron histograms, layer balance)
# Environment: ROTEQ (the roteq binary; default build/cli/roteq, built if missing), PYTHON
# (default /usr/bin/python3, Debian's, which has python3-torch).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
steps=3000
out=runs/fashion_mnist
help_lines=15
. "$root/examples/common.sh"
example_args "$@"
example_tools

mkdir -p "$out/figures"
runs=(adamw sgdm adam_l2 adamw_cosine)
for opt in "${runs[@]}"; do
  d="$out/$opt"
  if [ "$train" = 1 ]; then
    echo "== $opt: training $steps steps (recorded) =="
    schedule=constant
    case "$opt" in *_cosine) schedule=cosine ;; esac
    "$PYTHON" "$root/examples/fashion_mnist/train.py" --optimizer "${opt%_cosine}" \
      --schedule "$schedule" --steps "$steps" --threads "$threads" --out "$d"
  fi
  echo "== $opt: roteq analyze $d/trace.csv =="
  "$ROTEQ" analyze "$d/trace.csv" --series "$d/series.csv" | tee "$d/analysis.txt"
  "$ROTEQ" analyze "$d/trace.csv" --format json > "$d/analysis.json"
  "$ROTEQ" analyze "$d/trace.csv" --per-neuron --format csv > "$d/neurons.csv"
  "$ROTEQ" plot norm "$d/series.csv" --out "$out/figures" --name "$opt-norm" \
    --title "$opt: weight norm per layer (Fashion-MNIST MLP)"
  "$ROTEQ" plot angle "$d/series.csv" --out "$out/figures" --name "$opt-angle" --log-y \
    --title "$opt: angular update per layer (Fashion-MNIST MLP)"
  "$ROTEQ" plot histogram "$d/neurons.csv" --out "$out/figures" --name "$opt-neurons" \
    --title "$opt: per-neuron angular update / prediction"
done
echo "== layer balance across optimizers =="
"$ROTEQ" plot balance adamw="$out/adamw/neurons.csv" sgdm="$out/sgdm/neurons.csv" \
  adam_l2="$out/adam_l2/neurons.csv" --out "$out/figures" --name balance \
  --title "mean angular update per layer"
echo "== summary =="
"$PYTHON" - "$out" "${runs[@]}" <<'EOF'
import json, sys
out, opts = sys.argv[1], sys.argv[2:]
print(f"{'run':12s} {'test acc':>8s} {'ms/step':>8s} {'rec ms':>7s} {'balance':>8s}  layers "
      "(measured/predicted angular update, verdict)")
for o in opts:
    run = json.load(open(f"{out}/{o}/run.json"))
    an = json.load(open(f"{out}/{o}/analysis.json"))
    layers = "; ".join(
        f"{l['layer']} {l['measured']['angular_update']:.3g}/"
        f"{l['predicted']['angular_update'] if l['predicted']['angular_update'] is not None else float('nan'):.3g}"
        f" {l['verdict']}" for l in an["layers"])
    bal = an.get("balance")
    print(f"{o:12s} {run['test_accuracy']:8.4f} {run['ms_per_step']:8.2f} "
          f"{run['recorder_ms_per_step']:7.2f} {bal if bal is None else format(bal, '8.3f')}  {layers}")
EOF
echo "figures: $out/figures"
