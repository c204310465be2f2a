#!/usr/bin/env bash
# scripts/setup.sh keeps apt's output off the terminal: one line on success, the log's path and
# its tail on failure. apt-get, dpkg-query and sudo are stand-ins on PATH that flood like the real
# ones (1000 lines), so the test installs nothing.
set -u
src="${ROTEQ_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cat >"$tmp/bin/dpkg-query" <<'X'
#!/bin/sh
exit 1
X
cat >"$tmp/bin/sudo" <<'X'
#!/bin/sh
exec "$@"
X
cat >"$tmp/bin/apt-get" <<'X'
#!/bin/sh
i=0
while [ $i -lt 1000 ]; do echo "Unpacking libfoo$i (1.0) ..."; i=$((i + 1)); done
[ "$1" = install ] && [ -n "${FAKE_APT_FAIL:-}" ] && { echo "E: Unable to locate package x"; exit 100; }
exit 0
X
chmod +x "$tmp/bin/"*
fail() { echo "not ok: $*"; exit 1; }

out=$(PATH="$tmp/bin:$PATH" ROTEQ_SETUP_LOG="$tmp/setup.log" ROTEQ_SETUP_MINIMAL=1 \
      "$src/scripts/setup.sh" 2>&1) || fail "setup.sh failed: $out"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] || fail "expected 2 lines, got: $out"
printf '%s\n' "$out" | grep -q "^setup: installing .* packages .*; log: $tmp/setup.log$" || fail "$out"
printf '%s\n' "$out" | grep -q "^setup: installed .* packages$" || fail "$out"
[ "$(grep -c Unpacking "$tmp/setup.log")" -eq 2000 ] || fail "the log lacks apt's output"

out=$(PATH="$tmp/bin:$PATH" ROTEQ_SETUP_LOG="$tmp/setup.log" ROTEQ_SETUP_MINIMAL=1 FAKE_APT_FAIL=1 \
      "$src/scripts/setup.sh" 2>&1)
rc=$?
[ "$rc" -eq 100 ] || fail "exit $rc, want apt-get's 100"
printf '%s\n' "$out" | grep -q "apt-get failed (exit 100); the last lines of $tmp/setup.log:" || fail "$out"
printf '%s\n' "$out" | grep -q "E: Unable to locate package x" || fail "no tail: $out"
[ "$(printf '%s\n' "$out" | wc -l)" -le 22 ] || fail "flooded: $(printf '%s\n' "$out" | wc -l) lines"
echo "ok: setup.sh prints 2 lines on success, the log's tail on failure"
