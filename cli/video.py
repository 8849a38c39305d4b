"""`infusionnet video`: stylize a video file, a camera or a stream, in real time where it can."""
import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import cv2

from infusionnet.runtime import images, samples
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_path, check_output_location
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.limits import MAX_WORK_PIXELS
from infusionnet.runtime.model_choice import CHECKPOINT_HELP, describe
from infusionnet.runtime.sizes import parse_frame_size
from infusionnet.runtime.stylizer import Stylizer
from infusionnet.runtime.video.errors import VideoError
from infusionnet.runtime.video.styles import Controls, Style, bgr_stylizer

from .backend_args import add_backend_argument, backend_options, load_backend
from .options import add_model_arguments, add_renamed_argument

# The video pipeline, its benchmark and the progress bar: imported when the command runs, not for
# --help. The PyTorch path (--checkpoint, no --model) adds torch and the networks.
video_display = lazy_import("infusionnet.runtime.video.display")
video_file_sink = lazy_import("infusionnet.runtime.video.file_sink")
video_sources = lazy_import("infusionnet.runtime.video.sources")
video_stylize = lazy_import("infusionnet.runtime.video.stylize")
video_threads = lazy_import("infusionnet.runtime.video.threads")
video_bench = lazy_import("infusionnet.benchmarks.video_bench")
machine = lazy_import("infusionnet.benchmarks.machine")
rich_progress = lazy_import("rich.progress")
models = lazy_import("infusionnet.models")
default_model = lazy_import("infusionnet.models.default_model")
models_device = lazy_import("infusionnet.models.device")
torch_backend = lazy_import("infusionnet.models.torch_backend")

DEFAULT_STYLE = "sample:hubble_deep_field"

DESCRIPTION = """\
Stylize video: capture, inference and output run in parallel, joined by bounded queues.

Files are processed losslessly, every frame in order; live sources (cameras, streams, GStreamer
pipelines, Jetson CSI cameras) drop stale frames so what you see is always the newest frame.
The style is encoded once; with --display the keys n/p switch to the next/previous image of the
--style folder and q or Esc quits. The output video keeps the source's frame rate and size (or
--frame-size), is written to a temporary file and renamed into place when the run ends for any
reason (end of stream, Ctrl-C, a source that drops or stalls), so it is always playable. The
input's audio is copied when ffmpeg is on PATH (said plainly when it is not).

Exit status: 0 when at least one frame was stylized (even if the run was stopped by Ctrl-C or
the source dropped mid-way: the message says so); 2 when nothing was produced (the source could
not be opened or gave no frame, a bad option); 130 on Ctrl-C before the run starts.
"""

