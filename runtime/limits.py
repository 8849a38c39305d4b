"""Resource bounds shared by the commands and the runtime (no imports: `--help` reads them).

Memory grows with the pixels a network processes; without a bound, a large or oddly shaped
image ends in the kernel's OOM killer minutes later, with no message.
"""

# Default budget of pixels a network may be asked to process at once (after the resize policy).
# The PyTorch path needs about 0.9 GB per megapixel (a 12 MP photo took 11 GB), ONNX Runtime
# less: 4 MP fits a small (8 GB) machine. Commands take --max-pixels to change it.
MAX_WORK_PIXELS = 4_000_000

# Images longer than this many times their width (or the reverse) are refused: a 4000x16 strip
# at the default shorter side of 512 would be 512x128000.
MAX_ASPECT = 16
