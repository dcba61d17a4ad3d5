# Shared by the training benchmarks (fusion_taxonomy.sh, camera_levers.sh, shipped_fine_tunes.sh):
# source it after setting PERCEPTION and JOBS (and OUT for evaluate).

train() {  # train CONFIG_NAME EPOCHS [RUN [perception train flags...]]: train once into
           # outputs/train/RUN (default CONFIG_NAME), resuming an interrupted run
  local name=$1 epochs=$2 run=${3:-$1}
  local dir=outputs/train/$run
  shift $(( $# < 3 ? $# : 3 ))
  if [[ -f $dir/.done ]]; then
    [[ $(cat "$dir/.done") == "epochs $epochs" ]] && return 0
    echo "$dir was trained with '$(cat "$dir/.done")', not 'epochs $epochs':" \
         "move it away to train this budget" >&2
    return 1
  fi
  local resume=()
  [[ -f $dir/checkpoints/last.pt ]] && resume=(--resume "$dir/checkpoints/last.pt")
  mkdir -p "$dir"
  echo "$(date +%T) train $run ($epochs epochs)"
  # explicit checks: set -e does not apply inside a function called from an && list
  if ! "$PERCEPTION" train "configs/models/$name.yaml" --epochs "$epochs" --out "$dir" \
      "${resume[@]}" "$@" >>"$dir/train.log" 2>&1; then
    echo "$(date +%T) training $run failed: $dir/train.log" >&2
    return 1
  fi
  echo "epochs $epochs" >"$dir/.done"
  echo "$(date +%T) trained $run"
}

parallel() {  # run "$@" as commands, at most JOBS at a time; fail if any failed
  local pids=() status=0
  for cmd in "$@"; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || status=1; done
    eval "$cmd" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return $status
}

evaluate() {  # evaluate CONFIG_NAME SPLIT ROW [perception eval flags...]: to $OUT/SPLIT/ROW,
              # the checkpoint of outputs/train/$RUN (default CONFIG_NAME), or the file $CKPT
  local name=$1 split=$2 row=$3 run=${RUN:-$1}
  local ckpt=${CKPT:-outputs/train/$run/checkpoints/last.pt}
  shift 3
  [[ -f $OUT/$split/$row/metrics.json ]] && return 0
  mkdir -p "$OUT/$split"
  echo "$(date +%T) evaluate $row on $split"
  if ! "$PERCEPTION" eval "configs/models/$name.yaml" "$ckpt" \
      --split "$split" --no-plots --no-tracking "$@" --out "$OUT/$split/$row" \
      >"$OUT/$split/$row.log" 2>&1; then
    echo "$(date +%T) evaluating $row failed: $OUT/$split/$row.log" >&2
    return 1
  fi
}

fine_tune() {  # fine_tune CONFIG_NAME EPOCHS: train (with train.seed $SEED when SEED is set,
               # into outputs/train/CONFIG_NAME[_seedSEED]), then every sensor subset on val and
               # on test
  local run=$1${SEED:+_seed$SEED} seed=()
  [[ -n ${SEED:-} ]] && seed=(--seed "$SEED")
  train "$1" "$2" "$run" "${seed[@]}" &&
    RUN=$run evaluate "$1" val "$run" --single && RUN=$run evaluate "$1" test "$run" --single
}

seeded() {  # seeded CONFIG_NAME EPOCHS SEED [RUN]: train with train.seed SEED into
            # outputs/train/RUN (default CONFIG_NAME_seedSEED), then val (each sensor
            # removed) and test
  local run=${4:-${1}_seed$3}
  train "$1" "$2" "$run" --seed "$3" &&
    RUN=$run evaluate "$1" val "$run" && RUN=$run evaluate "$1" test "$run" --single
}
