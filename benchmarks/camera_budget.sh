#!/usr/bin/env bash
# Goal 2 of the fusion work (docs/fusion.md) at the shipped camera's budget: the 384x256
# camera specialist trained 6 epochs instead of 3 (`sim_cpu_camera_hires_light_6ep`),
# evaluated alone on the validation seeds (Waymo IoU and IoU 0.3) and the test seeds; then
# camera+lidar fine-tuned from it and the 3-epoch lidar specialist (2 epochs, as
# camera_levers.sh), with the lidar depth prior for train.seed 0 and 1 and without it for
# seed 0 (`seeded` in runs.sh), each on the validation and test seeds. The lidar control
# they are compared with is camera_levers.sh's and seed_spread.sh's
# `sim_cpu_lidar_continued`. Safe to rerun, as the other scripts.
#
#   bash benchmarks/camera_budget.sh
#   FINE="sim_cpu_camera_lidar_hires_light_6ep_lidar_depth:2" bash benchmarks/camera_budget.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
CAMERA_EPOCHS=6 LIDAR_EPOCHS=3 FUSED_EPOCHS=2
OUT=${OUT:-outputs/eval/camera_budget}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
CAMERA=sim_cpu_camera_hires_light_6ep
PRIOR=sim_cpu_camera_lidar_hires_light_6ep_lidar_depth
DROPOUT=sim_cpu_camera_lidar_hires_light_6ep_camera_dropout
read -r -a FINE <<<"${FINE:-$PRIOR:0 $PRIOR:1 $DROPOUT:0}"   # CONFIG:SEED, in starting order

camera() {  # the specialist: train, then both IoU rows on val and the test row
  train "$CAMERA" "$CAMERA_EPOCHS" &&
    evaluate "$CAMERA" val "$CAMERA" --no-ablations &&
    evaluate "$CAMERA" val "${CAMERA}_iou03" --no-ablations --iou 0.3 0.3 0.3 &&
    evaluate "$CAMERA" test "$CAMERA" --no-ablations
}

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  parallel "train sim_cpu_lidar $LIDAR_EPOCHS" "camera"
  local fine=("${FINE[@]/#/seeded }")   # CONFIG:SEED -> seeded CONFIG EPOCHS SEED
  parallel "${fine[@]/:/ $FUSED_EPOCHS }"
  echo "camera budget: $OUT"
}

main "$@"; exit $?
