#!/usr/bin/env bash
# The runtime tests (pytest -m legacy) in a second, small environment: numpy<2 and
# tflite-runtime 2.14 instead of LiteRT; no TensorFlow, no ONNX Runtime.
#
#   bash scripts/legacy_env.sh [pytest args...]
#
# Creates .venv-legacy with `python3` when it is missing (or half-installed) and leaves it
# alone otherwise; pytest's exit code is this script's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-legacy
PY="$VENV/bin/python"
STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3}"

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 11))'; then
        echo "legacy_env.sh: tflite-runtime 2.14 has wheels for Python 3.8-3.11 only; $PYTHON is" \
             "$("$PYTHON" -c 'import platform; print(platform.python_version())'). Set PYTHON=python3.11" >&2
        exit 2
    fi
    [ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check 'numpy<2' 'tflite-runtime==2.14.*' pytest
    "$PY" -m pip install -q --disable-pip-version-check --no-deps -e .
    touch "$STAMP"
fi

# A model made by this project's TensorFlow, whose op versions tflite-runtime 2.14 does not know:
# the legacy tests check the error it gets (made with the main environment, which has TensorFlow).
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import tensorflow' 2>/dev/null; then
    export EDGEPILOT_NEW_OP_MODEL="$VENV/new_op_version.tflite"
    [ -f "$EDGEPILOT_NEW_OP_MODEL" ] || .venv/bin/python tests/tiny_models.py new-op-version "$EDGEPILOT_NEW_OP_MODEL" 2>/dev/null
fi

# only the files that hold legacy tests: the others import app and training packages
# (OpenCV, gymnasium, ...) that this small environment deliberately lacks, even to collect them
files=$(grep -l "mark.legacy" tests/test_*.py)
exec "$PY" -m pytest -m legacy $files "$@"
