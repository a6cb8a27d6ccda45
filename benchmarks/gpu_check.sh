#!/usr/bin/env bash
# kmix's one prepared GPU check: the CUDA tests and three benchmarks, one markdown report.
#
#   bash benchmarks/gpu_check.sh --out "$OUT"      # on a machine with a GPU: ~4-5 min, at most 7
#   bash benchmarks/gpu_check.sh --dry-run         # the whole script on the CPU at tiny sizes (~1 min)
#
# Uses the python and torch already installed (PYTHON, default python3) and kmix from this checkout
# through PYTHONPATH; installs nothing. Each step runs under its own `timeout` and writes its own
# section whatever happened to the others; the whole run stays inside --budget seconds (default 420).
# Writes DIR/gpu_report.md (the docs/gpu.md format: header, summary table, one section per step) and
# one raw log per step (6 files); DIR is --out, else $OUT, else ./gpu-report. The training-throughput
# step reads CIFAR-10 from --cifar10 PATH, else $KMIX_CIFAR10, else the first of shared/data/,
# ../shared/data/ and .gpu-data/ (in this checkout) holding cifar10-jpg.tar.gz.
set -u

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --out DIR  --dry-run  --budget SECONDS  --cifar10 PATH  -h|--help"
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
OUT_DIR="${OUT:-./gpu-report}"
DRY=0
BUDGET=420
CIFAR10="${KMIX_CIFAR10:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT_DIR="${2:?--out needs a folder}"; shift 2 ;;
        --out=*) OUT_DIR="${1#--out=}"; shift ;;
        --dry-run) DRY=1; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift 2 ;;
        --budget=*) BUDGET="${1#--budget=}"; shift ;;
        --cifar10) CIFAR10="${2:?--cifar10 needs a path}"; shift 2 ;;
        --cifar10=*) CIFAR10="${1#--cifar10=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_check.sh: --budget must be whole seconds, got '$BUDGET'" >&2; exit 2 ;; esac

PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
REPORT="$OUT_DIR/gpu_report.md"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kmix-gpu-check.XXXXXX")"  # section bodies, pytest's temp dirs
trap 'rm -rf "$WORK"' EXIT
START_NS=$(date +%s%N)
RESERVE=15  # seconds kept for writing the report after the last step

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    BENCH_ARGS=(--device cpu --dry-run)
    MODE="dry run: CPU, tiny sizes (checks the script; its figures measure nothing)"
else
    DEVICE=cuda
    BENCH_ARGS=(--device cuda)
    MODE="GPU"
fi

elapsed_s() { echo $(( ($(date +%s%N) - START_NS) / 1000000000 )); }
log() { echo "[gpu_check $(elapsed_s)s] $*"; }

SUMMARY_ROWS=()
STEP_FILES=()

# run_step NUM TITLE LIMIT_S LOGNAME FORMAT TARGET_REGEX -- COMMAND...
#   FORMAT: "code" (output in a code block) or "markdown" (output pasted as is, when the step is ok).
#   TARGET_REGEX: lines of the output quoted in the summary's result column.
run_step() {
    local num="$1" title="$2" limit="$3" logname="$4" format="$5" pick="$6"
    shift 7
    local logfile="$OUT_DIR/$logname" section="$WORK/section_$num.md"
    local left=$(( BUDGET - $(elapsed_s) - RESERVE ))
    local cmd_text status rc seconds result
    cmd_text="$(printf '%q ' "$@")"
    cmd_text="${cmd_text% }"
    [ "$left" -lt "$limit" ] && limit="$left"
    if [ "$limit" -lt 10 ]; then
        status="skipped (time budget of ${BUDGET} s spent)"; rc="-"; seconds=0; result=""
        echo "not run: the time budget was spent" > "$logfile"
    else
        log "step $num: $title (limit ${limit} s): $cmd_text"
        local t0=$(date +%s%N)
        timeout --kill-after=10 "$limit" "$@" > "$logfile" 2>&1 < /dev/null
        rc=$?
        seconds=$(( ($(date +%s%N) - t0) / 1000000000 ))
        case "$rc" in
            0) status="ok" ;;
            124|137) status="TIMEOUT (killed after ${limit} s)" ;;
            *) status="FAILED (exit $rc)" ;;
        esac
        # quoted lines: pytest's ==== decoration dropped, table rows as "cell, cell, ...", one line
        result="$(grep -E "$pick" "$logfile" | tail -n 4 | sed -E 's/^=+ //; s/ =+$//; s/^\| //; s/ \|$//; s/ \| /, /g' \
                  | tr '\n' ';' | sed 's/;$//; s/;/; /g; s/|/\\|/g')"
    fi
    log "step $num: $status in ${seconds} s ${result:+- $result}"
    SUMMARY_ROWS+=("| $num. $title | $status | $rc | $seconds | $limit | $result |")
    {
        echo "## $num. $title"
        echo
        echo "- command: \`$cmd_text\`"
        echo "- status: **$status**, exit code $rc, $seconds s (limit $limit s)"
        echo "- raw log: \`$logname\`"
        echo
        local lines; lines=$(wc -l < "$logfile")
        if [ "$format" = markdown ] && [ "$status" = ok ]; then
            cat "$logfile"
        else
            echo '```'
            if [ "$lines" -gt 220 ]; then
                head -n 20 "$logfile"
                echo "... ($(( lines - 170 )) lines left out here; the raw log has them all) ..."
                tail -n 150 "$logfile"
            else
                cat "$logfile"
            fi
            echo '```'
        fi
        echo
    } > "$section"
    STEP_FILES+=("$section")
}

