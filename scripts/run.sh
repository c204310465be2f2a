#!/usr/bin/env bash
# From a fresh clone: install dependencies, build, and run the main job - print what theory
# predicts and check every equilibrium formula against simulation (`roteq verify --quick`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
build/cli/roteq theory --optimizer adamw --lr 1e-3 --weight-decay 0.5 --dim 512
build/cli/roteq verify --quick "$@"
