#!/usr/bin/env bash
# Goal 1 lever of the fusion work (docs/fusion.md): distillation from the specialists into the
# shipped model. Trains the specialists of the shipped recipe again (lidar 6 epochs, camera 6,
# radar 3; their val and test rows are the references of the 90 % bar), then trains the shipped
# model on for 2 epochs with the camera and radar specialists as teachers and evaluates it with
# every sensor subset on the validation and then the test seeds. The students:
# sim_fusion_camera_lidar_radar_distill (the shipped network) and
# sim_fusion_camera_lidar_radar_distill_own_decoder (with a decoder of its own for the samples
# without lidar), sim_fusion_camera_lidar_radar_distill_camera (the camera teacher alone) and
# sim_fusion_camera_lidar_radar_distill_weight_0_5 and _weight_2 (the term weighted 0.5 and 2)
# and sim_fusion_camera_lidar_radar_distill_label_floor (the target raised to the labels) and
# sim_fusion_camera_lidar_radar_distill_no_cyclists (vehicles and pedestrians distilled only) and
# sim_fusion_camera_lidar_radar_distill_vehicles (vehicles distilled only).
# Their controls are sim_fusion_camera_lidar_radar_continued and
# sim_fusion_camera_lidar_radar_lidar_free_decoder of benchmarks/shipped_fine_tunes.sh (the
# same training without teachers). Safe to rerun: a finished training is skipped, an interrupted
# one resumes, a finished evaluation is kept.
#
#   bash benchmarks/distill.sh           # ~35 min of specialists, then ~20 min per student
#   SEED=1 bash benchmarks/distill.sh    # the students with train.seed 1 (runs <config>_seed1)
#   RUNS=sim_fusion_camera_lidar_radar_distill bash benchmarks/distill.sh   # one student
set -euo pipefail
cd "$(dirname "$0")/.."
PERCEPTION=${PERCEPTION:-.venv/bin/perception}
JOBS=${JOBS:-2}
OUT=${OUT:-outputs/eval/distill}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
source benchmarks/runs.sh
ALL_RUNS="sim_fusion_camera_lidar_radar_distill sim_fusion_camera_lidar_radar_distill_own_decoder \
          sim_fusion_camera_lidar_radar_distill_camera sim_fusion_camera_lidar_radar_distill_weight_0_5 \
          sim_fusion_camera_lidar_radar_distill_weight_2 sim_fusion_camera_lidar_radar_distill_label_floor \
          sim_fusion_camera_lidar_radar_distill_no_cyclists sim_fusion_camera_lidar_radar_distill_vehicles"
read -r -a RUNS <<<"${RUNS:-$ALL_RUNS}"

specialist() {  # specialist CONFIG_NAME EPOCHS RUN: train, then val and test with its sensor
  train "$1" "$2" "$3" && RUN=$3 evaluate "$1" val "$3" && RUN=$3 evaluate "$1" test "$3"
}

student() { fine_tune "$1" 2; }  # the distilled fine-tune, then every sensor subset

main() {  # one function, parsed whole before it runs: editing this file mid-run is safe
  "$PERCEPTION" train configs/models/sim_cpu_lidar.yaml --prepare-data >/dev/null
  parallel "specialist sim_cpu_lidar 6 sim_cpu_lidar_6ep && specialist sim_cpu_radar 3 sim_cpu_radar_3ep" \
           "specialist sim_cpu_camera 6 sim_cpu_camera_6ep"
  parallel "${RUNS[@]/#/student }"
  echo "distillation: $OUT"
}

main "$@"; exit $?
