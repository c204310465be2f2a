# common.sh - what every example's run.sh does first, sourced by it after setting `root` (the
# repository), `steps` and `out` (defaults) and the number of `help_lines` of its own header:
# reads the common arguments, finds roteq (building it if missing) and checks that the Python
# has torch; then the analyses and figures the examples share. One copy instead of three.
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

# example_trace NAME WHAT: `roteq analyze` of $out/trace.csv (with --explain where this roteq has
# it) into analysis.txt/.json, series.csv and neurons.csv, then the norm, angle and per-neuron
# figures in $out/figures, titled with NAME.
example_trace() {
  local explain=()
  # grep reads all of the help (with -q it may stop early, and pipefail would see SIGPIPE).
  if "$ROTEQ" analyze --help 2>&1 | grep -- '--explain' >/dev/null; then explain=(--explain); fi
  mkdir -p "$out/figures"
  echo "== roteq analyze $out/trace.csv ($2) =="
  "$ROTEQ" analyze "$out/trace.csv" --series "$out/series.csv" "${explain[@]}" | tee "$out/analysis.txt"
  "$ROTEQ" analyze "$out/trace.csv" --format json "${explain[@]}" > "$out/analysis.json"
  "$ROTEQ" analyze "$out/trace.csv" --per-neuron --format csv > "$out/neurons.csv"
  "$ROTEQ" plot norm "$out/series.csv" --out "$out/figures" --name norm \
    --title "$1 (AdamW): weight norm per layer"
  "$ROTEQ" plot angle "$out/series.csv" --out "$out/figures" --name angle --log-y \
    --title "$1 (AdamW): angular update per layer"
  "$ROTEQ" plot histogram "$out/neurons.csv" --out "$out/figures" --name neurons \
    --title "$1: per-neuron angular update / prediction"
}

# example_series DIR WHAT [ARGS...]: `roteq analyze` of the folder $out/DIR (with ARGS, e.g.
# --meta FILE) into analysis_DIR.txt/.json; a roteq that cannot read it says why, and the script
# goes on.
example_series() {
  local dir="$1" what="$2"
  shift 2
  echo "== roteq analyze $out/$dir $* ($what) =="
  if "$ROTEQ" analyze "$out/$dir" "$@" > "$out/analysis_$dir.txt" 2>&1; then
    cat "$out/analysis_$dir.txt"
    "$ROTEQ" analyze "$out/$dir" "$@" --format json > "$out/analysis_$dir.json"
  else
    echo "run.sh: this roteq cannot analyse $out/$dir:"; cat "$out/analysis_$dir.txt"
  fi
}