skip_step() {  # skip_step NUM TITLE LOGNAME REASON COMMAND_TEXT
    local num="$1" title="$2" logname="$3" reason="$4" cmd_text="$5"
    local section="$WORK/section_$num.md"
    echo "not run: $reason" > "$OUT_DIR/$logname"
    log "step $num: skipped ($reason)"
    SUMMARY_ROWS+=("| $num. $title | skipped ($reason) | - | 0 | - | |")
    printf '## %s. %s\n\n- command: `%s`\n- status: **skipped** (%s)\n\n' "$num" "$title" "$cmd_text" "$reason" > "$section"
    STEP_FILES+=("$section")
}

# --- environment: GPU, driver, CUDA, torch --------------------------------------------------------
log "mode: $MODE; report: $REPORT; budget ${BUDGET} s"
ENV_LOG="$OUT_DIR/env.log"
{
    echo "## nvidia-smi"
    if command -v nvidia-smi > /dev/null; then timeout 30 nvidia-smi 2>&1; else echo "nvidia-smi not found"; fi
    echo
    echo "## python / torch"
    timeout 60 "$PYTHON" - <<'EOF' 2>&1
import platform, sys
import torch
print(f"python {platform.python_version()} ({sys.executable})")
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuDNN "
      f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'none'}")
from importlib.metadata import PackageNotFoundError, version
for name in ("torchvision", "timm", "kornia", "numpy", "scikit-learn", "pytest"):
    try:
        print(f"{name} {version(name)}")
    except PackageNotFoundError:
        print(f"{name} not installed")
print(f"cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}, "
          f"{p.multi_processor_count} SMs; {torch.cuda.device_count()} device(s)")
print(f"cpu threads: {torch.get_num_threads()}")
EOF
} > "$ENV_LOG" 2>&1
q() { grep -m1 -E "$1" "$ENV_LOG" | sed -E "s/$1//"; }
GPU_LINE="none (nvidia-smi not found)"; DRIVER="none"; CUDA_DRIVER="-"
if command -v nvidia-smi > /dev/null; then
    GPU_LINE="$(timeout 30 nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n1)"
    DRIVER="$(timeout 30 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1)"
    CUDA_DRIVER="$(timeout 30 nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -n1 | sed 's/CUDA Version: //')"
fi
TORCH_LINE="$(q '^torch ')"
CUDA_AVAILABLE="$(q '^cuda available: ')"
DEVICE_LINE="$(q '^device 0: ')"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$COMMIT" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT="$COMMIT + uncommitted changes"
fi
if [ "$DRY" = 0 ] && [ "$CUDA_AVAILABLE" != "True" ]; then
    log "WARNING: torch sees no CUDA device; the steps will fail or skip (see env.log)"
fi

# --- the steps -----------------------------------------------------------------------------------
PYTEST_ARGS=(-m cuda tests/ -v -p no:cacheprovider --continue-on-collection-errors --basetemp "$WORK/pytest")
if "$PYTHON" -c "import pytest_timeout" > /dev/null 2>&1; then
    PYTEST_ARGS+=(--timeout 150)  # one hanging test fails alone instead of using up the step
fi
# on a GPU machine the CUDA tests must run: KMIX_REQUIRE_CUDA=1 turns "no CUDA" into failures, not skips
[ "$DRY" = 0 ] && export KMIX_REQUIRE_CUDA=1
run_step 1 "CUDA tests (pytest -m cuda)" 180 step1_cuda_tests.log code \
    '^=+ .*[0-9]+ (passed|failed|skipped|deselected|errors?)|no tests ran' -- \
    "$PYTHON" -m pytest "${PYTEST_ARGS[@]}"
unset KMIX_REQUIRE_CUDA

# 150 s: the `, compiled` rows compile their graphs in the warm-up rounds
run_step 2 "mixing cost (bench_mix.py)" 150 step2_bench_mix.log markdown '^target:' -- \
    "$PYTHON" benchmarks/bench_mix.py "${BENCH_ARGS[@]}"

