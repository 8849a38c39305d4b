#!/usr/bin/env bash
# Accuracy of every exported precision against PyTorch FP32, on the bundled default model and
# real photographs (the built-in sample photos x textures) at 512x512 and 1280x720.
#
#   scripts/measure-accuracy.sh [RESULTS_DIR]     # default: benchmarks/results/accuracy
#
# Exports a dynamic-size split graph per precision (FP32, FP16, INT8 in TensorRT's and in the CPU
# layout, each again with the layers of benchmarks/int8/default-model-{tensorrt,cpu}-keep-float.txt
# in float, NNCF's INT8), then runs `infusionnet check` on each: ONNX Runtime, and OpenVINO for
# its defaults (BF16 where the CPU has it) and NNCF's graph. Exports use permissive floors
# (--int8-min-psnr 1) so that a precision below its floor is still measured, not refused; the
# check's own floors (runtime/floors.py) decide pass or fail. Writes check-*.json and a
# summary.md with the worst PSNR/SSIM per precision and size.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-benchmarks/results/accuracy}
INFUSIONNET=${INFUSIONNET:-.venv/bin/infusionnet}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/infusionnet-accuracy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"

KEEP_FLOAT_CPU=$(grep -v '^#' benchmarks/int8/default-model-cpu-keep-float.txt | tr '\n' ' ')
KEEP_FLOAT_TENSORRT=$(grep -v '^#' benchmarks/int8/default-model-tensorrt-keep-float.txt | tr '\n' ' ')
# name | export options | check options. The OpenVINO rows run the same kind of export in OpenVINO
# Runtime: its defaults (BF16 on CPUs with AMX or AVX-512 BF16, else FP32) and NNCF's INT8.
ROWS=(
  "fp32|--precision fp32|"
  "fp16|--precision fp16|"
  "int8-tensorrt|--precision int8 --int8-target tensorrt|"
  "int8-tensorrt-keep-float|--precision int8 --int8-target tensorrt --int8-keep-float $KEEP_FLOAT_TENSORRT|"
  "int8-cpu|--precision int8 --int8-target cpu|"
  "int8-cpu-keep-float|--precision int8 --int8-target cpu --int8-keep-float $KEEP_FLOAT_CPU|"
  "openvino-default|--precision fp32|--backend openvino"
  "openvino-int8|--precision int8 --int8-target openvino|--backend openvino"
)
# ONLY="fp32 openvino-default" measures some rows only; the summary still lists every row
# whose results are in RESULTS (from this run or an earlier one).
ONLY=${ONLY:-}
status=0
names=()
for row in "${ROWS[@]}"; do
  IFS='|' read -r name export_args check_args <<<"$row"
  names+=("$name")
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  echo "== $name" >&2
  # shellcheck disable=SC2086
  "$INFUSIONNET" export onnx --graph split --dynamic-size --content-size 512x512 $export_args \
      --fp16-min-psnr 1 --int8-min-psnr 1 -o "$WORK/$name" >"$RESULTS/export-$name.log" 2>&1
  # shellcheck disable=SC2086
  "$INFUSIONNET" check "$WORK/$name" $check_args --sizes 512x512 720x1280 --samples 2 \
      --json "$RESULTS/check-$name.json" | tee "$RESULTS/check-$name.txt" || status=1
done
.venv/bin/python - "$RESULTS" "${names[@]}" <<'PY'
import json, sys
from pathlib import Path
results = Path(sys.argv[1])
lines = ["| export | ran as | size | worst PSNR dB | worst SSIM | floors met |", "|---|---|---|---|---|---|"]
for name in sys.argv[2:]:
    path = results / f"check-{name}.json"
    if not path.is_file():
        continue
    report = json.loads(path.read_text())
    ran = report.get('candidate', '?')
    by_size = {}
    for row in report["rows"]:
        if row["inputs"] != "samples" or row["output"] != "stylized":
            continue
        worst = by_size.setdefault(row["size"], [200.0, 1.0, True])
        worst[0] = min(worst[0], row["psnr_db"])
        worst[1] = min(worst[1], row["ssim"])
        worst[2] = worst[2] and row["passed"]
    for size, (p, s, ok) in by_size.items():
        lines.append(f"| {name} | {ran} | {size} | {p:.1f} | {s:.4f} | {'yes' if ok else 'NO'} |")
(results / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $status
