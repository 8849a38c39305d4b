"""`infusionnet stylize`: stylize images (or folders) with one or more styles in PyTorch."""
import argparse
import sys
from pathlib import Path

from infusionnet.runtime import images, samples
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import check_output_location
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.limits import MAX_WORK_PIXELS
from infusionnet.runtime.model_choice import DEFAULT_MODEL_SUMMARY
from infusionnet.runtime.stylizer import Stylizer

from .backend_args import add_backend_argument, backend_options, load_backend
from .options import add_model_arguments, add_renamed_argument

# The PyTorch path (without --model): torch and the networks, imported when it runs.
torch = lazy_import("torch")
models = lazy_import("infusionnet.models")
default_model = lazy_import("infusionnet.models.default_model")
models_device = lazy_import("infusionnet.models.device")
rich_progress = lazy_import("rich.progress")  # its progress bar: not for --help

DEFAULT_STYLE = "sample:hubble_deep_field"
DEFAULT_STYLE_SIZE = 256
SHEET_TILE = 192  # px, each picture of --sheet

DESCRIPTION = """\
Stylize content images with style images: the PyTorch model (the reference path), or with
--model an ONNX export or TensorRT engine directory run by --backend onnxruntime / openvino /
tensorrt / torch (the deployed path: the export fixes the style size, and static exports their content size).

Every content image is stylized with every style image; each style is encoded once. Outputs are
named CONTENT__STYLE.png in --output (CONTENT__STYLE+STYLE_LOW.png with --style-low), written
atomically. Images may be paths, folders (content only) or built-in samples (sample:NAME).

A bad input (unreadable, over --max-pixels after --resize, a NaN output) is reported by name and
skipped; the others are still written, and the exit status is 2 if any failed (--fail-fast
stops at the first). A static-size export letterboxes other sizes and says so.

Without --checkpoint, """ + DEFAULT_MODEL_SUMMARY + ".\n"

