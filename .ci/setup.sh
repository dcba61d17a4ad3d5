#!/usr/bin/env bash
# `make setup`: create .venv/ and install everything the project needs, in this order:
#   1. Debian packages (.ci/apt-packages.txt), only when root; otherwise the list is printed.
#   2. the virtual environment itself;
#   3. torch==2.13.0, before anything else, unless a torch (e.g. a CUDA build) is already there;
#   4. build tools, then the project (`pip install -e .`, which compiles the C++ ops);
#   5. the pinned core dependencies;
#   6. the ROS 2 wheels, then the ROS interface packages built into the venv;
#   7. extras that need --no-deps (the Waymo protos).
# Every step records a hash of its inputs under .venv/.setup/; a step whose inputs did not
# change is skipped, so a second run takes seconds. A failing step stops the setup and prints
# its name and the end of its log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
STATE="$VENV/.setup"
CI_DIR="$ROOT/.ci"
START=$(date +%s)

log() { printf '[setup] %s\n' "$*"; }

hash_of() {  # hash of the given files/dirs (contents and names), plus any extra strings
  local item
  {
    for item in "$@"; do
      if [ -d "$item" ]; then
        find "$item" -type f -not -path '*/__pycache__/*' -print0 | sort -z \
          | xargs -0 -r sha256sum
      elif [ -f "$item" ]; then
        sha256sum "$item"
      else
        printf '%s\n' "$item"
      fi
    done
  } | sha256sum | cut -d' ' -f1
}

# run_step NAME HASH COMMAND...: run COMMAND unless NAME already succeeded with this HASH.
run_step() {
  local name="$1" hash="$2"; shift 2
  local stamp="$STATE/$name.done" logfile="$STATE/logs/$name.log"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    log "$name: up to date"
    return 0
  fi
  local t0=$(date +%s)
  log "$name: running (log: ${logfile#$ROOT/})"
  mkdir -p "$STATE/logs"
  # The step runs in its own bash with errexit: inside `if !` bash would ignore `set -e`.
  if ! bash -euo pipefail -c "$(declare -f); \"\$@\"" step "$@" >"$logfile" 2>&1; then
    echo "----- last lines of $logfile -----" >&2
    grep -v 'is ignored: it is neither a file nor a directory' "$logfile" | tail -n 40 >&2
    echo "[setup] FAILED at step '$name' (full log: $logfile)" >&2
    exit 1
  fi
  echo "$hash" >"$stamp"
  log "$name: done in $(( $(date +%s) - t0 )) s"
}

pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check "$@"; }
export VENV ROOT CI_DIR TORCH_SPEC

# ---- 1. Debian packages ----------------------------------------------------------------------
apt_packages() { sed -e 's/#.*//' "$CI_DIR/apt-packages.txt" | xargs; }

install_apt() {
  local missing=()
  for pkg in $(apt_packages); do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all Debian packages present"
    return 0
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  run_step apt "$(hash_of "$CI_DIR/apt-packages.txt")" install_apt
else
  missing=""
  for pkg in $(apt_packages); do dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"; done
  if [ -n "$missing" ]; then
    log "apt: not root, skipping. Please install these Debian packages yourself:$missing"
  fi
fi

# ---- 2. virtual environment ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "venv: creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV" || { echo "[setup] FAILED at step 'venv'" >&2; exit 1; }
  rm -rf "$STATE"
fi
mkdir -p "$STATE"

# ---- 3. torch, first -------------------------------------------------------------------------
install_torch() {
  if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    # A torch that is already there (for example a CUDA build) is kept as it is.
    "$VENV/bin/python" -c "import torch; print('keeping torch', torch.__version__)"
  else
    pip_install "$TORCH_SPEC"
  fi
}
run_step torch "$(hash_of "$TORCH_SPEC")" install_torch
TORCH_VERSION=$("$VENV/bin/python" -c "import torch; print(torch.__version__)")

# ---- 4. the project (compiles the C++ ops) ---------------------------------------------------
run_step build-tools "$(hash_of "$CI_DIR/requirements-build.txt")" \
  pip_install -r "$CI_DIR/requirements-build.txt"

install_project() {
  cd "$ROOT"
  rm -f perception/_C*.so  # a stale in-place build must not shadow the fresh one
  pip_install --no-build-isolation --no-deps --use-pep517 -e .
  if [ "${PERCEPTION_SKIP_EXT:-}" != "1" ]; then
    # Only torch is installed at this point: check the compiled module alone.
    "$VENV/bin/python" -c "import torch, perception._C as C; print('perception._C', C.build_info())"
  fi
}
run_step project "$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" \
  "$ROOT/cuda_ops" "$TORCH_VERSION" "${PERCEPTION_SKIP_EXT:-}" \
  "$(ls "$ROOT"/ros_nodes/*_node.py "$ROOT"/ros_nodes/launch "$ROOT"/ros_nodes/config 2>/dev/null)" \
  "$(cd "$ROOT" && find configs -name "*.yaml" | sort)")" \
  install_project

# ---- 5. core dependencies --------------------------------------------------------------------
run_step core-deps "$(hash_of "$CI_DIR/requirements-core.txt" "$TORCH_VERSION")" \
  pip_install -r "$CI_DIR/requirements-core.txt"

# ---- 6. ROS 2 wheels and interface packages --------------------------------------------------
run_step ros-wheels "$(hash_of "$CI_DIR/requirements-ros.txt")" \
  pip_install -r "$CI_DIR/requirements-ros.txt"
run_step ros-interfaces "$(hash_of "$ROOT/ros_nodes/interfaces" "$CI_DIR/build_ros_interfaces.sh" \
  "$CI_DIR/requirements-ros.txt")" \
  bash "$CI_DIR/build_ros_interfaces.sh" "$VENV"

# ---- 7. extras that need --no-deps -----------------------------------------------------------
run_step nodeps-extras "$(hash_of "$CI_DIR/requirements-nodeps.txt")" \
  pip_install --no-deps -r "$CI_DIR/requirements-nodeps.txt"

log "environment ready in $(( $(date +%s) - START )) s ($VENV)"