EPILOG = """\
sources (--input):
  clip.mp4                a video file (processed losslessly, in order)
  0                       camera index (V4L2 /dev/video0); /dev/video2 works too
  rtsp://user:pw@cam/1    a network stream (rtsp, rtmp, http(s), udp, srt) through FFmpeg
  "v4l2src ! ... ! appsink"  a GStreamer pipeline (any string containing '!')
  csi:0                   Jetson CSI camera: builds the nvarguscamerasrc pipeline
                          (--capture-size/--capture-fps pick the sensor mode, --frame-size scales in hardware)

examples:
  infusionnet video --checkpoint main.pth --style art.jpg --input clip.mp4 -o styled.mp4
  infusionnet video --model export/ --backend tensorrt --style styles/ --input csi:0 --display --overlay
  infusionnet video --checkpoint main.pth --style art.jpg --input 0 --frame-size 256x448 --display
  infusionnet video --model export/ --backend onnxruntime --style art.jpg --input rtsp://cam/1 \\
      -o record.mp4 --stall-timeout 5 --max-fps 10
  infusionnet video --benchmark --frame-size 256x256     # end-to-end FPS vs the bare model
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "video", help="stylize a video file, camera or stream (real time, any backend)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="DIR",
                       help="an export or engine directory, run by the runtime Stylizer (torch-free)")
    add_backend_argument(model, default="onnxruntime", help_text="backend for --model")
    add_model_arguments(model, checkpoint_help="without --model: run this checkpoint in PyTorch; " + CHECKPOINT_HELP)
    model.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (PyTorch path)")
    model.add_argument("--style-size", type=int, default=256, metavar="S",
                       help="PyTorch path: styles are centre-cropped to SxS (default: %(default)s)")
    model.add_argument("--style", default=DEFAULT_STYLE, metavar="IMG_OR_DIR",
                       help=f"style image, or a folder of them to cycle through (default: {DEFAULT_STYLE})")
    io = parser.add_argument_group("input and output")
    io.add_argument("-i", "--input", metavar="SOURCE", help="file, camera index, URL, GStreamer pipeline or csi:N")
    io.add_argument("-o", "--output", metavar="FILE", help="write the stylized video (.mp4, .avi, .mkv, .mov)")
    io.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    io.add_argument("--display", action="store_true", help="show frames in a window (needs OpenCV with GUI)")
    io.add_argument("--overlay", action="store_true", help="draw FPS, latency and the style name on the frames")
    add_renamed_argument(io, "--frame-size", "--size", metavar="HxW",
                         help="stylize (and write) frames at this size (default: source size)")
    io.add_argument("--max-pixels", type=int, default=MAX_WORK_PIXELS, metavar="N",
                    help="refuse frames larger than N pixels, before any network runs where the size is known "
                         "(memory grows with pixels; default: %(default)s, for an 8 GB machine)")
    io.add_argument("--capture-size", metavar="HxW", help="ask the camera for this resolution (csi: sensor mode)")
    io.add_argument("--capture-fps", type=float, metavar="N", help="ask the camera for this frame rate")
    io.add_argument("--max-fps", type=float, metavar="N", help="stylize at most N frames per second")
    io.add_argument("--stall-timeout", type=float, default=10.0, metavar="S",
                    help="give up on a source that delivers no frame for S seconds (default: %(default)s)")
    io.add_argument("--max-frames", type=int, metavar="N", help="stop after reading N frames")
    io.add_argument("--fourcc", metavar="CODE", help="video codec FourCC (default by container: mp4v, MJPG for .avi)")
    io.add_argument("--no-audio", action="store_true", help="do not copy the input's audio")
    bench = parser.add_argument_group("benchmark")
    bench.add_argument("--benchmark", action="store_true",
                       help="measure end-to-end pipeline FPS against the bare model on synthetic video")
    bench.add_argument("--bench-frames", type=int, default=48, metavar="N", help="frames per measurement")
    bench.add_argument("--bench-json", metavar="FILE", help="also write the benchmark result as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    # Everything cheap is checked before a model loads or a camera opens.
    size = parse_frame_size(args.frame_size, "--frame-size", VideoError) if args.frame_size else None
    if size and args.output and size.even() != size:
        raise InfusionNetError(f"--frame-size {args.frame_size}: video files store even sizes only (the encoder "
                               f"would drop the odd row/column); use --frame-size {size.even()}")
    capture_size = parse_frame_size(args.capture_size, "--capture-size", VideoError) if args.capture_size else None
    for option, value in (("--max-fps", args.max_fps), ("--capture-fps", args.capture_fps),
                          ("--stall-timeout", args.stall_timeout)):
        if value is not None and not value > 0:
            raise InfusionNetError(f"{option} must be positive, got {value:g}")
    if args.max_frames is not None and args.max_frames < 1:
        raise InfusionNetError(f"--max-frames must be at least 1, got {args.max_frames}")
    styles = style_list(args.style)
    if args.benchmark:
        return _benchmark(args, styles, size)
    if not args.input:
        raise InfusionNetError("--input is required: " + video_sources.SOURCE_HELP)
    if not args.output and not args.display:
        raise InfusionNetError("nothing to do: give --output FILE and/or --display")
    if args.output:
        if Path(args.output).exists() and not args.overwrite:
            raise InfusionNetError(f"{args.output} already exists (pass --overwrite to replace it)")
        video_file_sink.fourcc_for(Path(args.output), args.fourcc)
        check_output_location(args.output)  # before the model loads and a frame runs
    if args.display:
        video_display.check_display()
    spec = video_sources.parse_source(args.input)  # fail on a missing file before loading the model
    _check_frame_budget(spec, size, args.max_pixels)

    stylizer = make_stylizer(args)
    try:
        return _stylize(args, stylizer, styles, spec, size, capture_size)
    finally:
        close = getattr(stylizer, "close", None)
        if close:
            close()


def _stylize(args, stylizer, styles, spec, size, capture_size) -> int:
    controls = Controls()
    print(f"stylizing {spec.label} -> " + " and ".join(filter(None, [args.output, "window" if args.display else ""]))
          + (f" with {len(styles)} styles ({video_display.DisplaySink.KEYS_HELP})" if args.display and len(styles) > 1 else "")
          + "; Ctrl-C stops and keeps what was done", file=sys.stderr)
    with _progress(spec, args) as sinks:  # SIGTERM arrives as KeyboardInterrupt (cli.main)
        try:
            summary = video_stylize.stylize_video(
                args.input, stylizer, styles, output=args.output, display=args.display, size=size,
                capture_size=capture_size, capture_fps=args.capture_fps, max_fps=args.max_fps,
                overlay=args.overlay, stall_timeout=args.stall_timeout, fourcc=args.fourcc,
                max_frames=args.max_frames, keep_audio=not args.no_audio, controls=controls, extra_sinks=sinks)
        except Exception as error:
            partial = getattr(error, "summary", None)
            if partial is not None:  # the stylizer failed mid-way: say what was kept, then the error
                print("\n".join(partial.lines()), file=sys.stderr)
            raise
    print("\n".join(summary.lines()))
    if not summary.produced:
        reason = summary.message or summary.stop_reason
        raise VideoError(f"no frame was stylized ({reason})")
    return 0


def _check_frame_budget(spec, size, max_pixels: int) -> None:
    """Refuse frames over the pixel budget now when their size is known (--frame-size, or a file's header)."""
    if max_pixels < 1:
        raise InfusionNetError(f"--max-pixels must be at least 1, not {max_pixels}")
    if size is None and not spec.live:
        capture = cv2.VideoCapture(spec.target)
        size = (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
        capture.release()
        size = size if min(size) > 0 else None
    if size is not None:
        images.check_work(size, "keep", max_pixels, spec.label)


def style_list(arg: str):
    """--style as video Style entries: one image, a sample, or every image of a folder (sorted)."""
    path = samples.resolve_image_arg(arg)
    if Path(path).is_dir():
        paths = images.list_images(path)
        if not paths:
            raise InfusionNetError(f"{arg}: no images in this folder")
    else:
        if not Path(path).exists():
            raise InfusionNetError(f"{arg}: no such style image")
        paths = [Path(path)]
    # Images load when first selected, so a big folder does not slow the start.
    return [Style(Path(p).stem, (lambda p=p: images.read_image(p))) for p in paths]


def make_stylizer(args):
    """A FrameStylizer (BGR frames in and out): the runtime Stylizer, over --model's export on
    --backend, or over the --checkpoint network itself in PyTorch."""
    if args.model:
        load_backend(args.backend)
        options = backend_options(args, args.backend)
        # Opened here, on the thread that will run inference: CUDA contexts are per thread.
        stylizer = Stylizer(args.model, backend=args.backend, checkpoint=args.checkpoint,
                            max_pixels=getattr(args, "max_pixels", None), **options).open()
        return bgr_stylizer(stylizer)
    return bgr_stylizer(torch_stylizer(args).open())


def torch_stylizer(args):
    """The runtime Stylizer over the --checkpoint network in PyTorch (no export needed)."""
    models_device.torch_device(args.device)  # before the model loads
    model = default_model.resolve_network(args.checkpoint, args.variant, args.seed)[0]
    models.validate_style_size(model.variant, args.style_size)
    return torch_backend.network_stylizer(model, args.style_size, max_pixels=getattr(args, "max_pixels", None),
                                          device=args.device)


def _benchmark(args, styles, size) -> int:
    stylizer = make_stylizer(args)
    try:
        stylizer.set_style(styles[0].load())
        result = video_bench.video_benchmark(stylizer, size=size or (256, 256), frames=args.bench_frames)
    finally:
        close = getattr(stylizer, "close", None)
        if close:
            close()
    result["model"] = args.model or describe(args.checkpoint, args.seed)
    result["backend"] = args.backend if args.model else f"torch-{args.device}"
    print("\n".join(video_bench.format_lines(result)))
    if args.bench_json:
        result["machine"] = machine.describe_machine()
        with atomic_path(args.bench_json) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.bench_json}")
    return 0


@contextmanager
def _progress(spec, args):
    """A progress line on a terminal while frames are written: a bar for files, a counter live."""
    if args.display or not sys.stderr.isatty():
        yield []
        return
    total = None
    if not spec.live:
        capture = cv2.VideoCapture(spec.target)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        capture.release()
        if args.max_frames and total:
            total = min(total, args.max_frames)
    columns = [rich_progress.TextColumn("[bold]video"), rich_progress.BarColumn(), rich_progress.MofNCompleteColumn(),
               rich_progress.TimeRemainingColumn(), rich_progress.TextColumn("{task.description}")]
    with rich_progress.Progress(*columns, transient=True) as progress:
        task = progress.add_task("", total=total)
        yield [video_threads.CallbackSink(lambda frame: progress.update(task, advance=1, description=frame.style))]
