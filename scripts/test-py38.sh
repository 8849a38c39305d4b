#!/usr/bin/env bash
# The runtime's tests on Python 3.8 with JetPack 5's package generation (tests/requirements-jetpack5.txt),
# no torch: what a Jetson on JetPack 5 runs. vermin checks the syntax; this runs the code.
#   PY38  a Python 3.8 interpreter (default: python3.8 on PATH, else the newest 3.8 under pyenv)
#   VENV  where its environment lives (default .venv-py38)
# Exports that the tests need are built first by the main environment (.venv, with torch) into
# a temporary folder the 3.8 tests read (INFUSIONNET_TEST_EXPORTS). Without a 3.8 interpreter it
# says so and exits 0: a machine without one skips this job, it does not fail it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-py38}
MAIN_PY=${MAIN_PY:-.venv/bin/python}

find_py38() {
  if [ -n "${PY38:-}" ]; then echo "$PY38"; return; fi
  if command -v python3.8 >/dev/null 2>&1 && python3.8 -c "" >/dev/null 2>&1; then command -v python3.8; return; fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  ls -d "$root"/versions/3.8.*/bin/python3.8 2>/dev/null | sort -V | tail -n 1
}
PY38=$(find_py38)
if [ -z "$PY38" ] || ! "$PY38" -c "import sys; assert sys.version_info[:2] == (3, 8)" >/dev/null 2>&1; then
  echo "test-py38: SKIPPED: no Python 3.8 interpreter found (set PY38=/path/to/python3.8 or pyenv install 3.8)"
  exit 0
fi

stamp="$VENV/.installed-$(cat tests/requirements-jetpack5.txt setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "test-py38: installing JetPack 5's package generation into $VENV with $("$PY38" --version 2>&1)"
  rm -rf "$VENV"
  "$PY38" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  "$VENV/bin/python" -m pip install -q -r tests/requirements-jetpack5.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  touch "$stamp"
fi

exports=$(mktemp -d "${TMPDIR:-/tmp}/infusionnet-py38-exports.XXXXXX")
trap 'rm -rf "$exports"' EXIT
"$MAIN_PY" tests/runtime_exports.py "$exports"

# The tests of the torch-free runtime and CLI paths; the rest need torch or onnx.
INFUSIONNET_TEST_EXPORTS=$exports "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider \
  tests/test_runtime_without_torch.py tests/test_images.py tests/test_fileio.py tests/test_calibration.py \
  tests/test_engine_sidecar.py tests/test_trt_plan.py tests/test_export_manifest.py tests/test_samples.py \
  tests/test_video.py tests/test_doctor.py "$@"
