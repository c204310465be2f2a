#!/usr/bin/env bash
# The whole test suite from a fresh clone: install dependencies, configure, build, run every test.
#   scripts/test.sh              release build in build/ (MPI enabled when Open MPI is installed)
#   scripts/test.sh --sanitize   the same suite under AddressSanitizer + UBSan, in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

builddir=build
opts=(-Dtests=enabled)
if [ "${1:-}" = "--sanitize" ]; then
  builddir=build-asan
  opts+=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if pkg-config --exists ompi-c 2>/dev/null; then opts+=(-Dmpi=enabled); fi

if [ -d "$builddir" ]; then
  meson setup --reconfigure "$builddir" "${opts[@]}" >/dev/null
else
  meson setup "$builddir" "${opts[@]}" >/dev/null
fi
meson compile -C "$builddir"
meson test -C "$builddir" --print-errorlogs --num-processes "$(nproc)" ${ROTEQ_TEST_ARGS:-}
