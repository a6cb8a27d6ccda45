#!/usr/bin/env bash
# Issue 12's CIFAR-10 pruning table at GPU scale: random, kmix-cv top, kmix-cv CCS, EL2N CCS, forgetting
# CCS and AUM CCS at 10/30/50% kept, 2 seeds, resnet20, bf16 + channels_last, every run the same epochs
# (BUDGET=steps or both for equal steps). Sized to finish in about 5 minutes on one H100: it first
# measures the GPU's img/s and a run's start-up cost in-process, then gives every run the most epochs
# that fit (kmix prune-curve then trains 2 full-data runs, scores once per method, 36 subset runs).
#
#   benchmarks/prune_cifar10_gpu.sh CIFAR10 [--out DIR]     # CIFAR10: as kmix train --data-root (pickle
#                                                           # folder root, JPEG tree or its .tar.gz)
#   benchmarks/prune_cifar10_gpu.sh --dry-run [--out DIR]   # the whole script on CPU at tiny size (CI)
#
# Knobs (environment): MODEL=resnet20  MIX=none  BATCH=256  LR=0.2  SEEDS=0,1  RATIOS=0.1,0.3,0.5
# METHODS=random,cv,cv:ccs,el2n:ccs,forgetting:ccs,aum:ccs  BUDGET=epochs|steps|both  BUDGET_S=300 (whole
# script; equal steps costs ~3x equal epochs: give BUDGET=both about 900)  EPOCHS= (fixed epochs instead
# of sizing from the measured speed)  PYTHON=python
# Uses the torch already installed and installs nothing; kmix comes from this checkout (PYTHONPATH=.).
# Rerunning with the same --out continues: the sizing (OUT/size.env), scores and finished runs are kept.
# Writes OUT/curve/curve.md (the table, mean +- std over seeds), curve.csv, curve.png, runs.csv and
# OUT/prune.json (GPU, torch, measured img/s, epochs, wall time).
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
NAME=prune
# shellcheck source=gpu_script_args.sh
. "$(dirname "$0")/gpu_script_args.sh"
MODEL=${MODEL:-resnet20}
MIX=${MIX:-none}
SEEDS=${SEEDS:-0,1}
RATIOS=${RATIOS:-0.1,0.3,0.5}
METHODS=${METHODS:-random,cv,cv:ccs,el2n:ccs,forgetting:ccs,aum:ccs}
BUDGET=${BUDGET:-epochs}
BUDGET_S=${BUDGET_S:-300}
EPOCHS=${EPOCHS:-}
EVALS=2  # evaluations per run (the last epoch always): the table reads the last epoch's test error
START=$(date +%s)

if [ "$DRY" = 1 ]; then
  OUT=${OUT:-runs/prune_cifar10_dry}
  DEVICE=cpu
  AMP=none  # bf16 autocast is emulated on most CPUs: the dry run checks the plumbing, not the speed
  CL=()
  export KMIX_CACHE_DIR=${KMIX_CACHE_DIR:-$OUT/cache}  # the decoded-image cache stays inside OUT
  if [ -z "$DATA" ]; then  # 10 + 2 random JPEGs per class in the shared copy's layout (a .tar.gz)
    DATA=$OUT/tiny/cifar10-tiny.tar.gz
    [ -f "$DATA" ] || "$PY" benchmarks/repro_support.py tiny-cifar10 "$OUT/tiny" >/dev/null
  fi
  BATCH=${BATCH:-10}  # 100 training images: every image is seen each epoch, so its dynamics are complete
  LR=${LR:-0.1}
  EPOCHS=${EPOCHS:-2}
  EXTRA=(--threads 1)
  MEASURE=(--batches 2 --threads 1)
else
  OUT=${OUT:-runs/prune_cifar10_gpu}
  DEVICE=cuda
  AMP=bf16
  CL=(--channels-last)
  [ -n "$DATA" ] || { echo "prune: give the CIFAR-10 path (pickle folder root, JPEG tree or .tar.gz)" >&2; exit 2; }
  [ -e "$DATA" ] || { echo "prune: CIFAR-10 path not found: $DATA" >&2; exit 2; }
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "prune: no CUDA GPU visible to torch; use --dry-run for the CPU check" >&2; exit 2; }
  BATCH=${BATCH:-256}  # resnet20 is launch-bound at 128 on a big GPU; lr scaled linearly from 0.1 at 128
  LR=${LR:-0.2}
  EXTRA=()
  MEASURE=(--batches 100)
fi
mkdir -p "$OUT"
echo "prune: model $MODEL, mix $MIX, methods $METHODS, ratios $RATIOS, seeds $SEEDS, budget $BUDGET," \
     "data $DATA, device $DEVICE, amp $AMP, out $OUT"

# 1. measure img/s and a run's start-up in one process (the first of two runs warms cache, device and cudnn),
#    then size the epochs to what is left of the budget (kept in size.env, so a rerun trains the same curve)
if [ ! -f "$OUT/size.env" ]; then
  rm -rf "$OUT/measure"
  "$PY" benchmarks/prune_support.py measure --out "$OUT/measure" --data-root "$DATA" --model "$MODEL" --mix "$MIX" \
    --batch-size "$BATCH" --amp "$AMP" ${CL[@]+"${CL[@]}"} --device "$DEVICE" "${MEASURE[@]}" \
    >/dev/null 2>"$OUT/measure.log" || { cat "$OUT/measure.log" >&2; exit 1; }
  "$PY" benchmarks/prune_support.py size --measure "$OUT/measure/measure.json" --methods "$METHODS" \
    --ratios "$RATIOS" --seeds "$SEEDS" --budgets "$BUDGET" --evals-per-run "$EVALS" --budget-s "$BUDGET_S" \
    --elapsed-s $(( $(date +%s) - START )) > "$OUT/size.env.tmp"
  [ -z "$EPOCHS" ] || sed -i "s/^EPOCHS=.*/EPOCHS=$EPOCHS/" "$OUT/size.env.tmp"
  mv "$OUT/size.env.tmp" "$OUT/size.env"
fi
# shellcheck disable=SC1091
. "$OUT/size.env"
echo "prune: measured $MEASURED_IMG_PER_S img/s, ${RUN_OVERHEAD_S} s start-up per run -> $EPOCHS epochs per run"

# 2. the curve: full-data runs (seed 0 recorded for forgetting/AUM, its last.pt scores kmix-cv and EL2N),
#    one scoring run per method, then every (budget, method, ratio, seed); resumable
"$PY" -m kmix prune-curve --data cifar10 --data-root "$DATA" --model "$MODEL" --mix "$MIX" --methods "$METHODS" \
  --ratios "$RATIOS" --seeds "$SEEDS" --epochs "$EPOCHS" --budget "$BUDGET" --batch-size "$BATCH" --lr "$LR" \
  --amp "$AMP" ${CL[@]+"${CL[@]}"} --evals-per-run "$EVALS" --device "$DEVICE" --out "$OUT/curve" --quiet \
  ${EXTRA[@]+"${EXTRA[@]}"} > "$OUT/curve.log"

"$PY" benchmarks/prune_support.py record --out "$OUT/prune.json" --measure "$OUT/measure/measure.json" \
  --epochs "$EPOCHS" --wall-s $(( $(date +%s) - START )) >/dev/null
echo
cat "$OUT/curve/curve.md"
echo "prune: done in $(( $(date +%s) - START )) s; $OUT/curve/curve.md, $OUT/prune.json"
