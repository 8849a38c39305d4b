#!/usr/bin/env bash
# Install the torch-free runtime on a Jetson and check it with `infusionnet doctor`.
#   scripts/install-jetson.sh [--dry-run] [--force] [--no-pycuda]
#   VENV    where the environment goes (default .venv-jetson)
#   PYTHON  the system interpreter JetPack's packages are built for (default /usr/bin/python3:
#           3.8 on JetPack 5, 3.10 on JetPack 6)
# --dry-run   print the facts found and the commands it would run; change nothing
# --force     install on a machine that is not a Jetson (no /etc/nv_tegra_release)
# --no-pycuda skip building pycuda (the TensorRT backend then cannot run)
#
# TensorRT's Python bindings, and JetPack's OpenCV (the one with GStreamer, which `csi:N` and
# pipeline inputs need), are system packages that pip cannot install. So the venv is made with
# --system-site-packages, the project goes in with --no-deps, and of its base requirements only
# those the system lacks are installed: a pip OpenCV would hide JetPack's. ONNX Runtime comes
# from the system when it has one (NVIDIA's Jetson builds have the CUDA and TensorRT providers),
# else PyPI's CPU build. pycuda has no aarch64 wheel for Python 3.8: it builds from source,
# which needs nvcc (JetPack's CUDA, /usr/local/cuda/bin). For the tests, the facts can be given
# instead of probed: INSTALL_JETSON_FACTS="tegra=yes cv2=4.5.4 gstreamer=yes ...".
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-jetson}
PYTHON=${PYTHON:-/usr/bin/python3}
DRY_RUN=no
FORCE=no
PYCUDA=yes

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=yes ;;
    --force) FORCE=yes ;;
    --no-pycuda) PYCUDA=no ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $arg (use --dry-run, --force, --no-pycuda)" >&2; exit 2 ;;
  esac
done

say() { echo "install-jetson: $*"; }
fail() { echo "error: $*" >&2; exit 2; }
run() {
  if [ "$DRY_RUN" = yes ]; then say "would run: $*"; else "$@"; fi
}

# What the system interpreter sees, as key=value words ("no" when absent).
probe_facts() {
  "$PYTHON" - <<'EOF'
import importlib, os, platform, re, shutil
def version(name):
    try:
        module = importlib.import_module(name)
    except Exception:
        return "no"
    return str(getattr(module, "__version__", "yes")).replace(" ", "_")
facts = {"python": platform.python_version(), "tegra": "yes" if os.path.exists("/etc/nv_tegra_release") else "no"}
for name, key in (("numpy", "numpy"), ("cv2", "cv2"), ("tensorrt", "tensorrt"), ("onnxruntime", "onnxruntime"),
                  ("pycuda", "pycuda")):
    facts[key] = version(name)
facts["gstreamer"] = "no"
if facts["cv2"] != "no":
    import cv2
    facts["gstreamer"] = "yes" if re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()) else "no"
nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else "no")
facts["nvcc"] = nvcc
print(" ".join(f"{key}={value}" for key, value in facts.items()))
EOF
}

# The requirements of setup.cfg's base install ("base") or of an extra, one word each.
requirements() {
  "$PYTHON" - "$1" <<'EOF'
import configparser, sys
config = configparser.ConfigParser()
config.read("setup.cfg")
options = config["options"]
text = options["install_requires"] if sys.argv[1] == "base" else config["options.extras_require"][sys.argv[1]]
print(" ".join(line.strip() for line in text.splitlines() if line.strip()))
EOF
}

facts=${INSTALL_JETSON_FACTS:-$(probe_facts)}
fact() {  # fact NAME -> its value, "no" when not given
  local word
  for word in $facts; do
    if [ "${word%%=*}" = "$1" ]; then echo "${word#*=}"; return; fi
  done
  echo no
}
say "found: $facts"

if [ "$(fact tegra)" != yes ] && [ "$FORCE" = no ]; then
  fail "this is not a Jetson (no /etc/nv_tegra_release): on a desktop use scripts/bootstrap.sh or" \
       "pip install '.[cpu]'; --force installs this way anyway"
fi

# Base requirements, less what the system provides.
wanted=()
for requirement in $(requirements base); do
  case "$requirement" in
    opencv*)
      if [ "$(fact cv2)" != no ]; then
        say "keeping the system's OpenCV $(fact cv2) (GStreamer: $(fact gstreamer)); no pip OpenCV"
        continue
      fi
      say "warning: no system OpenCV; installing PyPI's, which has no GStreamer (csi:N and pipeline inputs" \
          "will not work): install JetPack's python3-opencv first to have them" ;;
  esac
  wanted+=("$requirement")
done
if [ "$(fact cv2)" != no ] && [ "$(fact gstreamer)" != yes ]; then
  say "warning: the system's OpenCV has no GStreamer: csi:N and pipeline inputs will not work"
fi
if [ "$(fact onnxruntime)" != no ]; then
  say "keeping the system's ONNX Runtime $(fact onnxruntime)"
else
  say "no system ONNX Runtime: installing PyPI's CPU build (NVIDIA's Jetson build of onnxruntime-gpu, installed" \
      "for $PYTHON, brings the CUDA and TensorRT providers)"
  for requirement in $(requirements cpu); do wanted+=("$requirement"); done
fi

# pycuda, for the TensorRT backend, built from source with JetPack's nvcc.
build_pycuda=no
if [ "$(fact tensorrt)" = no ]; then
  say "warning: no TensorRT for $PYTHON (JetPack's python3-libnvinfer): the tensorrt backend will not run"
elif [ "$(fact pycuda)" != no ]; then
  say "keeping the system's pycuda"
elif [ "$PYCUDA" = no ]; then
  say "--no-pycuda: not building pycuda; the tensorrt backend will not run"
elif [ "$(fact nvcc)" = no ]; then
  fail "pycuda must be built from source and needs nvcc, which is not on PATH nor in /usr/local/cuda/bin:" \
       "install JetPack's CUDA toolkit (nvidia-jetpack) or pass --no-pycuda"
else
  build_pycuda=yes
fi

if [ ! -x "$VENV/bin/python" ]; then
  run "$PYTHON" -m venv --system-site-packages "$VENV"
  run "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
run "$VENV/bin/python" -m pip install -q --no-deps -e .
run "$VENV/bin/python" -m pip install -q "${wanted[@]}"
if [ "$build_pycuda" = yes ]; then
  cuda_bin=$(dirname "$(fact nvcc)")
  say "building pycuda with $(fact nvcc) (a few minutes)"
  run env PATH="$cuda_bin:$PATH" CUDA_ROOT="$(dirname "$cuda_bin")" "$VENV/bin/python" -m pip install -q pycuda
fi
say "checking the installation"
run "$VENV/bin/infusionnet" doctor
