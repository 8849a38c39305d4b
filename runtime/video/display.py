"""Showing frames in a window, with keys that switch styles or quit."""
import os
import sys

import cv2

from .errors import VideoError
from .frames import Frame
from .opencv_build import gui_available
from .styles import Controls


class DisplaySink:
    """Shows frames in a window; n/p switch to the next/previous style, q or Esc quits.

    Every HighGUI call happens on the output thread (GTK and Qt want one GUI thread).
    """
    KEYS_HELP = "keys: n next style, p previous style, q/Esc quit"

    def __init__(self, controls: Controls, title: str = "infusionnet"):
        check_display()
        self.controls, self.title = controls, title
        self._opened = False
        self._seen_visible = False

    def write(self, frame: Frame) -> None:
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._opened = True
        cv2.imshow(self.title, frame.image)
        self.poll()

    def poll(self) -> None:
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            self.controls.quit.set()
        elif key in (ord("n"), ord("N"), ord(" ")):
            self.controls.next_style()
        elif key in (ord("p"), ord("P")):
            self.controls.previous_style()
        if self._opened:
            # Closing the window quits. Backends without this property answer -1 all along, so
            # only a window once seen visible counts as closed.
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
            if visible:
                self._seen_visible = True
            elif self._seen_visible:
                self.controls.quit.set()

    def finalize(self):
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        return None


def check_display() -> None:
    """Raise a clear error when frames cannot be shown (headless OpenCV, no display server)."""
    if not gui_available():
        raise VideoError("--display needs OpenCV with GUI support, but this OpenCV was built without it "
                         "(opencv-python-headless): pip uninstall opencv-python-headless && pip install "
                         "opencv-python (on Jetson, JetPack's OpenCV has GUI support)")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise VideoError("--display: no display server (DISPLAY is not set); run it in a desktop session, "
                         "over ssh -X, or write a file with --output instead")
