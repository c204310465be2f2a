#!/bin/sh
# snapshot.sh ROTEQ OUTDIR - record what every optimizer produces through every driver, so that a
# refactor of the optimizer families can be checked bit for bit: run it with the binary before
# and after the change and `diff -r` the two folders. Timing and thread-count fields are removed
# (they differ between runs); everything else must be identical.
# Covers: theory --list (text, json), theory per optimizer (closed forms without and with the
# scales, trajectory under schedules, k-step angle, csv and json), simulate per optimizer and
# gradient model (json summary and csv series, every instruction set), analyze of a simulated
# trace per optimizer (convergence rate), and verify --quick's rows; the matrix optimizer (muon)
# through its own flags: theory, simulate, analyze of its trace, verify --quick's Muon table.
set -eu
R=$1
O=$2
mkdir -p "$O"
strip_json() { grep -v '"seconds"\|"threads"' ; }
hp() {
    case $1 in
    sgd | sgdm | nesterov | rv_sgdm) echo "--lr 0.1 --weight-decay 0.01" ;;
    adam_l2) echo "--weight-decay 0.05" ;;
    adamw | rv_adamw) echo "--lr 0.001 --weight-decay 0.5" ;;
    *) echo "--lr 0.001 --weight-decay 1.0" ;;
    esac
}
OPTS=$("$R" theory --list --format json | sed -n 's/.*"optimizer": "\([a-z0-9_]*\)".*/\1/p')
"$R" theory --list > "$O/list.txt"
"$R" theory --list --format json > "$O/list.json"
for o in $OPTS; do
    h=$(hp "$o")
    # shellcheck disable=SC2086
    {
        "$R" theory --optimizer "$o" $h --format json || true
        "$R" theory --optimizer "$o" $h --dim 128 --grad-norm 11 --kstep 10 --format json || true
        "$R" theory --optimizer "$o" $h --dim 96 --grad-norm 9 --init-norm 2 --steps 400 \
            --every 7 --schedule warmup:50+cosine:400 --wd-schedule step:200:0.5 --format csv || true
        "$R" theory --optimizer "$o" $h --dim 96 --init-norm 0.5 --steps 300 --every 13 \
            --kstep 1000 --format json || true
        "$R" theory --optimizer "$o" $h --dim 64 --grad-norm 8 || true
        "$R" theory --optimizer "$o" $h --dim 64 --grad-norm 8 --kstep 3000000 --format json || true
    } > "$O/theory_$o.txt" 2>&1
    for g in scale-invariant heterogeneous anisotropic radial; do
        "$R" simulate --optimizer "$o" $h --neurons 12 --dim 44 --steps 600 --gradient $g \
            --radial 0.3 --schedule warmup:40+cosine:600 --format json --quiet 2>&1 |
            strip_json > "$O/sim_${o}_$g.json" || true
    done
    for isa in generic avx2 avx512; do
        "$R" simulate --optimizer "$o" $h --neurons 10 --dim 37 --steps 500 --every 25 \
            --isa $isa --format csv --quiet > "$O/series_${o}_$isa.csv" 2>&1 || true
    done
    "$R" simulate --optimizer "$o" $h --neurons 6 --dim 32 --steps 3000 --every 10 --quiet \
        --init-norm 1 \
        --trace "$O/trace_$o.csv" > /dev/null 2>&1 || true
    "$R" analyze "$O/trace_$o.csv" --format json 2>&1 | strip_json > "$O/analyze_$o.json" || true
    rm -f "$O/trace_$o.csv" "$O/trace_$o.csv.json"
done
# shellcheck disable=SC2043
for o in muon; do
    m="--optimizer $o --shape 16x24 --lr 0.02 --weight-decay 0.1"
    # shellcheck disable=SC2086
    {
        "$R" theory $m --format json || true
        "$R" theory $m --momentum 0.9 --no-nesterov --ns-steps 7 || true
        "$R" theory $m --steps 200 --every 9 --schedule warmup:20+cosine:200 --format csv || true
    } > "$O/theory_$o.txt" 2>&1
    # shellcheck disable=SC2086
    "$R" simulate $m --matrices 3 --steps 300 --format json 2>&1 | strip_json > "$O/sim_$o.json" || true
    # shellcheck disable=SC2086
    "$R" simulate $m --matrices 2 --steps 400 --every 10 --trace "$O/trace_$o.csv" > /dev/null 2>&1 || true
    "$R" analyze "$O/trace_$o.csv" --format json 2>&1 | strip_json > "$O/analyze_$o.json" || true
    rm -f "$O/trace_$o.csv" "$O/trace_$o.csv.json"
done
"$R" bench --neurons 8 --dim 8 --steps 10 --repeat 1 --no-peers --format json |
    grep '"name"' > "$O/bench_rows.txt" 2>&1 || true
"$R" verify --quick --print-grid > "$O/verify_grid.json" 2>&1 || true
"$R" verify --quick --out "$O/verify.csv" 2>/dev/null | sed -n '/^Muon (/,$p' > "$O/verify_matrix.txt" || true
# timing columns of the sweep rows
if [ -f "$O/verify.csv" ]; then
    python3 - "$O/verify.csv" <<'PY'
import csv, sys
p = sys.argv[1]
rows = list(csv.reader(l for l in open(p) if not l.startswith('#')))
drop = [i for i, c in enumerate(rows[0]) if c in ('seconds', 'threads', 'host', 'rank')]
with open(p, 'w', newline='') as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow([c for i, c in enumerate(r) if i not in drop])
PY
fi
