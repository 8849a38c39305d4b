#!/usr/bin/env python3
"""Write procedural texture images, to add to a training run's styles (--style FOLDER).

    .venv/bin/python scripts/make-texture-styles.py runs/texture-styles            # 30 textures
    .venv/bin/python scripts/make-texture-styles.py /tmp/textures --count 10 --seed 1

PNG files named FAMILY_NNN.png (families and why: infusionnet.models.train.textures). The
images are a pure function of --count, --seed and --size, so the folder is rebuilt bit for bit;
files already there with the same name are overwritten.
"""
import argparse
import sys
from pathlib import Path

from rich.progress import track

from infusionnet.models.train.textures import TEXTURE_SIZE, texture, texture_specs
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import check_output_location
from infusionnet.runtime.images import write_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="folder to write the PNG files into")
    parser.add_argument("--count", type=int, default=30, help="number of textures (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    parser.add_argument("--size", type=int, default=TEXTURE_SIZE,
                        help=f"side in pixels (default {TEXTURE_SIZE}, the recipe's --load-size)")
    args = parser.parse_args()
    if args.count < 1 or args.size < 16:
        parser.error("--count must be at least 1 and --size at least 16")
    try:
        check_output_location(args.output, directory=True)  # before the first image, not after
        for name, family, seed in track(texture_specs(args.count, args.seed), description="textures"):
            write_image(args.output / f"{name}.png", texture(family, seed, args.size))
    except InfusionNetError as error:  # an unwritable folder: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.count} textures in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
