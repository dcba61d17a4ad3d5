#!/usr/bin/env bash
# The shipped model and its 2-epoch fine-tunes of docs/fusion.md (benchmarks/shipped_fine_tunes.sh
# and benchmarks/distill.sh) with every sensor present, on four times the validation frames
# (configs/models/sim_fusion_camera_lidar_radar_wide_val.yaml: seeds 1000-1015, 640 frames, 43
# cyclists against 11). It tells apart fine-tunes that the 160 validation frames cannot on
# cyclists. The fine-tunes with a decoder of their own have another network and are not among
# them. Runs whose checkpoint is missing are skipped with a note; a finished evaluation is kept.
#
#   bash benchmarks/wide_val.sh          # ~3 min per model, two at a time
#   RUNS="sim_fusion_camera_lidar_radar_distill" bash benchmarks/wide_val.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
OUT=${OUT:-outputs/eval/wide_val}
CONFIG=sim_fusion_camera_lidar_radar_wide_val
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
P=sim_fusion_camera_lidar_radar
ALL_RUNS="${P}_continued ${P}_continued_seed1 ${P}_distill ${P}_distill_seed1 \
          ${P}_distill_camera ${P}_distill_camera_seed1 ${P}_distill_weight_0_5 \
          ${P}_distill_weight_2 ${P}_distill_label_floor ${P}_distill_label_floor_seed1 \
          ${P}_distill_no_cyclists ${P}_distill_no_cyclists_seed1 ${P}_distill_vehicles \
          ${P}_distill_vehicles_seed1"
read -r -a RUNS <<<"${RUNS:-$ALL_RUNS}"

shipped() {  # the weights file as it ships
  CKPT=perception/weights/sim_fusion.pt evaluate "$CONFIG" val shipped --no-ablations
}

fine_tuned() {  # fine_tuned RUN: the last checkpoint of outputs/train/RUN
  if [[ ! -f outputs/train/$1/checkpoints/last.pt ]]; then
    echo "skipped $1: outputs/train/$1/checkpoints/last.pt is missing" >&2
    return 0
  fi
  RUN=$1 evaluate "$CONFIG" val "$1" --no-ablations
}

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train "configs/models/$CONFIG.yaml" --prepare-data >/dev/null
  parallel shipped "${RUNS[@]/#/fine_tuned }"
  echo "wide validation: $OUT"
}

main "$@"; exit $?
