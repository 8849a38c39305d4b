# Sourced by the scripts that run on a lent GPU machine (device-check.sh, device-train.sh), where
# Python has torch with CUDA and no package registry is reached. Needs PYTHON and WORK (a scratch
# folder).
#   describe_device       prints the time, GPU, driver, Python, torch and the packages that matter
#   make_importable LOG   makes the project importable, logging to LOG; sets RUN (the Python to
#                         use) and INFUSIONNET (the command, as an array)

describe_device() {
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || true  # also under set -e
  nvidia-smi 2>&1 | head -15 || true
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
             "onnxslim", "matplotlib", "pytest", "h5py"):
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
}

# pip --no-deps uses what the machine has; if that fails (no setuptools, externally managed
# Python), a shim folder maps the infusionnet.* names onto the tree (what setup.cfg's package_dir
# does). Either way nothing is downloaded.
make_importable() {
  local log=$1
  RUN="$PYTHON"
  # The import check matters: where PYTHON is itself a venv's (the H200 image's /opt/torch/.venv),
  # --system-site-packages exposes the base interpreter's packages, not torch's venv.
  if "$PYTHON" -m venv --system-site-packages "$WORK/venv" > "$log" 2>&1 \
     && timeout 120 "$WORK/venv/bin/python" -m pip install --no-deps --no-build-isolation --no-index -e . \
        >> "$log" 2>&1 \
     && "$WORK/venv/bin/python" -c "import torch, infusionnet.models" >> "$log" 2>&1; then
    RUN="$WORK/venv/bin/python"
    echo "installed with pip --no-deps --no-build-isolation -e . into a venv over the system site-packages" >> "$log"
  else
    mkdir -p "$WORK/shim/infusionnet"
    for folder in models export runtime benchmarks cli; do ln -s "$PWD/$folder" "$WORK/shim/infusionnet/$folder"; done
    export PYTHONPATH="$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
    echo "no usable venv install (above); using the path shim $WORK/shim" >> "$log"
  fi
  INFUSIONNET=("$RUN" -m infusionnet.cli.main)
  "$RUN" -c "import infusionnet.runtime, infusionnet.models; print('infusionnet importable')" >> "$log" 2>&1
}
