#!/usr/bin/env bash
# One prepared GPU check (issue 17): build the ops with CUDA, run the CUDA parity tests, print
# the GPU benchmarks as ratios against same-run baselines. Runs on a bare machine with torch
# (CUDA), nvcc, numpy, scipy and pyyaml; no simulator, open3d, spconv or ROS. Model benchmarks
# read frames written beforehand by `python -m benchmarks.gpu_check prepare` (outputs/gpu_frames,
# carried along). Budget: under 5 minutes on an H200 (build ~1 min, tests ~1 min).
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--quick] [--no-build] [--no-tests]
#
# `--device cpu --quick` is the dry run the test suite does: every step on small sizes, no
# CUDA build. PYTHON selects the interpreter (default: python3).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
DEVICE=cuda QUICK="" BUILD=1 TESTS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK="--quick"; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-tests) TESTS=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
START=$(date +%s)
FAILED=""
mkdir -p outputs/gpu_check
say() { printf '\n[gpu_check %3ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }

if [ "$DEVICE" = "cuda" ] && [ "$BUILD" = 1 ]; then
  ARCH="${TORCH_CUDA_ARCH_LIST:-$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}"
  say "building the ops with CUDA (arch $ARCH)"
  rm -f perception/_C*.so
  if ! MAX_JOBS="${MAX_JOBS:-$(nproc)}" TORCH_CUDA_ARCH_LIST="$ARCH" \
      "$PY" setup.py build_ext --inplace >outputs/gpu_check/build.log 2>&1; then
    tail -n 40 outputs/gpu_check/build.log
    say "FAILED: build (log outputs/gpu_check/build.log)"
    exit 1
  fi
fi
"$PY" -c 'import torch, perception._C as C; print("perception._C", C.build_info())' || FAILED="$FAILED import"

if [ "$TESTS" = 1 ]; then
  say "CUDA parity tests"
  if [ "$DEVICE" = "cuda" ]; then
    TESTS_RUN=(tests/ops/test_cuda.py tests/ops/test_library.py tests/ops/test_bev_pool.py
               tests/ops/test_lss_pool.py)
  else  # the dry run: the CUDA tests skip here; the chunk tables they run on are checked
    TESTS_RUN=(tests/ops/test_cuda.py tests/ops/test_bev_pool.py -k "cuda or chunk")
  fi
  "$PY" -m pytest -q -p no:cacheprovider "${TESTS_RUN[@]}" 2>&1 | tail -n 25
  [ "${PIPESTATUS[0]}" = 0 ] || FAILED="$FAILED tests"
fi

say "benchmarks ($DEVICE)"
"$PY" -m benchmarks.gpu_check bench --device "$DEVICE" $QUICK || FAILED="$FAILED benchmarks"

if [ -n "$FAILED" ]; then
  say "FAILED:$FAILED"
  exit 1
fi
say "done"
