#!/usr/bin/env bash
# The fusion-taxonomy benchmark (docs/fusion.md): trains every fusion level on the same
# simulator frames with the same staged budget, then evaluates each on the held-out test seeds
# with every modality subset and the misaligned rows. Safe to rerun: a finished training is
# skipped, an interrupted one resumes from its last checkpoint, and an evaluation whose
# metrics.json exists is not repeated.
#
#   bash benchmarks/fusion_taxonomy.sh            # everything, two runs at a time
#   JOBS=1 bash benchmarks/fusion_taxonomy.sh     # one run at a time
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
OUT=${OUT:-outputs/eval/taxonomy}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

train() {  # train CONFIG_NAME: train once, resuming an interrupted run
  local name=$1 dir=outputs/train/$1
  [[ -f $dir/.done ]] && return 0
  local resume=()
  [[ -f $dir/checkpoints/last.pt ]] && resume=(--resume "$dir/checkpoints/last.pt")
  mkdir -p "$dir"
  "$PERCEPTION" train "configs/models/$name.yaml" "${resume[@]}" >"$dir/train.log" 2>&1
  touch "$dir/.done"
}

evaluate() {  # evaluate CONFIG_NAME: test seeds, every subset, misaligned rows
  local name=$1
  [[ -f $OUT/$name/metrics.json ]] && return 0
  "$PERCEPTION" eval "configs/models/$name.yaml" "outputs/train/$name/checkpoints/last.pt" \
    --split test --single --misaligned --out "$OUT/$name" >"$OUT/$name.log" 2>&1
}

parallel() {  # run "$@" as commands, at most JOBS at a time; fail if any failed
  local pids=() status=0
  for cmd in "$@"; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || status=1; done
    $cmd & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return $status
}

"$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
# 1. the single-modality models every fusion level starts from
parallel "train sim_cpu_lidar" "train sim_cpu_camera" "train sim_cpu_radar"
# 2. the fusion levels and the equal-budget lidar control, same fine-tune budget
FUSED=(sim_cpu_early_painting sim_cpu_camera_lidar_radar sim_cpu_camera_lidar_radar_gated
       sim_cpu_late sim_cpu_lidar_continued)
parallel "${FUSED[@]/#/train }"
# 3. every model on the test seeds
mkdir -p "$OUT"
ALL=(sim_cpu_lidar sim_cpu_camera sim_cpu_radar "${FUSED[@]}")
parallel "${ALL[@]/#/evaluate }"
echo "fusion taxonomy: metrics in $OUT/<config>/metrics.json"