EPILOG = """\
resize policies (--resize; --size is its old spelling):
  keep        keep the image size (padded to a multiple of 8 and cropped back)
  512         shorter side to 512 pixels, aspect kept (default)
  384x512     exactly HxW
  square:256  shorter side to 256 then centre crop, as the authors' test does

examples:
  infusionnet stylize -o out/                                 # built-in samples, default model
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
    add_renamed_argument(parser, "--resize", "--size", default="512", metavar="SPEC",
                         help="content resize policy (see below)")
    parser.add_argument("--fit", choices=("pad", "resize"), default="pad",
                        help="make sizes multiples of 8 by reflect padding (cropped off the output) "
                             "or by resizing (default: %(default)s)")
    parser.add_argument("--style-size", type=int, metavar="S",
                        help=f"style images are resized and centre-cropped to SxS (default: {DEFAULT_STYLE_SIZE}; "
                             "with --model the export's style size)")
    parser.add_argument("--max-pixels", type=int, default=MAX_WORK_PIXELS, metavar="N",
                        help="refuse content images larger than N pixels after --resize, before any network runs "
                             "(memory grows with pixels; default: %(default)s, for an 8 GB machine)")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first bad input (default: report it, go on, exit 2 at the end)")
    parser.add_argument("--frequencies", action="store_true",
                        help="also write the high- and low-frequency images (_high, _low)")
    parser.add_argument("--grid", action="store_true", help="also write a content | style | result image")
    parser.add_argument("--sheet", action="store_true",
                        help="also write sheet.png: the styles across the top, a row per content image with "
                             "its results (one picture of the whole run)")
    add_model_arguments(parser)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--model", metavar="DIR",
                        help="an ONNX export (manifest.json) or TensorRT engine directory (engines.json) to run "
                             "instead of the PyTorch model")
    add_backend_argument(parser, help_text="what runs --model (default: onnxruntime; without --model only torch)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # Validate everything cheap before loading a network.
    resize = images.parse_resize(args.resize)
    if args.max_pixels < 1:
        raise InfusionNetError(f"--max-pixels must be at least 1, not {args.max_pixels}")
    content_paths = _content_paths(args.content, samples, images)
    style_paths = [samples.resolve_image_arg(s) for s in args.style]
    style_low_path = samples.resolve_image_arg(args.style_low) if args.style_low else None
    check_output_location(args.output, directory=True)
    inputs = Inputs(args.fail_fast)
    if args.model or args.backend not in (None, "torch"):
        written = _run_model(args, resize, content_paths, style_paths, inputs)
    else:
        written = _run_torch(args, resize, content_paths, style_paths, style_low_path, inputs)
    return inputs.finish(written, Path(args.output))


class Inputs:
    """Bad inputs of a batch: each is reported (name and reason) and skipped, the rest still run.

    ``attempt(name, work)`` runs one input's work; an InfusionNetError (unreadable image, over the
    pixel budget, a non-finite output) is reported at once and recorded, unless ``fail_fast``.
    Errors that are not about one input (a full disk, a broken model) still stop the batch.
    """

    def __init__(self, fail_fast: bool = False):
        self.fail_fast = fail_fast
        self.failed = {}  # name -> reason, in order

    def attempt(self, name, work):
        try:
            return work()
        except InfusionNetError as error:
            if self.fail_fast:
                raise
            self.failed.setdefault(str(name), str(error))
            print(f"skipped {name}: {error}", file=sys.stderr)
            return None

    def finish(self, written: int, output: Path) -> int:
        print(f"wrote {written} stylized image{'s' if written != 1 else ''} to {output}/")
        if not self.failed:
            return 0
        kept = f"; the other {written} output{'s were' if written != 1 else ' was'} written" if written else ""
        if len(self.failed) == 1:  # its own message, which names the file, is the one line to show
            raise InfusionNetError(next(iter(self.failed.values())) + kept)
        names = ", ".join(Path(name).name for name in self.failed)
        raise InfusionNetError(f"{len(self.failed)} inputs failed ({names}), each reason above{kept}")


def _run_torch(args, resize, content_paths, style_paths, style_low_path, inputs) -> int:
    model = _load_model(args)
    style_size = args.style_size or DEFAULT_STYLE_SIZE
    models.validate_style_size(model.variant, style_size)
    device = models_device.torch_device(args.device)
    model.to(device)
    style_resize = images.Resize.square(style_size)
    output = Path(args.output)

    def load_style(path):
        rgb, _ = images.prepare_image(images.read_image(path), style_resize)
        return rgb, torch.from_numpy(images.normalize(rgb)).to(device)

    def stylize_content(content_path, styles):
        content_rgb = images.read_image(content_path)
        content_rgb, restore = images.prepare_image(content_rgb, resize, max_pixels=args.max_pixels,
                                                    name=content_path)
        features = model.encode_content(torch.from_numpy(images.normalize(content_rgb)).to(device))
        written = 0
        sheet_row = [_thumbnail(images.restore_image(content_rgb, restore), images)]
        for style_path, style_rgb, kernels in styles:
            progress.update(task, description=f"{content_path.name} x {style_path.name}")
            what = f"the output for {content_path.name} x {style_path.name}"
            out, high, low = (images.restore_image(images.denormalize_output(t.float().cpu().numpy(), what)[0],
                                                   restore)
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
            sheet_row.append(_thumbnail(out, images))
            written += 1
            progress.advance(task)
        if args.sheet:  # thumbnails only: memory stays bounded
            sheet_rows.append(sheet_row)
        return written

    jobs = len(content_paths) * len(style_paths)
    written = 0
    sheet_rows = []  # (content, results...) thumbnails for --sheet
    with torch.inference_mode(), rich_progress.Progress(
            rich_progress.TextColumn("[bold]stylize"), rich_progress.BarColumn(), rich_progress.MofNCompleteColumn(),
            rich_progress.TimeRemainingColumn(), rich_progress.TextColumn("{task.description}"),
            transient=not sys.stderr.isatty(),
            # Bad-input reports stay whole lines (rich would wrap them to the console width).
            redirect_stderr=False) as progress:
        task = progress.add_task("", total=jobs)
        low_tensor = load_style(style_low_path)[1] if style_low_path else None
        styles = []
        for path in style_paths:  # encode each style once, reuse its kernels for every content
            loaded = inputs.attempt(path, lambda: load_style(path))
            if loaded is not None:
                styles.append((path, loaded[0], model.style_kernels(loaded[1], low_tensor)))
        for content_path in content_paths if styles else []:
            written += inputs.attempt(content_path, lambda: stylize_content(content_path, styles)) or 0
    if args.sheet and sheet_rows:
        sheet = images.contact_sheet([rgb for _, rgb, _ in styles], [p.stem for p, _, _ in styles], sheet_rows,
                                     height=SHEET_TILE)
        images.write_image(output / "sheet.png", sheet)
        print(f"wrote {output / 'sheet.png'}")
    return written


def _run_model(args, resize, content_paths, style_paths, inputs) -> int:
    """Stylize through the runtime Stylizer: an export or engine directory on any backend.

    Content images are read one at a time, once per style, so memory stays flat for any number
    of inputs (decoding is cheap next to the network).
    """
    if args.sheet:
        raise InfusionNetError("--sheet is only available on the PyTorch path (without --model)")
    if not args.model:
        raise InfusionNetError(f"--backend {args.backend} needs --model DIR (an ONNX export or TensorRT engine "
                               "directory; make one with `infusionnet export onnx`)")
    for flag, value in (("--style-low", args.style_low), ("--frequencies", args.frequencies),
                        ("--checkpoint", args.checkpoint if args.backend != "torch" else None)):
        if value:
            raise InfusionNetError(f"{flag} is not available with --model: the exported graphs output only the "
                                   "stylized image from one style (use the PyTorch path without --model)")
    backend = args.backend or "onnxruntime"
    load_backend(backend)
    options = backend_options(args, backend)
    output = Path(args.output)
    written = 0
    notes = set()

    def note(text):
        if text and text not in notes:
            notes.add(text)
            print(f"note: {text}", file=sys.stderr)

    def stylize_content(content_path, style_path, style_rgb):
        content_rgb = images.read_image(content_path)
        height, width = resize.output_size(*content_rgb.shape[:2])
        stylizer.check_frame_size(height, width, content_path)  # the pixel budget, before resizing
        content_rgb = resize.apply(content_rgb)
        note(stylizer.fit_note(height, width))
        out = stylizer.stylize(content_rgb)
        name = _output_stem(content_path, style_path, None)
        images.write_image(output / f"{name}.png", out)
        if args.grid:
            panels = [(content_rgb, "content")] + ([] if baked else [(style_rgb, "style")]) + [(out, "stylized")]
            grid = images.make_grid([p for p, _ in panels], labels=[label for _, label in panels])
            images.write_image(output / f"{name}_grid.png", grid)
        return 1

    with Stylizer(args.model, backend=backend, checkpoint=args.checkpoint, max_pixels=args.max_pixels,
                  **options) as stylizer:
        print(f"running {stylizer.description}", file=sys.stderr)
        if args.style_size and args.style_size != stylizer.style_size:
            note(f"--style-size {args.style_size} is not used: {args.model} was exported with style size "
                 f"{stylizer.style_size} (re-export with --style-size {args.style_size} to change it)")
        baked = stylizer.graph_kind == "baked"
        if baked:  # one style, built into the graph: name outputs after it, ignore --style
            baked_file = (stylizer.manifest.data.get("style_image") or {}).get("file") or "baked"
            note(f"{args.model} has its style baked in ({baked_file}); --style is not used")
            style_paths = [Path(baked_file)]
        for style_path in style_paths:
            style_rgb = None
            if not baked:
                style_rgb = inputs.attempt(style_path, lambda: images.read_image(style_path))
                if style_rgb is None:
                    continue
                stylizer.set_style(style_rgb)
            for content_path in content_paths:
                written += inputs.attempt(content_path, lambda: stylize_content(content_path, style_path,
                                                                                style_rgb)) or 0
    return written


def _thumbnail(rgb, images):
    """Shorter side to SHEET_TILE: what --sheet keeps of each image."""
    scale = SHEET_TILE / min(rgb.shape[:2])
    return images.resize_array(rgb, max(SHEET_TILE, round(rgb.shape[0] * scale)),
                               max(SHEET_TILE, round(rgb.shape[1] * scale)))


def _content_paths(args_content, samples, images):
    if not args_content:
        return [samples.sample_path(name) for name in samples.sample_names("content")]
    paths = []
    for item in args_content:
        path = samples.resolve_image_arg(item)
        paths.extend(images.list_images(path) if Path(path).is_dir() else [path])
    return [Path(p) for p in paths]


def _load_model(args):
    return default_model.resolve_network(args.checkpoint, args.variant, args.seed)[0]


def _output_stem(content: Path, style: Path, style_low) -> str:
    stem = f"{Path(content).stem}__{Path(style).stem}"
    return stem + (f"+{Path(style_low).stem}" if style_low else "")
