#!/usr/bin/env bash
# Goal 1 lever of the fusion work (docs/fusion.md): FiLM on the presence flags. Trains the
# shipped model on for 2 epochs with its own stage-2 schedule, with FiLM
# (sim_fusion_camera_lidar_radar_film) and without (sim_fusion_camera_lidar_radar_continued,
# the control), then evaluates both with every sensor subset on the validation seeds and then
# on the test seeds. Safe to rerun: a finished training is skipped, an interrupted one
# resumes, a finished evaluation is kept.
#
#   bash benchmarks/presence_film.sh          # two runs at a time (~1 h here)
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
EPOCHS=2
OUT=${OUT:-outputs/eval/presence_film}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
RUNS=(sim_fusion_camera_lidar_radar_film sim_fusion_camera_lidar_radar_continued)

run() {  # train, then every sensor subset on the validation and then the test seeds
  train "$1" "$EPOCHS" && evaluate "$1" val "$1" --single && evaluate "$1" test "$1" --single
}

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  parallel "${RUNS[@]/#/run }"
  echo "presence film: $OUT"
}

main "$@"; exit $?
