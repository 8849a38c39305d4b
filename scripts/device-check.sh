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

step "describe the machine"
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  nvidia-smi 2>&1 | head -15
  "$PYTHON" - <<'PY'
import importlib.util, platform, sys
print("python", sys.version.split()[0], platform.platform())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as error:
    print("torch: not importable:", error)
for name in ("tensorrt", "pycuda", "polygraphy", "onnx", "onnxruntime", "cv2", "skimage", "rich", "safetensors",
             "onnxslim", "matplotlib", "pytest"):
    spec = importlib.util.find_spec(name)
    version = ""
    if spec is not None:
        try:
            module = __import__(name)
            version = getattr(module, "__version__", "") or "(no __version__)"
            if name == "tensorrt" and not hasattr(module, "Runtime"):
                version = "NOT the real TensorRT (stubs or placeholder)"
        except Exception as error:
            version = f"present but fails to import: {error}"
    print(f"{name:12s} {version if spec is not None else 'missing'}")
PY
} > "$RESULTS/device.txt" 2>&1
cat "$RESULTS/device.txt"

step "make the project importable (offline)"
# pip --no-deps uses what the machine has; if that fails (no setuptools, externally managed
# Python), a shim folder maps the infusionnet.* names onto the tree (what setup.cfg's package_dir
# does). Either way nothing is downloaded.
RUN="$PYTHON"
if "$PYTHON" -m venv --system-site-packages "$WORK/venv" > "$RESULTS/install.log" 2>&1 \
   && timeout 120 "$WORK/venv/bin/python" -m pip install --no-deps --no-build-isolation --no-index -e . \
      >> "$RESULTS/install.log" 2>&1; then
  RUN="$WORK/venv/bin/python"
  echo "installed with pip --no-deps --no-build-isolation -e . into a venv over the system site-packages" >> "$RESULTS/install.log"
else
  mkdir -p "$WORK/shim/infusionnet"
  for folder in models export runtime benchmarks cli; do ln -s "$PWD/$folder" "$WORK/shim/infusionnet/$folder"; done
  export PYTHONPATH="$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
  echo "pip install failed (above); using the path shim $WORK/shim" >> "$RESULTS/install.log"
fi
INFUSIONNET=("$RUN" -m infusionnet.cli.main)
"$RUN" -c "import infusionnet.runtime, infusionnet.models; print('infusionnet importable')" >> "$RESULTS/install.log" 2>&1
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
