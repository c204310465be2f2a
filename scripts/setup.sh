#!/usr/bin/env bash
# Installs every dependency roteq needs, from Debian packages only.
# Idempotent: packages already present are skipped by apt-get. Run as root (or with sudo available).
#   scripts/setup.sh            everything (build, tests, figures, MPI, PyTorch example)
#   ROTEQ_SETUP_MINIMAL=1 ...   only what building and the C tests need
set -euo pipefail

core=(
  build-essential pkg-config meson ninja-build
  libgsl-dev libcmocka-dev librandom123-dev libsleef-dev libjansson-dev libzip-dev zlib1g-dev
  libopenblas-dev                    # Muon's Newton-Schulz products (CBLAS)
  gnuplot-nox
  clang libclang-rt-14-dev           # fuzz targets (libFuzzer)
)
extra=(
  libopenmpi-dev openmpi-bin         # meson -Dmpi=enabled, roteq sweep under mpirun
  python3-torch python3-numpy libopenblas0-pthread dataset-fashion-mnist   # the "other trainer"
)

pkgs=("${core[@]}")
if [ -z "${ROTEQ_SETUP_MINIMAL:-}" ]; then pkgs+=("${extra[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# apt and dpkg print thousands of lines: they go to a log, the terminal gets one line (and the
# log's tail when something fails).
log="${ROTEQ_SETUP_LOG:-${TMPDIR:-/tmp}/roteq-setup.log}"
: >"$log"
echo "setup: installing ${#missing[@]} packages (${missing[*]}); log: $log"
export DEBIAN_FRONTEND=noninteractive
status=0
{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
  >>"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  echo "setup: apt-get failed (exit $status); the last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit "$status"
fi
echo "setup: installed ${#missing[@]} packages"

