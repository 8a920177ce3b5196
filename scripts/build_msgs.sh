#!/usr/bin/env bash
# Build msg/ into a venv that holds ROS 2 from the PyPI wheels (no apt ROS, no colcon).
# Usage: scripts/build_msgs.sh VENV [PACKAGE_DIR]
#   PACKAGE_DIR (default: this repository) is another interface package to build the same
#   way, e.g. compat/vision_msgs.
#   PREFIX=DIR (default VENV) installs elsewhere; WITH_PYTHON=ON also installs the Python
#   package, launch/ and config/ as colcon does (used by the tests to check that layout).
# On a real ROS 2 install use `colcon build` instead: it reads the same CMakeLists.txt.
set -euo pipefail
VENV=$(cd "${1:?usage: $0 VENV [PACKAGE_DIR]}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOURCE=$(cd "${2:-$ROOT}" && pwd)
NAME=$(basename "$SOURCE")
[ "$SOURCE" = "$ROOT" ] && NAME=msgs
PREFIX=${PREFIX:-$VENV}
WITH_PYTHON=${WITH_PYTHON:-OFF}
BUILD=${BUILD_DIR:-$ROOT/build/$NAME}
mkdir -p "$BUILD"
PY="$VENV/bin/python"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 AMENT_PREFIX_PATH="$VENV" LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# The wheels were built under manylinux: their generator exports hard-code that image's
# Python and numpy include dirs. Point them at this venv's (idempotent).
py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$PY" -c 'import numpy; print(numpy.get_include())')
stale=$(grep -rl --include='*_rosidl_generator_pyExport.cmake' -e '/opt/python/cp311-cp311' "$VENV/share" || true)
for f in $stale; do
  sed -i -E "s#/opt/python/cp311-cp311/include/python3\.11#$py_inc#g; s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/(_core|core)/include#$np_inc#g" "$f"
done
if grep -rq --include='*_rosidl_generator_pyExport.cmake' -e '/opt/python/cp311' "$VENV/share"; then
  echo "build_msgs: could not rewrite manylinux include paths in $VENV/share (see grep above)" >&2
  exit 1
fi

cmake -S "$SOURCE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DIVTUNING_INSTALL_PYTHON="$WITH_PYTHON" \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DPython3_EXECUTABLE="$PY" -DPYTHON_EXECUTABLE="$PY" > "$BUILD.configure.log" 2>&1 ||
  { tail -40 "$BUILD.configure.log" >&2; echo "build_msgs: cmake configure failed (full log: $BUILD.configure.log)" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" > "$BUILD.build.log" 2>&1 ||
  { tail -40 "$BUILD.build.log" >&2; echo "build_msgs: build failed (full log: $BUILD.build.log)" >&2; exit 1; }
cmake --install "$BUILD" > "$BUILD.install.log" 2>&1 ||
  { tail -40 "$BUILD.install.log" >&2; echo "build_msgs: install failed" >&2; exit 1; }
[ "$SOURCE" != "$ROOT" ] && { echo "build_msgs: $NAME installed into $PREFIX"; exit 0; }
[ "$WITH_PYTHON" = ON ] && { echo "build_msgs: ivtuning_ros installed into $PREFIX"; exit 0; }
# rosidl installs an empty ivtuning_ros/__init__.py beside msg/. It would shadow the real
# package (installed by pip afterwards, editable or not); without it the folder is merged
# into the real package by the extend_path call in ivtuning_ros/__init__.py.
site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths('venv', vars={'base': '$PREFIX', 'platbase': '$PREFIX'})['purelib'])")
# rosidl also registers the generated code as a distribution named ivtuning_ros
# (egg-info); pip would take it for an old install of this package and delete the
# generated messages when it installs the real one. The files stay; the record goes.
rm -rf "$site"/ivtuning_ros-*.egg-info
if [ -f "$site/ivtuning_ros/__init__.py" ] && ! grep -q extend_path "$site/ivtuning_ros/__init__.py"; then
  rm -f "$site/ivtuning_ros/__init__.py"
fi
echo "build_msgs: ivtuning_ros messages installed into $PREFIX"