run_step 3 "scoring vs plain inference (bench_score.py)" 60 step3_bench_score.log code '^target:' -- \
    "$PYTHON" benchmarks/bench_score.py "${BENCH_ARGS[@]}"

# last: the longest and least predictable step (its first CUDA run decodes CIFAR-10 into the cache)
TRAIN_TITLE="training throughput (bench_train_throughput.py)"
TRAIN_ARGS=("${BENCH_ARGS[@]}")
if [ "$DRY" = 0 ]; then
    for candidate in "$CIFAR10" shared/data/cifar10-jpg.tar.gz ../shared/data/cifar10-jpg.tar.gz \
                     .gpu-data/cifar10-jpg.tar.gz; do
        if [ -n "$candidate" ] && [ -e "$candidate" ]; then CIFAR10="$candidate"; break; fi
    done
    [ -n "$CIFAR10" ] && [ -e "$CIFAR10" ] && TRAIN_ARGS+=(--data-root "$CIFAR10")
fi
if [ ! -f benchmarks/bench_train_throughput.py ]; then
    skip_step 4 "$TRAIN_TITLE" step4_bench_train_throughput.log "benchmarks/bench_train_throughput.py not present" \
        "$PYTHON benchmarks/bench_train_throughput.py ${TRAIN_ARGS[*]}"
elif [ "$DRY" = 0 ] && { [ -z "$CIFAR10" ] || [ ! -e "$CIFAR10" ]; }; then
    skip_step 4 "$TRAIN_TITLE" step4_bench_train_throughput.log \
        "no CIFAR-10 source: pass --cifar10 PATH (cifar10-jpg.tar.gz, a JPEG tree or the pickle folder)" \
        "$PYTHON benchmarks/bench_train_throughput.py ${TRAIN_ARGS[*]}"
else
    run_step 4 "$TRAIN_TITLE" 150 step4_bench_train_throughput.log markdown '^target:|^\| [^|]+ \| \((b|c)\) ' -- \
        "$PYTHON" benchmarks/bench_train_throughput.py "${TRAIN_ARGS[@]}"
fi

# --- the report ------------------------------------------------------------------------------------
TOTAL=$(elapsed_s)
{
    echo "# kmix GPU check, $(date -u +%Y-%m-%d): ${GPU_LINE:-no GPU}"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| mode | $MODE |"
    echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
    echo "| GPU | ${GPU_LINE:-none}${DEVICE_LINE:+ ($DEVICE_LINE)} |"
    echo "| driver (CUDA it supports) | ${DRIVER:-none} (${CUDA_DRIVER:-?}) |"
    echo "| torch (its CUDA, cuDNN) | ${TORCH_LINE:-unknown} |"
    echo "| torch sees CUDA | ${CUDA_AVAILABLE:-unknown} |"
    for name in python torchvision timm kornia pytest; do
        echo "| $name | $(q "^$name " | sed 's/ (.*//') |"
    done
    echo "| kmix commit | $COMMIT |"
    echo "| host | $(uname -n), $(nproc 2>/dev/null || echo '?') CPUs |"
    echo "| command | \`bash benchmarks/gpu_check.sh$( [ "$DRY" = 1 ] && echo ' --dry-run') --budget $BUDGET\` (PYTHON=$PYTHON) |"
    echo "| total time | $TOTAL s (budget $BUDGET s) |"
    echo
    echo "## Summary"
    echo
    echo "| step | status | exit | seconds | limit s | result |"
    echo "|---|---|---:|---:|---:|---|"
    printf '%s\n' "${SUMMARY_ROWS[@]}"
    echo
    echo "Targets: DCutMix K=5 <= 2x a batch clone (bench_mix, both shapes); per call: DCutMix K=5 (per sample)"
    echo "<= timm's batch-mode CutMix at 256x3x32x32 and <= 3x a clone at 64x3x224x224 (bench_mix's second target"
    echo "line; the third, the same for compiled=True); scoring >= 0.95x plain inference for PreActResNet-18 at 32 px"
    echo "(bench_score); training >= 0.9x the ceiling (bench_train_throughput, 'vs ceiling' column). The mixing laws"
    echo "on CUDA are step 1's test_cuda_mix.py; compiled = eager on CUDA is its test_mix_compiled.py."
    echo
    cat "${STEP_FILES[@]}"
    echo "## Environment (env.log)"
    echo
    echo '```'
    cat "$ENV_LOG"
    echo '```'
} > "$REPORT"

echo
cat "$REPORT"
echo
echo "== gpu_check summary ($MODE; ${TOTAL} s; report $REPORT) =="
printf '%s\n' "${SUMMARY_ROWS[@]}"
FAILED=0
for row in "${SUMMARY_ROWS[@]}"; do
    case "$row" in *"| FAILED"*|*"| TIMEOUT"*) FAILED=1 ;; esac
done
exit $FAILED
