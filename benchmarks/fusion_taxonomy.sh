#!/usr/bin/env bash
# The fusion-taxonomy benchmark (docs/fusion.md): trains every fusion level on the same
# simulator frames with the same staged budget, then evaluates each on the held-out test seeds
# with every modality subset and the misaligned rows. Safe to rerun: a finished training is
# skipped, an interrupted one resumes from its last checkpoint, and an evaluation whose
# metrics.json exists is not repeated.
#
#   bash benchmarks/fusion_taxonomy.sh               # full budget, two runs at a time (~6 h)
#   BUDGET=half bash benchmarks/fusion_taxonomy.sh   # half the epochs at every stage (~2 h)
#   JOBS=1 bash benchmarks/fusion_taxonomy.sh        # one run at a time
#
# The budget is per stage: the specialists (lidar, camera, radar alone) train SPECIALIST_EPOCHS,
# every fusion level and the lidar control are fine-tuned FUSED_EPOCHS from them. Each run
# records its epochs in .done, so runs of two budgets never mix in one table.
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
BUDGET=${BUDGET:-full}
case $BUDGET in
  full) SPECIALIST_EPOCHS=6 FUSED_EPOCHS=4 ;;
  half) SPECIALIST_EPOCHS=3 FUSED_EPOCHS=2 ;;
  *) echo "BUDGET must be full or half, not '$BUDGET'" >&2; exit 2 ;;
esac
OUT=${OUT:-outputs/eval/taxonomy_$BUDGET}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
SPECIALISTS=(sim_cpu_lidar sim_cpu_camera sim_cpu_radar)
FUSED=(sim_cpu_early_painting sim_cpu_camera_lidar_radar sim_cpu_camera_lidar_radar_gated
       sim_cpu_late sim_cpu_lidar_continued)

specialist() { train "$1" "$SPECIALIST_EPOCHS"; }
fused() { train "$1" "$FUSED_EPOCHS"; }

evaluate() {  # evaluate CONFIG_NAME [nms|wbf]: test seeds, every subset, misaligned rows
  local name=$1 merge=${2:-} row=$1 extra=()
  [[ -n $merge ]] && row=${name}_$merge extra=(--late-merge "$merge")
  [[ -f $OUT/$row/metrics.json ]] && return 0
  echo "$(date +%T) evaluate $row"
  if ! "$PERCEPTION" eval "configs/models/$name.yaml" "outputs/train/$name/checkpoints/last.pt" \
      --split test --single --misaligned "${extra[@]}" --out "$OUT/$row" --no-plots \
      >"$OUT/$row.log" 2>&1; then
    echo "$(date +%T) evaluating $row failed: $OUT/$row.log" >&2
    return 1
  fi
}

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  mkdir -p "$OUT"
  # 1. the single-modality models every level starts from, then the lidar control, which needs
  #    only the lidar one: two chains of about the same length on two cores
  parallel "specialist sim_cpu_lidar && specialist sim_cpu_radar" \
           "specialist sim_cpu_camera && fused sim_cpu_lidar_continued"
  # 2. the fusion levels, same fine-tune budget; the longest first
  parallel "fused sim_cpu_late" "fused sim_cpu_camera_lidar_radar" \
           "fused sim_cpu_camera_lidar_radar_gated" "fused sim_cpu_early_painting"
  # 3. every model on the test seeds, then the table (with CPU latency and parameters)
  # (late fusion's box merge runs at decode time: one trained model, evaluated with both merges)
  ALL=("${FUSED[@]}" "sim_cpu_late nms" "${SPECIALISTS[@]}")
  parallel "${ALL[@]/#/evaluate }"
  .venv/bin/python -m benchmarks.fusion_taxonomy_table --eval-dir "$OUT" \
    --budget "$BUDGET: specialists $SPECIALIST_EPOCHS epochs, fine-tunes $FUSED_EPOCHS" \
    --out "$OUT/table.md"
  echo "fusion taxonomy: $OUT/table.md"
}

main "$@"; exit $?
