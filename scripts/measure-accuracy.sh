#!/usr/bin/env bash
# Accuracy of every exported precision against PyTorch FP32, on the bundled default model and
# real photographs (the built-in sample photos x textures) at 512x512 and 1280x720.
#
#   scripts/measure-accuracy.sh [RESULTS_DIR]     # default: benchmarks/results/accuracy
#
# Exports a dynamic-size split graph per precision (FP32, FP16, INT8 in TensorRT's and in the CPU
# layout), then runs `infusionnet check` on each with ONNX Runtime. Exports use permissive floors
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

declare -A EXPORT_ARGS=(
  [fp32]="--precision fp32"
  [fp16]="--precision fp16"
  [int8-tensorrt]="--precision int8 --int8-target tensorrt"
  [int8-cpu]="--precision int8 --int8-target cpu"
)
status=0
for name in fp32 fp16 int8-tensorrt int8-cpu; do
  echo "== $name" >&2
  # shellcheck disable=SC2086
  "$INFUSIONNET" export onnx --graph split --dynamic-size --content-size 512x512 ${EXPORT_ARGS[$name]} \
      --fp16-min-psnr 1 --int8-min-psnr 1 -o "$WORK/$name" >"$RESULTS/export-$name.log" 2>&1
  "$INFUSIONNET" check "$WORK/$name" --sizes 512x512 720x1280 --samples 2 \
      --json "$RESULTS/check-$name.json" | tee "$RESULTS/check-$name.txt" || status=1
done
.venv/bin/python - "$RESULTS" <<'PY'
import json, sys
from pathlib import Path
results = Path(sys.argv[1])
lines = ["| export | size | worst PSNR dB | worst SSIM | floors met |", "|---|---|---|---|---|"]
for name in ("fp32", "fp16", "int8-tensorrt", "int8-cpu"):
    report = json.loads((results / f"check-{name}.json").read_text())
    by_size = {}
    for row in report["rows"]:
        if row["inputs"] != "samples" or row["output"] != "stylized":
            continue
        worst = by_size.setdefault(row["size"], [200.0, 1.0, True])
        worst[0] = min(worst[0], row["psnr_db"])
        worst[1] = min(worst[1], row["ssim"])
        worst[2] = worst[2] and row["passed"]
    for size, (p, s, ok) in by_size.items():
        lines.append(f"| {name} | {size} | {p:.1f} | {s:.4f} | {'yes' if ok else 'NO'} |")
(results / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $status
