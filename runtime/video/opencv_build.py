"""What this OpenCV was built with (GStreamer for pipelines and CSI cameras, a GUI for --display)."""
import re

import cv2


def _build_info_value(name: str) -> str:
    """A value from cv2.getBuildInformation(), e.g. 'GUI' -> 'NONE' or 'GTK3'."""
    match = re.search(rf"^\s*{re.escape(name)}:\s*(.*)$", cv2.getBuildInformation(), flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def gstreamer_available() -> bool:
    return _build_info_value("GStreamer").upper().startswith("YES")


def gui_available() -> bool:
    value = _build_info_value("GUI")
    return bool(value) and not value.upper().startswith("NONE")
