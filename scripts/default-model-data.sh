# Sourced by scripts/train-default-model.sh (the recipe) and scripts/device-train.sh (its GPU run):
# the default model's data and its last phase's loss settings, in one place.
HELD_OUT_STYLE=picabia_udnie                  # a style file name prefix: held out for evaluation
CONTENT_SAMPLES=(rocket motorcycle_left)      # built-in photographs beside DATA/content
TEXTURE_SAMPLES=(gravel brick grass)          # built-in textures among the styles (phase 7)
LAST_PHASE_LOSS=(--lambda-perc-cont 10 --lambda-perc-style 25 --style-pixel-tap 10 --style-pixel-slices 8)
