# common.sh - what every example's run.sh does first, sourced by it after setting `root` (the
# repository), `steps` and `out` (defaults) and the number of `help_lines` of its own header:
# reads the common arguments, finds roteq (building it if missing) and checks that the Python
# has torch. One copy instead of three.
#
#   example_args "$@"   --steps N, --out DIR, --threads T, --quick (300 steps), --analyze-only
#                       (sets train=0), -h/--help (prints the caller's header); else exit 2
#   example_tools       sets PYTHON (default /usr/bin/python3, Debian's, with python3-torch) and
#                       ROTEQ (default build/cli/roteq, built if missing); exit 1 without torch

threads=1
train=1

example_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --steps) steps="$2"; shift 2 ;;
      --out) out="$2"; shift 2 ;;
      --threads) threads="$2"; shift 2 ;;
      --quick) steps=300; shift ;;
      --analyze-only) train=0; shift ;;
      -h|--help) sed -n "2,${help_lines}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
  done
}

example_tools() {
  PYTHON="${PYTHON:-/usr/bin/python3}"
  ROTEQ="${ROTEQ:-$root/build/cli/roteq}"
  if [ ! -x "$ROTEQ" ]; then
    echo "run.sh: building roteq in $root/build" >&2
    [ -d "$root/build" ] || meson setup "$root/build" >/dev/null
    meson compile -C "$root/build" >/dev/null
  fi
  "$PYTHON" -c 'import torch' || {
    echo "run.sh: $PYTHON has no torch: run scripts/setup.sh (Debian python3-torch)" >&2; exit 1; }
}
