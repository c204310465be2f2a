#!/bin/sh
# gallery.sh - regenerate the README gallery (figures 1-7 of plots/README.md) from the simulator
# with fixed seeds: every number in these figures is simulated or predicted by this build.
#
#   plots/gallery.sh ROTEQ OUTDIR        (meson compile -C build figures runs it into docs/gallery)
#
# ROTEQ is the roteq executable. The simulation outputs (series CSVs, traces, sweep rows) go to
# OUTDIR/data/ (not committed); the figures and their .dat files to OUTDIR. Simulations run on one
# thread (verify on two jobs); about 40 s of CPU in all, half of it figure 7's five Muon runs
# (measured: 36-67 s wall on a busy 2-core box).
# The figures are bit-identical from run to run.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 ROTEQ OUTDIR" >&2
    exit 2
fi
ROTEQ=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$OUT/data
mkdir -p "$OUT" "$DATA"

sim() { # sim NAME ARGS... : one simulation into $DATA/NAME.csv
    name=$1
    shift
    "$ROTEQ" simulate --threads 1 --quiet --out "$DATA/$name.csv" "$@" >/dev/null
}
plot() { # plot KIND ARGS... : one figure into $OUT, its path on stdout
    kind=$1
    shift
    "$ROTEQ" plot "$kind" --out "$OUT" "$@"
}

echo "gallery: simulating (fixed seeds) into $DATA" >&2

# 1, 2: norm and angular update from a start far from equilibrium (||w_0|| = 3), three optimizers
# at the same learning-rate scale, 20000 steps.
sim adamw --optimizer adamw --lr 3e-3 --weight-decay 0.1 --init-norm 3 --steps 20000 --seed 11
sim adam_l2 --optimizer adam_l2 --lr 3e-3 --weight-decay 0.1 --init-norm 3 --steps 20000 --seed 11
sim lion --optimizer lion --lr 3e-4 --weight-decay 1 --init-norm 3 --steps 20000 --seed 11
plot norm --title "weight norm: measured (band 5–95% of 128 neurons) and predicted" \
    "AdamW=$DATA/adamw.csv" "Adam+L2=$DATA/adam_l2.csv" "Lion=$DATA/lion.csv"
plot angle --log-y --title "angular update per step: measured and predicted" \
    "AdamW=$DATA/adamw.csv" "Adam+L2=$DATA/adam_l2.csv" "Lion=$DATA/lion.csv"

# 4: balance. Four "layers" that differ only in their gradient scale ||g~|| (0.1 ... 100), as
# layers of a network do. AdamW rotates every layer equally; with Adam+L2 the layers with small
# gradients rotate fastest. Each optimizer's layer runs are joined into one series CSV whose
# group column names the layer.
for opt in adamw adam_l2; do
    for g in 0.1 1 10 100; do
        sim "bal_${opt}_$g" --optimizer "$opt" --lr 1e-3 --weight-decay 0.1 --grad-norm "$g" \
            --neurons 64 --steps 8000 --seed 21
    done
    first=1
    for g in 0.1 1 10 100; do
        # keep the '#' lines and header of the first file; rename the group to the layer
        awk -F, -v OFS=, -v layer="‖g‖=$g" -v first="$first" '
            /^#/ { if (first) print; next }
            !seen++ { if (first) print; next }
            { $2 = layer; print }' "$DATA/bal_${opt}_$g.csv"
        first=0
    done >"$DATA/balance_$opt.csv"
done
plot balance --log-y --title "balance: angular update per layer (layers differ in gradient scale)" \
    "AdamW=$DATA/balance_adamw.csv" "Adam+L2=$DATA/balance_adam_l2.csv"

# 5: verification: the rows of `roteq verify --quick` (its grid is chosen so that each point
# measures an equilibrium; sweep/README.md). It exits 1 when a row FAILs: the figure shows that.
"$ROTEQ" verify --quick --out "$DATA/verify_rows.csv" --threads 1 --jobs 2 >/dev/null 2>&1 ||
    test -s "$DATA/verify_rows.csv"
plot verify "$DATA/verify_rows.csv"

# 6: warmup. AdamW from ||w_0|| = 0.25 and 2.5 (equilibrium 1.39) over- and under-rotates for
# thousands of steps; RV-AdamW rotates at the equilibrium rate almost from the first step. Every
# step is recorded; the runs are long enough (12 relaxation times 1/(2 lr wd)) for the last
# prediction to be the equilibrium, and the figure shows the first 6000 steps.
for opt in adamw rv_adamw; do
    for w in 0.25 2.5; do
        sim "warm_${opt}_$w" --optimizer "$opt" --lr 3e-3 --weight-decay 0.1 --init-norm "$w" \
            --steps 20000 --every 1 --neurons 64 --seed 5
    done
done
plot transient --log-y --max-step 6000 \
    --title "warmup: rotation relative to equilibrium, AdamW vs RV-AdamW" \
    "AdamW, ‖w₀‖=0.25=$DATA/warm_adamw_0.25.csv" "AdamW, ‖w₀‖=2.5=$DATA/warm_adamw_2.5.csv" \
    "RV-AdamW, ‖w₀‖=0.25=$DATA/warm_rv_adamw_0.25.csv" \
    "RV-AdamW, ‖w₀‖=2.5=$DATA/warm_rv_adamw_2.5.csv"

# 7: Muon's equilibrium against momentum, 64x64 matrices (torch.optim.Muon: Nesterov, ns_steps 5).
# One summary per momentum; 4000 steps from theory's best norm, statistics over the last 1000
# (steps 3001-4000, 12 relaxation times 1/(2 lr wd) = 250 steps after the start), 8 matrices.
for m in 0 0.5 0.9 0.95 0.98; do
    "$ROTEQ" simulate --optimizer muon --shape 64x64 --lr 0.02 --weight-decay 0.1 --momentum "$m" \
        --matrices 8 --steps 4000 --seed 41 --threads 1 --format json \
        >"$DATA/muon_m$m.json"
done
plot muon "$DATA/muon_m0.json" "$DATA/muon_m0.5.json" "$DATA/muon_m0.9.json" \
    "$DATA/muon_m0.95.json" "$DATA/muon_m0.98.json"

# 3: per-neuron histogram, from a per-neuron trace analysed by `roteq analyze` (heterogeneous
# gradient scales across neurons: AdamW keeps every neuron near its prediction).
if "$ROTEQ" analyze --help >/dev/null 2>&1; then
    for opt in adamw adam_l2; do
        "$ROTEQ" simulate --threads 1 --quiet --optimizer "$opt" --lr 1e-3 --weight-decay 0.1 \
            --gradient heterogeneous --neurons 256 --steps 8000 --every 40 --seed 31 \
            --trace "$DATA/trace_$opt.csv" >/dev/null
        "$ROTEQ" analyze "$DATA/trace_$opt.csv" --per-neuron --format csv \
            >"$DATA/neurons_$opt.csv"
    done
    plot histogram --title "per-neuron angular update / prediction (heterogeneous gradients)" \
        "AdamW=$DATA/neurons_adamw.csv" "Adam+L2=$DATA/neurons_adam_l2.csv"
else
    echo "gallery: roteq analyze not available yet: figure 3 (histogram) skipped" >&2
fi
echo "gallery: done" >&2
