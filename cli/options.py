"""Option spellings every subcommand shares: one name and one meaning per concept.

* Sizes: ``--content-size`` (export: one content size), ``--sizes`` (bench, check: several
  content sizes), ``--frame-size`` and ``--capture-size`` (video: HxW), ``--style-size``
  (a square style, one number) and ``--resize`` (stylize: a resize policy, not a size). All
  are read by ``runtime.sizes``; lists take commas, spaces or both.
* The network: ``--checkpoint``, ``--variant``, ``--seed`` (``add_model_arguments``).
* Renamed options keep answering to their old spelling, with a deprecation note printed once
  to stderr (``add_renamed_argument``).
"""
import argparse
import sys

from infusionnet.runtime.model_choice import CHECKPOINT_HELP, UNTRAINED, VARIANT_NAMES
from infusionnet.runtime.sizes import CONTENT_SIZE_HELP

SIZES_HELP = "content sizes, separated by commas or spaces: " + CONTENT_SIZE_HELP
VARIANT_HELP = "network variant (detected from the checkpoint; infusionnet without one)"
SEED_HELP = f"seed of --checkpoint {UNTRAINED} (default: %(default)s)"


def add_model_arguments(parser, checkpoint_help: str = CHECKPOINT_HELP, seed: bool = True) -> None:
    """``--checkpoint``, ``--variant`` and (with ``seed``) ``--seed``: which network runs."""
    parser.add_argument("--checkpoint", metavar="CKPT", help=checkpoint_help)
    parser.add_argument("--variant", choices=VARIANT_NAMES, help=VARIANT_HELP)
    if seed:
        parser.add_argument("--seed", type=int, default=0, help=SEED_HELP)


class RenamedOption(argparse.Action):
    """Stores the value under the new name whichever spelling was given; an old spelling also
    prints a deprecation note on stderr, once per command line (a parser is built per run)."""

    def __init__(self, option_strings, dest, old_spellings=(), **kwargs):
        self.old_spellings = tuple(old_spellings)
        self.noted = set()
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old_spellings and option_string not in self.noted:
            self.noted.add(option_string)
            print(f"note: {parser.prog} {option_string} is deprecated and will be removed: "
                  f"use {self.option_strings[0]} (same values)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_argument(parser, name: str, *old_spellings: str, **kwargs):
    """``parser.add_argument(name, ...)`` that also accepts ``old_spellings``, said in --help."""
    old = ", ".join(old_spellings)
    kwargs["help"] = f"{kwargs.get('help', '')} ({old}: the old spelling, deprecated)".lstrip()
    return parser.add_argument(name, *old_spellings, action=RenamedOption, old_spellings=old_spellings, **kwargs)
