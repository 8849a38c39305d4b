"""Real-time video stylization: capture -> stylize -> write/display, joined by bounded queues.

Three stages run at once so that reading, decoding and encoding overlap with the network:

    capture thread --FrameQueue--> inference (caller's thread) --FrameQueue--> output thread
    read, resize                   stylize, overlay                          writer, display

Queue policy decides the behaviour: files are processed losslessly and in order; live sources
(camera, URL, GStreamer, CSI) stay real-time by dropping the oldest queued frame. Whatever ends a
run, the output video is released and renamed into place, so it is always playable; nothing is
written when no frame was produced. Torch-free and Python 3.8 compatible (runs on JetPack 5).

One module per job; import what you need from the module that does it:

    stylize       stylize_video: the whole job (parse, open, run, finalize)
    pipeline      run_pipeline: the three stages on an opened capture; the inference loop
    sources       what --input names (parse_source) and opening it (open_source)
    sizes         parse_hw (--size HxW), even_size
    frames        Frame, EndOfStream and the STOP_* reasons, FrameQueue
    threads       CaptureThread, OutputThread, CallbackSink
    styles        FrameStylizer, bgr_stylizer, Style, StyleCycler, Controls
    file_sink     VideoFileSink (atomic, audio kept with ffmpeg), fourcc_for
    display       DisplaySink, check_display
    overlay       Overlay (FPS, latency, style name on the frame)
    summary       VideoSummary, stage_stats
    opencv_build  gstreamer_available, gui_available
    errors        VideoError, SourceError
"""
