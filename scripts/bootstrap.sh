#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the project into it.
#   scripts/bootstrap.sh [--dry-run]
#   VENV    where the environment lives (default .venv)
#   PYTHON  interpreter that creates it (default python3)
#   TORCH   which build of torch to install when the environment has none:
#           auto (default) and cpu: the CPU build; cuda: PyPI's build, which on Linux is the CUDA
#           one (several GB of CUDA libraries: ask for it on a machine with an NVIDIA GPU).
#   TORCH_INDEX  a pip index to take torch from instead (a mirror, a CUDA-version index).
# --dry-run prints the facts it found and the commands it would run, and changes nothing.
#
# Why the care: a plain `pip install torch` on Linux pulls the CUDA build and several GB of
# CUDA packages even on a machine without a GPU. The CPU build comes from PyTorch's CPU index
# when that answers within a few seconds; otherwise pip's own configuration decides (a local
# wheel folder or a mirror keeps this working offline). Detected facts can be forced, for the
# tests and for odd machines: BOOTSTRAP_GPU=yes|no, BOOTSTRAP_CPU_INDEX=yes|no.
# Re-runs are quick: the editable install is redone only when setup.cfg or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-auto}
TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu
DRY_RUN=no

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=yes ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $arg (use --dry-run)" >&2; exit 2 ;;
  esac
done
case "$TORCH" in
  auto|cpu|cuda) ;;
  *) echo "error: TORCH must be auto, cpu or cuda, not '$TORCH'" >&2; exit 2 ;;
esac

say() { echo "bootstrap: $*"; }
run() {
  if [ "$DRY_RUN" = yes ]; then say "would run: $*"; else "$@"; fi
}

has_nvidia_gpu() {
  case "${BOOTSTRAP_GPU:-}" in yes) return 0 ;; no) return 1 ;; esac
  { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } || [ -e /proc/driver/nvidia/version ]
}

cpu_index_answers() {
  case "${BOOTSTRAP_CPU_INDEX:-}" in yes) return 0 ;; no) return 1 ;; esac
  "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "$CPU_INDEX/torch/" \
    >/dev/null 2>&1
}

# The pip arguments that install torch, from the facts; prints notes on stderr.
torch_pip_args() {
  if [ -n "${TORCH_INDEX:-}" ]; then
    echo "torch==$TORCH_VERSION --index-url $TORCH_INDEX"
  elif [ "$TORCH" = cuda ]; then
    say "TORCH=cuda: PyPI's torch==$TORCH_VERSION, the CUDA build (several GB)" >&2
    echo "torch==$TORCH_VERSION"
  else
    if [ "$TORCH" = auto ] && has_nvidia_gpu; then
      say "an NVIDIA GPU is present; installing the CPU build anyway (TORCH=cuda $0 installs the CUDA build)" >&2
    fi
    if cpu_index_answers; then
      echo "torch==$TORCH_VERSION --index-url $CPU_INDEX"
    else
      say "PyTorch's CPU index ($CPU_INDEX) did not answer within 5 s: pip's configuration decides which" \
          "build of torch==$TORCH_VERSION it installs (a local CPU wheel or mirror works offline; PyPI" \
          "alone gives the CUDA build, several GB)" >&2
      echo "torch==$TORCH_VERSION"
    fi
  fi
}
TENSORRT_STUBS=10.13.0.35.1

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PYTHON --version 2>&1)"
  run "$PYTHON" -m venv "$VENV"
  run "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
if [ -x "$VENV/bin/python" ] && installed=$("$VENV/bin/python" -c "import torch; print(torch.__version__)" 2>/dev/null)
then
  say "torch $installed is already installed in $VENV; keeping it"
else
  args=$(torch_pip_args)
  say "installing torch: pip install $args"
  # shellcheck disable=SC2086  # args is a list of words by construction
  run "$VENV/bin/python" -m pip install -q $args
fi
stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing infusionnet-edge (editable, with the dev extra)"
  run "$VENV/bin/python" -m pip install -q -e ".[dev]"
  # TensorRT 10.13's type stubs for `make typecheck` and the contract tests. --no-deps: the package
  # requires the real tensorrt wheel, which installs only from NVIDIA's index (not needed here).
  if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    run "$VENV/bin/python" -m pip install -q --no-deps "tensorrt-stubs==$TENSORRT_STUBS"
    run "$VENV/bin/python" scripts/patch_tensorrt_stubs.py  # the stubs' syntax errors, fixed in one place
  fi
  if [ "$DRY_RUN" = no ]; then
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
fi
