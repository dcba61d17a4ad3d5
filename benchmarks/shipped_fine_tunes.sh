#!/usr/bin/env bash
# Goal 1 levers of the fusion work (docs/fusion.md) on top of the shipped model: trains it on
# for 2 epochs with its own stage-2 schedule, once per lever and once without any (the
# control), then evaluates each with every sensor subset on the validation seeds and then on
# the test seeds. Safe to rerun: a finished training is skipped, an interrupted one resumes, a
# finished evaluation is kept.
#
#   bash benchmarks/shipped_fine_tunes.sh                     # two runs at a time (~1 h here)
#   RUNS="sim_fusion_camera_lidar_radar_lidar_depth" bash benchmarks/shipped_fine_tunes.sh
#   SEED=1 bash benchmarks/shipped_fine_tunes.sh   # train.seed 1, runs named <config>_seed1
#
# The runs: sim_fusion_camera_lidar_radar_film (FiLM on the presence flags),
# sim_fusion_camera_lidar_radar_lidar_depth (the camera's lidar depth prior),
# sim_fusion_camera_lidar_radar_lidar_free_decoder (a second BEV decoder for the samples
# without lidar) and sim_fusion_camera_lidar_radar_continued (the control).
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
EPOCHS=2
OUT=${OUT:-outputs/eval/shipped_fine_tunes}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
ALL_RUNS="sim_fusion_camera_lidar_radar_film sim_fusion_camera_lidar_radar_lidar_depth \
          sim_fusion_camera_lidar_radar_lidar_free_decoder sim_fusion_camera_lidar_radar_continued"
read -r -a RUNS <<<"${RUNS:-$ALL_RUNS}"

run() { fine_tune "$1" "$EPOCHS"; }  # then every sensor subset on val and on test

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  parallel "${RUNS[@]/#/run }"
  echo "shipped fine-tunes: $OUT"
}

main "$@"; exit $?
