#!/usr/bin/env bash
# Fuzz the analysis parsers for a short time each (CI) or longer by hand.
#   tests/fuzz/run.sh [SECONDS]     default 20 s per target; exits non-zero on the first crash
#   FUZZ_SEED=N tests/fuzz/run.sh   libFuzzer's seed (default 1, so CI explores the same inputs
#                                   each run; FUZZ_SEED=0 picks a random one, for exploring)
# Inputs that once crashed a target live in tests/fuzz/regressions/TARGET/ and join its corpus.
# Builds the libFuzzer targets with clang in build-fuzz/ (only those targets), seeds each corpus
# with small valid inputs (torch_seeds.py writes the pickle and torch.save ones, standard library
# only), and runs csv, safetensors, npy, pickle and torchzip in turn. Crash inputs are left in
# build-fuzz/fuzz-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
builddir=build-fuzz
if [ ! -d "$builddir" ]; then
  CC=clang meson setup "$builddir" -Dfuzz=enabled -Dtests=enabled -Dwerror=false \
    -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$builddir" tests/fuzz/fuzz_csv tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_npy \
  tests/fuzz/fuzz_pickle tests/fuzz/fuzz_torchzip >/dev/null

work="$builddir/fuzz-corpus"
art="$builddir/fuzz-artifacts"
mkdir -p "$work/csv" "$work/safetensors" "$work/npy" "$art"
python3 tests/fuzz/torch_seeds.py "$work"
printf 'step,layer,neuron,norm,angle,lr,weight_decay\n1,fc1,0,1.5,0.01,0.001,0.1\n1,fc1,1,2.5,,0.001,0.1\n2,fc1,0,1.5,nan,0.001,0.1\n2,fc2,0,0,0.02,0.001,0.1\n' \
  > "$work/csv/seed1.csv"
printf '# comment\nangle,norm,neuron,layer,step\r\n0.01,1.5,0,a,3\r\n' > "$work/csv/seed2.csv"
hdr='{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]}}'
{ printf "\\x$(printf %02x ${#hdr})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$hdr";
  printf '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x80\x3f\x00\x40'; } \
  > "$work/safetensors/seed.safetensors"
npyhdr="{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"
{ printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $((${#npyhdr} + 1)))\\x00"; printf '%s\n' "$npyhdr";
  printf '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40'; } > "$work/npy/seed.npy"

for t in csv safetensors npy pickle torchzip; do
  if [ -d tests/fuzz/regressions/$t ]; then cp tests/fuzz/regressions/$t/* "$work/$t/"; fi
done

for t in csv safetensors npy pickle torchzip; do
  echo "fuzz_$t: ${secs}s"
  "$builddir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$art/$t-" "$work/$t" 2>&1 | grep -E "^(stat::number_of_executed_units|==|SUMMARY|ERROR|Done)" || true
  if ls "$art/$t-"* >/dev/null 2>&1; then
    echo "fuzz_$t: crash inputs in $art" >&2
    exit 1
  fi
done
echo "fuzz: no crash"
