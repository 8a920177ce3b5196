#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment: pinned dependencies, our ROS 2
# messages built from the PyPI wheels, and this package installed in development mode.
# Safe to re-run; `make setup` calls it only when an input changed.
set -euo pipefail
VENV=${1:-.venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
fail() { echo "setup: $*" >&2; exit 1; }

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  fail "Python 3.11 is required (the ROS 2 wheels are cp311); found $("$PYTHON" --version 2>&1)"
command -v cmake >/dev/null || fail "cmake is required to build msg/ (apt-get install cmake, or pip install cmake)"
command -v c++ >/dev/null || fail "a C/C++ compiler is required to build msg/ (apt-get install build-essential)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV" || fail "could not create the venv at $VENV"
fi
echo "setup: installing pinned dependencies (first run: a few minutes, torch is large)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2) ||
  fail "pip could not install requirements.txt (see the error above)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt \
  2> >(grep -v "is ignored: it is neither" >&2) ||
  fail "pip could not install requirements-nodeps.txt (see the error above)"
echo "setup: building msg/ into $VENV"
scripts/build_msgs.sh "$VENV" || fail "building the ROS 2 messages failed"
# vision_msgs has no PyPI wheel: build compat/vision_msgs into the venv (again, when an
# input changed) unless a sourced ROS 2 install provides the real one.
if ! "$VENV/bin/python" -c 'import sys, vision_msgs.msg as m; sys.exit(m.__file__.startswith(sys.prefix))' 2>/dev/null; then
  echo "setup: building compat/vision_msgs into $VENV"
  scripts/build_msgs.sh "$VENV" compat/vision_msgs || fail "building compat/vision_msgs failed"
fi
echo "setup: installing ivtuning_ros (editable)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
  -e . --config-settings editable_mode=compat 2> >(grep -v "is ignored: it is neither" >&2) ||
  fail "pip could not install this package"
"$VENV/bin/python" -c 'from ivtuning_ros.msg import DetectionArray; from vision_msgs.msg import Detection2DArray; import rclpy, torch, timm' ||
  fail "the environment does not import (see the traceback above)"
echo "setup: done ($VENV)"
