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

evaluate() {  # evaluate CONFIG_NAME SPLIT: every sensor subset
  local name=$1 split=$2 dir=$OUT/$2/$1
  [[ -f $dir/metrics.json ]] && return 0
  mkdir -p "$OUT/$split"
  echo "$(date +%T) evaluate $name on $split"
  if ! "$PERCEPTION" eval "configs/models/$name.yaml" "outputs/train/$name/checkpoints/last.pt" \
      --split "$split" --single \
      --no-plots --no-tracking --out "$dir" >"$dir.log" 2>&1; then
    echo "$(date +%T) evaluating $name on $split failed: $dir.log" >&2
    return 1
  fi
}

run() { train "$1" "$EPOCHS" && evaluate "$1" val && evaluate "$1" test; }

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  parallel "${RUNS[@]/#/run }"
  echo "presence film: $OUT"
}

main "$@"; exit $?
