#!/usr/bin/env bash
# Build the ROS 2 interface packages in ros_nodes/interfaces/<name>/ (standard
# rosidl_generate_interfaces CMake packages) and install them into the venv prefix, where
# rclpy finds them without any environment variable.
#
# A package that is already importable but was not built here (a normal ROS 2 install that
# provides vision_msgs, say) is left alone. Usage: build_ros_interfaces.sh VENV
set -euo pipefail
VENV="$1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/ros_nodes/interfaces"
BUILD="$VENV/.setup/ros-build"
PY="$VENV/bin/python"

if [ ! -d "$SRC" ] || [ -z "$(ls -A "$SRC" 2>/dev/null)" ]; then
  echo "no interface packages in ros_nodes/interfaces"
  exit 0
fi
# Build order: a package listed in ros_nodes/interfaces/BUILD_ORDER comes in that order (so that
# dependencies are built first); any other package follows alphabetically.
ORDER_FILE="$SRC/BUILD_ORDER"
if [ -f "$ORDER_FILE" ]; then
  packages=$(sed -e 's/#.*//' "$ORDER_FILE" | xargs)
else
  packages=$(ls "$SRC")
fi
for name in $packages; do
  pkg="$SRC/$name"
  [ -f "$pkg/CMakeLists.txt" ] || continue
  marker="$BUILD/$name.built-here"
  if [ ! -f "$marker" ] && "$PY" -c "import $name.msg" 2>/dev/null; then
    echo "$name: provided by the environment, not building"
    continue
  fi
  echo "$name: building"
  rm -rf "$BUILD/$name"
  mkdir -p "$BUILD/$name"
  AMENT_PREFIX_PATH="$VENV" cmake -S "$pkg" -B "$BUILD/$name" \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
  AMENT_PREFIX_PATH="$VENV" cmake --build "$BUILD/$name" -j "$(nproc)"
  cmake --install "$BUILD/$name"
  "$PY" -c "import $name.msg" || { echo "$name: built but not importable" >&2; exit 1; }
  touch "$marker"
done
