#!/usr/bin/env bash
# Goal 2 of the fusion work (docs/fusion.md): does the camera earn its place? Trains camera
# specialists with one lever each (3 epochs, as the half-budget taxonomy) and evaluates them on
# the validation seeds, at Waymo's IoU and at IoU 0.3 (coarse localisation); then fine-tunes
# camera+lidar from the lidar specialist and a lever camera (2 epochs) beside the lidar control
# fine-tuned with the same schedule, on the validation and then the test seeds. Safe to rerun:
# a finished training is skipped, an interrupted one resumes, a finished evaluation is kept.
#
#   bash benchmarks/camera_levers.sh                                # every lever (~4 h here)
#   LEVERS="sim_cpu_camera_aware_depth" bash benchmarks/camera_levers.sh
#   JOBS=1 bash benchmarks/camera_levers.sh                         # one run at a time
#
# Camera+lidar fine-tunes run for each lever named in LEVERS that has one
# (configs/models/sim_cpu_camera_lidar_<lever>[_<variant>].yaml for each variant in VARIANTS:
# plain, the lever alone; no_dropout, without modality dropout; camera_dropout, with dropout on
# the camera alone; lidar_depth, that and the lidar depth prior).
#
#   LEVERS=sim_cpu_camera_hires_light VARIANTS="camera_dropout lidar_depth" \
#     bash benchmarks/camera_levers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
SPECIALIST_EPOCHS=3 FUSED_EPOCHS=2   # the half-budget taxonomy's stages
OUT=${OUT:-outputs/eval/camera_levers}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
ALL_LEVERS="sim_cpu_camera sim_cpu_camera_depth_bins_0_5 sim_cpu_camera_depth_loss_3 \
            sim_cpu_camera_depth_levers sim_cpu_camera_hires_light sim_cpu_camera_aware_depth \
            sim_cpu_camera_hires_light_stride4"
read -r -a LEVERS <<<"${LEVERS:-$ALL_LEVERS}"
read -r -a VARIANTS <<<"${VARIANTS:-plain no_dropout camera_dropout lidar_depth}"

lever() {  # a camera specialist with one lever: train, then both IoU rows on val
  train "$1" "$SPECIALIST_EPOCHS" &&
    evaluate "$1" val "$1" --no-ablations &&
    evaluate "$1" val "${1}_iou03" --no-ablations --iou 0.3 0.3 0.3
}

fused() {  # a fine-tune: train, then val (every modality and each removed) and test
  train "$1" "$FUSED_EPOCHS" && evaluate "$1" val "$1" && evaluate "$1" test "$1" --single
}

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  # 1. the lidar specialist and its control, beside the camera levers
  parallel "train sim_cpu_lidar $SPECIALIST_EPOCHS && fused sim_cpu_lidar_continued" \
           "${LEVERS[@]/#/lever }"
  # 2. camera+lidar from each lever that has a fine-tune config
  local fine=() lever variant name
  for lever in "${LEVERS[@]}"; do
    for variant in "${VARIANTS[@]}"; do
      name=sim_cpu_camera_lidar_${lever#sim_cpu_camera_}
      [[ $variant == plain ]] || name+=_$variant
      [[ -f configs/models/$name.yaml ]] && fine+=("fused $name")
    done
  done
  (( ${#fine[@]} )) && parallel "${fine[@]}"
  echo "camera levers: $OUT"
}

main "$@"; exit $?
