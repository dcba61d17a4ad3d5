#!/usr/bin/env bash
# How far does the same config move between runs? Trains fine-tunes of the fusion work
# (docs/fusion.md) again with another train.seed (`perception train --seed`: another data order,
# augmentation and modality dropout draw, the same starting weights) into
# outputs/train/<config>_seed<SEED>, and evaluates them as camera_levers.sh does (validation
# with each sensor removed, then the test seeds). Needs the checkpoints the configs start from
# (bash benchmarks/camera_levers.sh trains them). Safe to rerun, as the other scripts.
#
#   bash benchmarks/seed_spread.sh                    # the lidar control and the lidar depth prior
#   SEED=2 RUNS="sim_cpu_camera_lidar_hires_light_camera_dropout" bash benchmarks/seed_spread.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
EPOCHS=2   # the half-budget taxonomy's fine-tune
SEED=${SEED:-1}
OUT=${OUT:-outputs/eval/seed_spread}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
read -r -a RUNS <<<"${RUNS:-sim_cpu_lidar_continued sim_cpu_camera_lidar_hires_light_lidar_depth}"

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  local runs=("${RUNS[@]/#/seeded }")
  parallel "${runs[@]/%/ $EPOCHS $SEED}"
  echo "seed spread: $OUT"
}

main "$@"; exit $?
