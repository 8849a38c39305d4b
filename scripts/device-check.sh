#!/usr/bin/env bash
# GPU checks, in one run of under 8 minutes, on a machine whose Python already has torch with
# CUDA and that reaches no package registry (the lent H100/H200 machines). Run from a copy of
# the working tree:
#     scripts/device-check.sh [RESULTS_DIR]
# RESULTS_DIR defaults to $OUT (the device tool's output folder), else benchmarks/results/<gpu>/.
# It writes, each step with its own time limit so one stuck step cannot eat the rest:
#   device.txt        nvidia-smi, Python, torch, CUDA, and whether TensorRT / pycuda are present
#   install.log       how the project was made importable (pip --no-deps, else a path shim)
#   tests-gpu.log     the gpu- and tensorrt-marked tests (TensorRT ones skip, with the reason, without it)
#   bench/            infusionnet bench --device cuda: torch FP32/FP16 rows against the authors' path
#   torch-variants.json  channels-last and CUDA-graph rows (scripts/device_torch_variants.py)
#   check-cuda.json   infusionnet check of the PyTorch CUDA backend (FP16) against FP32
#   tensorrt.txt      TensorRT rows and tests, or why there are none
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RESULTS=${1:-${OUT:-}}
if [ -z "$RESULTS" ]; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9-')
  RESULTS=benchmarks/results/${gpu:-unknown-gpu}
fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
WORK=$(mktemp -d)
started=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - started )) s)"; }

# shellcheck source=scripts/device-env.sh
source scripts/device-env.sh

step "describe the machine"
describe_device > "$RESULTS/device.txt" 2>&1
cat "$RESULTS/device.txt"

step "make the project importable (offline)"
make_importable "$RESULTS/install.log"
tail -2 "$RESULTS/install.log"

step "GPU- and TensorRT-marked tests"
timeout 150 "$RUN" -m pytest -q -rs -p no:cacheprovider -m "gpu or tensorrt" tests/ > "$RESULTS/tests-gpu.log" 2>&1
echo "exit $?" >> "$RESULTS/tests-gpu.log"
tail -5 "$RESULTS/tests-gpu.log"

step "bench: PyTorch CUDA rows against the authors' path, 512x512 and 1280x720"
timeout 150 "${INFUSIONNET[@]}" bench --device cuda --backends torch --precisions fp32,fp16 --sizes 512,720x1280 \
  --mode cached-style --warmup 3 --seconds 3 --no-plots -o "$RESULTS/bench" > "$RESULTS/bench.log" 2>&1
echo "exit $?" >> "$RESULTS/bench.log"
tail -15 "$RESULTS/bench.log"

step "PyTorch channels-last and CUDA-graph rows"
timeout 90 "$RUN" scripts/device_torch_variants.py --sizes 512x512 720x1280 --seconds 2 \
  --json "$RESULTS/torch-variants.json" > "$RESULTS/torch-variants.log" 2>&1
echo "exit $?" >> "$RESULTS/torch-variants.log"
cat "$RESULTS/torch-variants.log"

step "check: the PyTorch CUDA backend (FP16) against PyTorch FP32"
timeout 60 "${INFUSIONNET[@]}" export onnx --graph split --content-size 512x512 --style-size 256 -o "$WORK/split" \
  > "$RESULTS/check-cuda.log" 2>&1
timeout 60 "${INFUSIONNET[@]}" check "$WORK/split" --backend torch --device cuda --fp16 \
  --json "$RESULTS/check-cuda.json" >> "$RESULTS/check-cuda.log" 2>&1
echo "exit $?" >> "$RESULTS/check-cuda.log"
tail -12 "$RESULTS/check-cuda.log"

step "TensorRT"
if "$RUN" -c "import tensorrt, sys; sys.exit(0 if hasattr(tensorrt, 'Runtime') else 1)" 2>/dev/null; then
  {
    echo "TensorRT present: $("$RUN" -c 'import tensorrt; print(tensorrt.__version__)')"
    timeout 120 "${INFUSIONNET[@]}" bench --device cuda --backends tensorrt --precisions fp32,fp16,int8 \
      --sizes 512,720x1280 --warmup 3 --seconds 3 --no-plots -o "$RESULTS/bench-tensorrt" 2>&1 | tail -20
  } > "$RESULTS/tensorrt.txt" 2>&1
else
  echo "TensorRT is not installed on this machine ($(date -u +%F)): no TensorRT tests ran (they skip, see" \
       "tests-gpu.log) and there are no TensorRT rows." > "$RESULTS/tensorrt.txt"
fi
cat "$RESULTS/tensorrt.txt"
rm -rf "$WORK"
step "done: results in $RESULTS"
