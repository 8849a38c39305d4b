#!/usr/bin/env bash
# The CPU speed benchmark of the README's results tables, in one command:
#
#   scripts/bench-cpu.sh [OUT]      # default OUT: benchmarks/results/<cpu>-<cores>cores/cpu
#
# 1. `infusionnet bench` on the bundled default model: the authors' eager path (reference), this
#    project's PyTorch, ONNX Runtime (FP32, INT8 in both layouts) and OpenVINO (its defaults,
#    forced FP32, NNCF INT8) at 512x512 and 1280x720 with a cached style, rows interleaved in
#    rounds so every ratio compares the same minutes of the machine, each row's share of the
#    measured CPU peak, accuracy against PyTorch FP32 on the sample photos. ONNX Runtime FP16 is
#    not a CPU row (bench says why).
# 2. The video pipeline against the bare backend at 512x512 on OpenVINO's defaults (the fastest
#    CPU row): decode, stylize and encode threads overlap, so the file pipeline should come within
#    a few percent of the bare model.
#
# Run it on an otherwise idle machine: the rounds absorb slow drift, not a competing job.
set -euo pipefail
cd "$(dirname "$0")/.."
INFUSIONNET=${INFUSIONNET:-.venv/bin/infusionnet}
PY=${PY:-.venv/bin/python}
SLUG=$("$PY" -c 'from infusionnet.benchmarks.machine import describe_machine, machine_slug; print(machine_slug(describe_machine()))')
OUT=${1:-benchmarks/results/$SLUG/cpu}
THREADS=${THREADS:-$(nproc)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/infusionnet-bench-cpu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# STEPS=video reruns only the video step (e.g. when another job disturbed it).
STEPS=${STEPS:-bench video}
if [[ " $STEPS " == *" bench "* ]]; then
"$INFUSIONNET" bench --backends torch,onnxruntime,openvino --precisions fp32,int8 --sizes 512,720p \
    --mode cached-style --rounds 5 --seconds 3 --warmup 2 --threads "$THREADS" -o "$OUT" \
    | tee "$OUT/bench.txt"
fi
[[ " $STEPS " == *" video "* ]] || exit 0

"$INFUSIONNET" export onnx --graph split --content-size 512x512 -o "$WORK/split-512" >"$WORK/export.log" 2>&1 \
    || { cat "$WORK/export.log" >&2; exit 1; }
"$INFUSIONNET" video --benchmark --model "$WORK/split-512" --backend openvino --frame-size 512x512 --bench-frames 96 \
    --bench-json "$OUT/video_512x512_openvino_default.json" | tee "$OUT/video.txt"
echo "wrote $OUT"
