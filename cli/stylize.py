"""`infusionnet stylize`: stylize images (or folders) with one or more styles in PyTorch."""
import argparse
import sys
from pathlib import Path

from infusionnet.runtime.errors import InfusionNetError

from .backend_args import add_backend_argument, backend_options

DEFAULT_STYLE = "sample:hubble_deep_field"
UNTRAINED_WARNING = (
    "warning: no --checkpoint given, so this runs an UNTRAINED network (fixed seed {seed}): "
    "outputs show the pipeline working, not meaningful stylizations. For real weights use the "
    "authors' AesFA release (main.pth, --checkpoint main.pth) or train your own with `infusionnet train`.")

DESCRIPTION = """\
Stylize content images with style images: the PyTorch model (the reference path), or with
--model an ONNX export or TensorRT engine directory run by --backend onnxruntime / openvino /
tensorrt / torch (the deployed path: the export fixes the style size, and static exports their content size).

Every content image is stylized with every style image; each style is encoded once. Outputs are
named CONTENT__STYLE.png in --output (CONTENT__STYLE+STYLE_LOW.png with --style-low), written
atomically. Images may be paths, folders (content only) or built-in samples (sample:NAME).
"""

EPILOG = """\
size specs (--size):
  keep        keep the image size (padded to a multiple of 8 and cropped back)
  512         shorter side to 512 pixels, aspect kept (default)
  384x512     exactly HxW
  square:256  shorter side to 256 then centre crop, as the authors' test does

examples:
  infusionnet stylize -o out/                                 # samples, untrained demo network
  infusionnet stylize --checkpoint main.pth --content photos/ --style art.jpg -o out/
  infusionnet stylize --checkpoint main.pth --content a.jpg --style s1.jpg s2.jpg --grid -o out/
  infusionnet stylize --checkpoint main.pth --content a.jpg --style s1.jpg --style-low s2.jpg \\
      --frequencies -o out/                                   # style mixing + frequency images
  infusionnet stylize --model exports/split --content photos/ --style art.jpg -o out/   # ONNX Runtime
  infusionnet stylize --model engines/split-fp16 --backend tensorrt --style art.jpg -o out/
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stylize", help="stylize images with the PyTorch model", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", nargs="+", metavar="IMG_OR_DIR",
                        help="content images or folders (default: the built-in content samples)")
    parser.add_argument("--style", nargs="+", metavar="IMG", default=[DEFAULT_STYLE],
                        help=f"style images; each is applied to every content image (default: {DEFAULT_STYLE})")
    parser.add_argument("--style-low", metavar="IMG",
                        help="style mixing: take the low-frequency style code from this image")
    parser.add_argument("-o", "--output", default="outputs/stylized", metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--size", default="512", metavar="SPEC", help="content resize policy (see below)")
    parser.add_argument("--fit", choices=("pad", "resize"), default="pad",
                        help="make sizes multiples of 8 by reflect padding (cropped off the output) "
                             "or by resizing (default: %(default)s)")
    parser.add_argument("--style-size", type=int, default=256, metavar="S",
                        help="style images are resized and centre-cropped to SxS (default: %(default)s)")
    parser.add_argument("--frequencies", action="store_true",
                        help="also write the high- and low-frequency images (_high, _low)")
    parser.add_argument("--grid", action="store_true", help="also write a content | style | result image")
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="the authors' .pth or this project's .safetensors (default: untrained demo)")
    parser.add_argument("--variant", choices=("infusionnet", "aesfa"),
                        help="network variant (detected from the checkpoint; default infusionnet without one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the untrained demo network")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--model", metavar="DIR",
                        help="an ONNX export (manifest.json) or TensorRT engine directory (engines.json) to run "
                             "instead of the PyTorch model")
    add_backend_argument(parser, help_text="what runs --model (default: onnxruntime; without --model only torch)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from infusionnet.runtime import images, samples

    # Validate everything cheap before loading a network.
    resize = images.parse_resize(args.size)
    content_paths = _content_paths(args.content, samples, images)
    style_paths = [samples.resolve_image_arg(s) for s in args.style]
    style_low_path = samples.resolve_image_arg(args.style_low) if args.style_low else None
    if args.model or args.backend not in (None, "torch"):
        return _run_model(args, resize, content_paths, style_paths)

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from infusionnet.models import validate_style_size

    model = _load_model(args)
    validate_style_size(model.variant, args.style_size)
    device = _device(args.device, torch)
    model.to(device)
    style_resize = images.parse_resize(f"square:{args.style_size}")
    output = Path(args.output)

    def load_style(path):
        rgb, _ = images.prepare_image(images.read_image(path), style_resize)
        return rgb, torch.from_numpy(images.normalize(rgb)).to(device)

    jobs = len(content_paths) * len(style_paths)
    written = 0
    with torch.inference_mode(), Progress(
            TextColumn("[bold]stylize"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.description}"), transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("", total=jobs)
        low_tensor = load_style(style_low_path)[1] if style_low_path else None
        styles = []
        for path in style_paths:  # encode each style once, reuse its kernels for every content
            rgb, tensor = load_style(path)
            styles.append((path, rgb, model.style_kernels(tensor, low_tensor)))
        for content_path in content_paths:
            content_rgb, restore = images.prepare_image(images.read_image(content_path), resize)
            features = model.encode_content(torch.from_numpy(images.normalize(content_rgb)).to(device))
            for style_path, style_rgb, kernels in styles:
                progress.update(task, description=f"{content_path.name} x {style_path.name}")
                out, high, low = (images.restore_image(images.denormalize(t.float().cpu().numpy())[0], restore)
                                  for t in model.decode(features, kernels))
                name = _output_stem(content_path, style_path, style_low_path)
                images.write_image(output / f"{name}.png", out)
                if args.frequencies:
                    images.write_image(output / f"{name}_high.png", high)
                    images.write_image(output / f"{name}_low.png", low)
                if args.grid:
                    grid = images.make_grid([images.restore_image(content_rgb, restore), style_rgb, out],
                                            labels=["content", "style", "stylized"])
                    images.write_image(output / f"{name}_grid.png", grid)
                written += 1
                progress.advance(task)
    print(f"wrote {written} stylized image{'s' if written != 1 else ''} to {output}/")
    return 0


def _run_model(args, resize, content_paths, style_paths) -> int:
    """Stylize through the runtime Stylizer: an export or engine directory on any backend."""
    from infusionnet.runtime import images
    from infusionnet.runtime.stylizer import Stylizer

    if not args.model:
        raise InfusionNetError(f"--backend {args.backend} needs --model DIR (an ONNX export or TensorRT engine "
                               "directory; make one with `infusionnet export onnx`)")
    for flag, value in (("--style-low", args.style_low), ("--frequencies", args.frequencies),
                        ("--checkpoint", args.checkpoint if args.backend != "torch" else None)):
        if value:
            raise InfusionNetError(f"{flag} is not available with --model: the exported graphs output only the "
                                   "stylized image from one style (use the PyTorch path without --model)")
    backend = args.backend or "onnxruntime"
    options = backend_options(args, backend)
    output = Path(args.output)
    written = 0
    with Stylizer(args.model, backend=backend, checkpoint=args.checkpoint, **options) as stylizer:
        print(f"running {stylizer.description}", file=sys.stderr)
        contents = [(path, resize.apply(images.read_image(path))) for path in content_paths]
        baked = stylizer.graph_kind == "baked"
        if baked:  # one style, built into the graph: name outputs after it, ignore --style
            baked_file = (stylizer.manifest.data.get("style_image") or {}).get("file") or "baked"
            print(f"note: {args.model} has its style baked in ({baked_file}); --style is not used", file=sys.stderr)
            style_paths = [Path(baked_file)]
        for style_path in style_paths:
            style_rgb = None if baked else images.read_image(style_path)
            if not baked:
                stylizer.set_style(style_rgb)
            for content_path, content_rgb in contents:
                out = stylizer.stylize(content_rgb)
                name = _output_stem(content_path, style_path, None)
                images.write_image(output / f"{name}.png", out)
                if args.grid:
                    panels = [(content_rgb, "content")] + ([] if baked else [(style_rgb, "style")]) + [(out, "stylized")]
                    grid = images.make_grid([p for p, _ in panels], labels=[label for _, label in panels])
                    images.write_image(output / f"{name}_grid.png", grid)
                written += 1
    print(f"wrote {written} stylized image{'s' if written != 1 else ''} to {output}/")
    return 0


def _content_paths(args_content, samples, images):
    if not args_content:
        return [samples.sample_path(name) for name in samples.sample_names("content")]
    paths = []
    for item in args_content:
        path = samples.resolve_image_arg(item)
        paths.extend(images.list_images(path) if Path(path).is_dir() else [path])
    return [Path(p) for p in paths]


def _load_model(args):
    from infusionnet.models import build_model, load_checkpoint
    if args.checkpoint:
        return load_checkpoint(args.checkpoint, variant=args.variant)
    print(UNTRAINED_WARNING.format(seed=args.seed), file=sys.stderr)
    return build_model(args.variant or "infusionnet", seed=args.seed)


def _device(name: str, torch):
    if name == "cuda" and not torch.cuda.is_available():
        raise InfusionNetError("--device cuda asked for, but PyTorch sees no CUDA GPU on this machine "
                               "(use --device cpu, or install a CUDA build of torch)")
    return torch.device(name)


def _output_stem(content: Path, style: Path, style_low) -> str:
    stem = f"{Path(content).stem}__{Path(style).stem}"
    return stem + (f"+{Path(style_low).stem}" if style_low else "")
