#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the project into it.
#   VENV    where the environment lives (default .venv)
#   PYTHON  interpreter that creates it (default python3)
# torch is installed as the CPU build 2.13.0 only when the environment has no torch yet; a
# plain `pip install torch` would pull gigabytes of CUDA packages. Re-runs are quick: the
# editable install is redone only when setup.cfg or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TENSORRT_STUBS=10.13.0.35.1

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "bootstrap: installing torch==2.13.0 (CPU build)"
  "$VENV/bin/python" -m pip install -q torch==2.13.0
fi
stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing infusionnet-edge (editable, with the dev extra)"
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  # TensorRT 10.13's type stubs for `make typecheck` and the contract tests. --no-deps: the package
  # requires the real tensorrt wheel, which installs only from NVIDIA's index (not needed here).
  if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    "$VENV/bin/python" -m pip install -q --no-deps "tensorrt-stubs==$TENSORRT_STUBS"
    "$VENV/bin/python" scripts/patch_tensorrt_stubs.py  # the stubs' syntax errors, fixed in one place
  fi
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
