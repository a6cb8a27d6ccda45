#!/usr/bin/env bash
# The paper's CIFAR-10 comparison at GPU scale (issue 10): vanilla vs CutMix vs DCutMix (K=3, alpha=1/3)
# with resnet56 on a 10,000-image per-class random training subset, 2 seeds, bf16 + channels_last,
# evaluated on the 10,000 test images. Sized to finish in about 8 minutes on one H100-class GPU:
# it first measures the GPU's img/s, then gives the runs the longest schedule that fits (mixing is a
# regulariser; its gains need long schedules, so epochs beat more methods or a bigger model here).
#
#   benchmarks/repro_cifar10_gpu.sh CIFAR10 [--out DIR]     # CIFAR10: as kmix train --data-root (pickle
#                                                           # folder root, JPEG tree or its .tar.gz)
#   benchmarks/repro_cifar10_gpu.sh --dry-run [--out DIR]   # the whole script on CPU at tiny size (CI)
#
# Knobs (environment): MODEL=resnet56  METHODS="vanilla cutmix dcutmix"  SEEDS="0 1"  RATIO=0.2
# BUDGET_S=480 (whole script)  EPOCHS= (fixed epochs instead of sizing from the measured img/s)  PYTHON=python
# Uses the torch already installed and installs nothing; kmix comes from this checkout (PYTHONPATH=.).
# Rerunning with the same --out continues: the subset, the sizing (OUT/size.env) and finished runs are kept.
# Writes OUT/sweep/table.md, table.csv, curves.png (kmix table) and OUT/repro.json (GPU, torch, img/s).
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
NAME=repro
# shellcheck source=gpu_script_args.sh
. "$(dirname "$0")/gpu_script_args.sh"
MODEL=${MODEL:-resnet56}
METHODS=${METHODS:-"vanilla cutmix dcutmix"}
SEEDS=${SEEDS:-"0 1"}
RATIO=${RATIO:-0.2}
BUDGET_S=${BUDGET_S:-480}
EPOCHS=${EPOCHS:-}
START=$(date +%s)

if [ "$DRY" = 1 ]; then
  OUT=${OUT:-runs/repro_cifar10_dry}
  DEVICE=cpu
  AMP=none  # bf16 autocast is emulated on most CPUs (8x slower than fp32 here): the dry run checks the plumbing
  export KMIX_CACHE_DIR=${KMIX_CACHE_DIR:-$OUT/cache}  # the decoded-image cache stays inside OUT
  if [ -z "$DATA" ]; then  # a tiny copy of the shared CIFAR-10 tarball's layout (JPEG tree in a .tar.gz)
    DATA=$OUT/tiny/cifar10-tiny.tar.gz
    [ -f "$DATA" ] || "$PY" benchmarks/repro_support.py tiny-cifar10 "$OUT/tiny" >/dev/null
  fi
  RATIO=0.5
  EPOCHS=${EPOCHS:-2}
  TINY_TRAIN=(--batch-size 16 --threads 1)
  TINY_SWEEP=(--set batch_size=16 --set limit_train_batches=2 --set threads=1)
  MEASURE_BATCHES=2
else
  OUT=${OUT:-runs/repro_cifar10_gpu}
  DEVICE=cuda
  AMP=bf16
  [ -n "$DATA" ] || { echo "repro: give the CIFAR-10 path (pickle folder root, JPEG tree or .tar.gz)" >&2; exit 2; }
  [ -e "$DATA" ] || { echo "repro: CIFAR-10 path not found: $DATA" >&2; exit 2; }
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "repro: no CUDA GPU visible to torch; use --dry-run for the CPU check" >&2; exit 2; }
  TINY_TRAIN=()
  TINY_SWEEP=()
  MEASURE_BATCHES=100
fi
for m in $METHODS; do
  [ -f "recipes/cifar10_${MODEL}_${m}.yaml" ] || { echo "repro: no recipe recipes/cifar10_${MODEL}_${m}.yaml" >&2; exit 2; }
done
mkdir -p "$OUT"
echo "repro: model $MODEL, methods $METHODS, seeds $SEEDS, data $DATA, device $DEVICE, amp $AMP, out $OUT"

# 1. the training subset: RATIO of every class, at random (seed 0), the same for every run
[ -f "$OUT/subset.json" ] || "$PY" -m kmix subsample --by random --ratio "$RATIO" --seed 0 --data cifar10 \
  --data-root "$DATA" --device "$DEVICE" --quiet --out "$OUT/subset.json"

# 2. measure img/s on the most expensive method, then size the schedule to the budget left (kept in size.env)
if [ ! -f "$OUT/size.env" ]; then
  rm -rf "$OUT/measure"
  "$PY" -m kmix train --recipe "recipes/cifar10_${MODEL}_dcutmix.yaml" --data-root "$DATA" \
    --subset "$OUT/subset.json" --epochs 1 --schedule constant --limit-train-batches "$MEASURE_BATCHES" \
    --device "$DEVICE" --amp "$AMP" --channels-last --no-tensorboard --no-plot --quiet --out "$OUT/measure" ${TINY_TRAIN[@]+"${TINY_TRAIN[@]}"} \
    >/dev/null 2>"$OUT/measure.log" || { cat "$OUT/measure.log" >&2; exit 1; }
  n_runs=$(( $(echo $METHODS | wc -w) * $(echo $SEEDS | wc -w) ))
  "$PY" benchmarks/repro_support.py size --measure "$OUT/measure" --subset "$OUT/subset.json" --runs "$n_runs" \
    --budget-s "$BUDGET_S" --elapsed-s $(( $(date +%s) - START )) ${EPOCHS:+--epochs "$EPOCHS"} > "$OUT/size.env.tmp"
  mv "$OUT/size.env.tmp" "$OUT/size.env"
fi
# shellcheck disable=SC1091
. "$OUT/size.env"
echo "repro: measured $MEASURED_IMG_PER_S img/s -> $EPOCHS epochs, $SCHEDULE lr (x0.1 at $MILESTONES), eval every $EVAL_EVERY"

# 3. the comparison: recipes x seeds, resumable; ends with OUT/sweep/table.md, table.csv, curves.png
RECIPES=()
for m in $METHODS; do RECIPES+=("recipes/cifar10_${MODEL}_${m}.yaml"); done
# shellcheck disable=SC2086
"$PY" -m kmix sweep --recipe "${RECIPES[@]}" --seeds $SEEDS --out "$OUT/sweep" \
  --set data_root="$DATA" --set subset="$OUT/subset.json" --set device="$DEVICE" --set amp="$AMP" \
  --set channels_last=true --set epochs="$EPOCHS" --set schedule="$SCHEDULE" --set milestones="$MILESTONES" \
  --set eval_every="$EVAL_EVERY" --set tensorboard=false ${TINY_SWEEP[@]+"${TINY_SWEEP[@]}"}

"$PY" benchmarks/repro_support.py record --out "$OUT/repro.json" --measure "$OUT/measure" --size "$OUT/size.env" \
  --wall-s $(( $(date +%s) - START )) >/dev/null
echo
cat "$OUT/sweep/table.md"
echo "repro: done in $(( $(date +%s) - START )) s; $OUT/sweep/table.md, $OUT/repro.json"
