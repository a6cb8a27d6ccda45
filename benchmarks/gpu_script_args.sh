# Shared by the GPU experiment scripts (repro_cifar10_gpu.sh, prune_cifar10_gpu.sh); sourced, not run.
# Before sourcing, set NAME (the prefix of error messages) and define usage(). Parses
# `[--dry-run] [--out DIR] [CIFAR10]` into DRY, OUT and DATA, makes OUT and DATA absolute (they are
# relative to where the script was called from), then moves to the repository root with kmix on
# PYTHONPATH and PY set to the Python to use.
DRY=0
OUT=""
DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) [ $# -ge 2 ] || { echo "$NAME: --out needs a folder" >&2; exit 2; }; OUT="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "$NAME: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$DATA" ] || { echo "$NAME: one CIFAR10 path, got '$DATA' and '$1'" >&2; exit 2; }; DATA="$1" ;;
  esac
  shift
done

abspath() { case "$1" in /*|"") echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
DATA=$(abspath "$DATA")
OUT=$(abspath "$OUT")
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
