#!/usr/bin/env bash
# `make setup`: create .venv/ and install everything the project needs, in this order:
#   1. Debian packages (.ci/apt-packages.txt), only when root; otherwise the list is printed.
#   2. the virtual environment itself;
#   3. torch==2.13.0, before anything else, unless a torch (e.g. a CUDA build) is already there;
#      CUDA=12.6 (or cpu) asks for that build instead (.ci/cuda_select.py decides);
#   4. build tools, then the project (`pip install -e .`, which compiles the C++ ops);
#   5. the pinned core dependencies, spconv matching torch (spconv-cuXXX for a CUDA torch);
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
CUDA="${CUDA:-}"  # `make setup CUDA=12.6`: a torch and spconv built for CUDA 12.6; cpu; auto
SPCONV_VERSION="${SPCONV_VERSION:-2.3.8}"
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
export VENV ROOT CI_DIR TORCH_SPEC STATE

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
  local have=0 cuda=""
  if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    have=1
    cuda=$("$VENV/bin/python" -c "import torch; print(torch.version.cuda or '')")
  fi
  eval "$(python3 "$CI_DIR/cuda_select.py" torch "$CUDA" "$have" "$cuda")"
  if [ "$TORCH_ACTION" = keep ]; then
    # A torch that is already there (for example a CUDA build) is kept as it is.
    "$VENV/bin/python" -c "import torch; print('keeping torch', torch.__version__)"
  elif [ -n "$TORCH_INDEX_URL" ]; then
    pip_install --force-reinstall --no-deps "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
    pip_install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  else
    pip_install "$TORCH_SPEC"
  fi
}
export CUDA
run_step torch "$(hash_of "$TORCH_SPEC" "cuda=$CUDA")" install_torch
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
    # A CUDA torch without a CUDA toolkit (nvcc) builds the CPU ops only: say so.
    "$VENV/bin/python" -c "import sys, torch, perception._C as C; sys.exit(0 if not torch.version.cuda or C.build_info()['cuda'] else 3)" \
      || echo "WARNING: torch has CUDA $("$VENV/bin/python" -c 'import torch; print(torch.version.cuda)') but the ops were built without it (no nvcc / CUDA_HOME?)" >&2
  fi
}
run_step project "$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" \
  "$ROOT/cuda_ops" "$TORCH_VERSION" "${PERCEPTION_SKIP_EXT:-}" \
  "$(ls "$ROOT"/ros_nodes/*_node.py "$ROOT"/ros_nodes/launch "$ROOT"/ros_nodes/config 2>/dev/null)" \
  "$(cd "$ROOT" && find configs -name "*.yaml" | sort)")" \
  install_project

# ---- 5. core dependencies --------------------------------------------------------------------
# spconv is a separate step: its distribution (spconv or spconv-cuXXX) follows the torch build,
# and two of them cannot share a venv (both provide the `spconv` module).
install_core_deps() {
  grep -v -E '^spconv([=<> ]|$)' "$CI_DIR/requirements-core.txt" >"$STATE/requirements-core.nospconv.txt"
  pip_install -r "$STATE/requirements-core.nospconv.txt"
}
run_step core-deps "$(hash_of "$CI_DIR/requirements-core.txt" "$TORCH_VERSION")" install_core_deps

TORCH_CUDA=$("$VENV/bin/python" -c "import torch; print(torch.version.cuda or '')")
SPCONV_PKG=$(python3 "$CI_DIR/cuda_select.py" spconv "$TORCH_CUDA")
install_spconv() {
  local others
  others=$("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null \
    | sed -n -E 's/^(spconv(-cu[0-9]+)?|cumm(-cu[0-9]+)?)==.*/\1/p' \
    | grep -v -x -e "$SPCONV_PKG" -e "${SPCONV_PKG/spconv/cumm}" || true)
  if [ -n "$others" ]; then
    echo "removing other spconv/cumm builds: $others"
    "$VENV/bin/python" -m pip uninstall -y $others
  fi
  echo "torch CUDA: ${TORCH_CUDA:-none} -> $SPCONV_PKG==$SPCONV_VERSION"
  pip_install "$SPCONV_PKG==$SPCONV_VERSION"
}
export SPCONV_PKG SPCONV_VERSION TORCH_CUDA
run_step spconv "$(hash_of "$SPCONV_PKG==$SPCONV_VERSION" "$TORCH_VERSION")" install_spconv

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
