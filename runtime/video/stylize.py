"""The whole job: parse --input, open it, build the sinks, run the pipeline, finalize."""
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2

from .display import DisplaySink, check_display
from .errors import VideoError
from .file_sink import VideoFileSink, fourcc_for
from .pipeline import run_pipeline
from .sources import default_opener, open_source, parse_source, source_fps
from .styles import Controls, Style, StyleCycler
from .summary import VideoSummary


def stylize_video(source: str, stylizer, styles: Sequence[Style], output: Optional[str] = None,
                  display: bool = False, size: Optional[Tuple[int, int]] = None,
                  capture_size: Optional[Tuple[int, int]] = None, capture_fps: Optional[float] = None,
                  max_fps: Optional[float] = None, overlay: bool = False, stall_timeout: float = 10.0,
                  fourcc: Optional[str] = None, max_frames: Optional[int] = None, keep_audio: bool = True,
                  controls: Optional[Controls] = None, extra_sinks: Sequence = (),
                  opener: Callable = default_opener) -> VideoSummary:
    """Stylize ``source`` (see parse_source) into ``output`` and/or a window.

    ``stylizer`` follows FrameStylizer (BGR frames). Output keeps the source's frame rate and
    frame size, or ``size`` (H, W). Raises SourceError when the source cannot be opened; later
    problems end the run and are reported in the summary.
    """
    if not output and not display and not extra_sinks:
        raise VideoError("nothing to do: give --output FILE and/or --display")
    if display:
        check_display()
    if output:
        fourcc_for(Path(output), fourcc)  # an unknown container fails before the camera opens
    controls = controls or Controls()
    spec = parse_source(source, csi_size=capture_size or (1080, 1920), csi_fps=capture_fps or 30.0,
                        output_size=size)
    capture = open_source(spec, timeout=stall_timeout, capture_size=capture_size, capture_fps=capture_fps,
                          opener=opener)
    summary = None
    try:
        fps, reported = source_fps(capture)
        expected = 0
        if not spec.live:
            try:
                expected = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            except Exception:
                expected = 0
        sinks: List = []
        if output:
            audio_source = spec.target if (keep_audio and spec.kind == "file") else None
            sinks.append(VideoFileSink(output, fps, fourcc=fourcc, real_time=spec.live, audio_from=audio_source))
        if display:
            sinks.append(DisplaySink(controls))
        sinks.extend(extra_sinks)
        summary = run_pipeline(capture, stylizer, live=spec.live, sinks=sinks, styles=StyleCycler(styles, stylizer),
                               controls=controls, label=spec.label, size=size, stall_timeout=stall_timeout,
                               max_fps=max_fps, overlay=overlay, max_frames=max_frames,
                               fps_in=fps if reported else None, expected_frames=expected)
    except BaseException as error:
        summary = getattr(error, "summary", None)
        raise
    finally:
        if summary is None or not summary.capture_alive:
            # release() while another thread is inside read() can crash some backends; a stalled
            # source's reader is left to its daemon thread and process exit instead.
            capture.release()
    if output and not reported and summary.output:
        summary.audio = (summary.audio + "; " if summary.audio else "") + \
            f"the source reports no frame rate: the file is written at {fps:g} fps"
    return summary
