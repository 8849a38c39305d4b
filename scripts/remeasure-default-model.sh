#!/usr/bin/env bash
# Everything that is measured on the bundled default model, re-measured in one command: run it
# after shipping new weights (scripts/ship-default-model.py), on an otherwise idle machine.
#
#   scripts/remeasure-default-model.sh                    # every step, about an hour on 2 cores
#   STEPS="sensitivity accuracy" scripts/remeasure-default-model.sh
#   RUN="runs/default runs/default-texture" STYLE=../shared/data/train/style/picabia_udnie_1913.jpg scripts/remeasure-default-model.sh
#
# Steps, in order (STEPS picks some; each writes where README links to):
#   evaluate     held-out grid and training losses -> docs/default-model/ (needs RUN for the losses,
#                STYLE for a held-out painting; the sample textures are always there)
#   demo         `make demo`, its sheet -> docs/default-model/demo-sheet.jpg
#   sensitivity  per-layer INT8 sensitivity in both layouts, layers kept in float until 35 dB PSNR
#                and SSIM 0.985 at 512x512 -> benchmarks/int8/default-model-{cpu,tensorrt}-{sensitivity.json,keep-float.txt}
#   accuracy     scripts/measure-accuracy.sh -> RESULTS/accuracy/ (every precision vs PyTorch FP32)
#   keep-float   speed cost of the keep-float lists, interleaved -> RESULTS/accuracy/keep-float-speed.txt
#   nncf         scripts/nncf-int8-study.py, with AMX and ISA-capped -> RESULTS/cpu/nncf-int8-study/
#   bench        scripts/bench-cpu.sh (bench + video) -> RESULTS/cpu/
# RESULTS is benchmarks/results/<cpu>-<cores>cores. The prose around the figures (README,
# RESULTS/*/*.md) is written by hand from what these steps print.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
INFUSIONNET=${INFUSIONNET:-.venv/bin/infusionnet}
STEPS=${STEPS:-evaluate demo sensitivity accuracy keep-float nncf bench}
SLUG=$("$PY" -c 'from infusionnet.benchmarks.machine import describe_machine, machine_slug; print(machine_slug(describe_machine()))')
RESULTS=${RESULTS:-benchmarks/results/$SLUG}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/infusionnet-remeasure.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The INT8 aim of a viewer (issue 11): layers go back to float until both are met, on the sample
# pairs at 512x512, the size the accuracy table reports (at 256x256 the same goal left SSIM at
# 0.94-0.955 at 512x512 and 1280x720: INT8's error shows more on larger images). The probe's
# SSIM goal has a margin over the aim of 0.97: `check` measures other pairs, at 1280x720 too,
# against PyTorch, and on the 4,900-step model its worst pairs stood 0.004 (CPU layout) to 0.021
# (TensorRT layout) below the probe's.
GOAL_DB=35 GOAL_SSIM=${GOAL_SSIM:-0.985} PROBE_SIZE=${PROBE_SIZE:-512}

wants() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo "== $(date +%H:%M:%S) $*" >&2; }
export_split() {  # export_split DIR [export options...]: a split graph at 512x512, its log beside it
  local dir=$1; shift
  "$INFUSIONNET" export onnx --graph split --content-size 512x512 "$@" -o "$dir" >"$dir.log" 2>&1 \
    || { cat "$dir.log" >&2; return 1; }
}
keep_float() { grep -v '^#' "benchmarks/int8/default-model-$1-keep-float.txt" | tr '\n' ' '; }

if wants evaluate; then
  step "evaluate: held-out grid"
  args=()
  # shellcheck disable=SC2206  # RUN names the recipe's runs in order, split on spaces
  [ -n "${RUN:-}" ] && args+=(--run $RUN)
  [ -n "${STYLE:-}" ] && args+=(--style "$STYLE")
  "$PY" scripts/evaluate-default-model.py "${args[@]}"
fi

if wants demo; then
  step "demo sheet"
  make demo >"$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log" >&2; exit 1; }
  "$PY" - <<'PY'
import cv2
sheet = cv2.imread("outputs/demo/sheet.png")
height, width = sheet.shape[:2]
if width > 992:  # README width; JPEG keeps the repository small
    sheet = cv2.resize(sheet, (992, round(height * 992 / width)), interpolation=cv2.INTER_AREA)
cv2.imwrite("docs/default-model/demo-sheet.jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
PY
fi

if wants sensitivity; then
  export_split "$WORK/fp32-dynamic" --dynamic-size
  for target in tensorrt cpu; do
    step "sensitivity: $target layout"
    # Exit 1 means the goal was not reached with every layer in float: the list is still written.
    "$PY" -m infusionnet.benchmarks.int8_sensitivity "$WORK/fp32-dynamic" --target "$target" --size "$PROBE_SIZE" \
        --goal "$GOAL_DB" --ssim-goal "$GOAL_SSIM" -o "benchmarks/int8/default-model-$target-sensitivity.json" \
        --keep-float-list "benchmarks/int8/default-model-$target-keep-float.txt" | grep -v '^\[' || true
  done
fi

if wants accuracy; then
  step "accuracy of every precision"
  # Non-zero when a row misses its floor (the fully quantized INT8 rows do): the summary says which.
  scripts/measure-accuracy.sh "$RESULTS/accuracy" || echo "measure-accuracy: some rows below their floors" >&2
fi

if wants keep-float; then
  step "speed cost of the keep-float lists"
  export_split "$WORK/fp32"
  export_split "$WORK/int8-cpu" --precision int8 --int8-target cpu --int8-min-psnr 1
  # shellcheck disable=SC2046
  export_split "$WORK/int8-cpu-keep-float" --precision int8 --int8-target cpu --int8-min-psnr 1 \
      --int8-keep-float $(keep_float cpu)
  "$PY" scripts/time-exports.py int8-cpu="$WORK/int8-cpu" int8-cpu-keep-float="$WORK/int8-cpu-keep-float" \
      fp32="$WORK/fp32" | tee "$RESULTS/accuracy/keep-float-speed.txt"
fi

if wants nncf; then
  step "NNCF INT8 study"
  [ -d "$WORK/fp32" ] || export_split "$WORK/fp32"
  study=$RESULTS/cpu/nncf-int8-study
  mkdir -p "$study"
  # The quantized models stay in WORK (the study reuses them for the capped timing); JSON is kept.
  "$PY" scripts/nncf-int8-study.py "$WORK/fp32" "$WORK/nncf" 2>&1 | grep -v "Warning\|━" | tee "$study/study.txt"
  ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI "$PY" scripts/nncf-int8-study.py "$WORK/fp32" "$WORK/nncf" --time-only 2>&1 \
      | grep -v "Warning\|━" | tee "$study/timing-isa-capped.txt"
  cp "$WORK"/nncf/*.json "$study/"
fi

if wants bench; then
  step "bench and video"
  # bench-cpu.sh has a STEPS of its own: this script's (exported when given) must not reach it.
  STEPS="bench video" scripts/bench-cpu.sh "$RESULTS/cpu"
fi
step done
