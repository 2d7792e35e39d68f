"""Cameras of a real robot: the ``Camera`` protocol, and an OpenCV camera that grabs in a thread.

A camera delivers RGB images, uint8 (H, W, 3), each with the ``time.monotonic()`` second it was
captured at. ``read()`` never waits for the next frame: it returns the latest one, so a 50 Hz
control loop is not held up by a camera's own frame rate; a frame older than the camera's
timeout (or none at all) is an error, not a silently frozen picture.

Example:
    camera = OpenCVCamera("cam_high", 0, size=(480, 640), fps=50)
    camera.connect()
    image, timestamp_s = camera.read()       # (480, 640, 3) uint8 RGB, time.monotonic() seconds
    camera.disconnect()
"""

import logging
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from kinema.hardware.robot import RobotError

logger = logging.getLogger(__name__)


@runtime_checkable
class Camera(Protocol):
    """A named camera that delivers (H, W, 3) uint8 RGB images of ``size`` (height, width)."""

    @property
    def name(self) -> str:
        """The camera's name in observations, e.g. ``cam_high``."""
        ...

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of its images, pixels."""
        ...

    def connect(self) -> None:
        """Start delivering images; raises ``RobotError`` if the camera cannot be opened."""
        ...

    def read(self) -> tuple[np.ndarray, float]:
        """The latest image and the ``time.monotonic()`` second it was captured at; raises
        ``RobotError`` when there is no recent image."""
        ...

    def disconnect(self) -> None:
        """Stop delivering images; harmless when not connected."""
        ...


class OpenCVCamera:
    """A camera (device index, device path or video file) read through ``cv2.VideoCapture``.

    A daemon thread grabs frames continuously, at most ``fps`` a second (a device paces itself;
    a video file would otherwise be decoded as fast as the CPU allows), converts each from
    OpenCV's BGR to RGB, resizes it to ``size`` if the device delivers another size (area
    interpolation), and keeps the latest with its ``time.monotonic()`` timestamp.

    Args:
        name: the camera's name in observations.
        index_or_path: a device index (``0``), a device path (``/dev/video0``) or a video file.
        size: (height, width) of the images ``read()`` returns, pixels.
        fps: frames per second asked of the device, and the most the thread grabs.
        timeout_s: how old (s) the latest frame may be before ``read()`` raises; also how long
            ``read()`` waits for the first frame after ``connect()``.
    """

    def __init__(
        self,
        name: str,
        index_or_path: int | str | Path,
        size: tuple[int, int] = (480, 640),
        fps: float = 50.0,
        timeout_s: float = 0.5,
    ):
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"OpenCVCamera.size must be (height, width) > 0, got {size}")
        if fps <= 0 or timeout_s <= 0:
            raise ValueError(f"OpenCVCamera: fps and timeout_s must be > 0, got {fps}, {timeout_s}")
        self._name = name
        self.source = index_or_path
        self._size = (int(size[0]), int(size[1]))
        self.fps = fps
        self.timeout_s = timeout_s
        self._capture: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._first_frame = threading.Event()
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, float] | None = None
        self._grabbing = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def connect(self) -> None:
        """Open the device and start the grabbing thread; ``RobotError`` if it does not open."""
        if self._thread is not None:
            return
        source = str(self.source) if isinstance(self.source, Path) else self.source
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            capture.release()
            raise RobotError(f"camera {self.name!r} ({self.source}): cannot be opened")
        height, width = self._size
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        self._capture = capture
        self._stopping.clear()
        self._first_frame.clear()
        self._latest = None
        self._grabbing = True
        self._thread = threading.Thread(
            target=self._grab, args=(capture,), name=f"camera-{self.name}", daemon=True
        )
        self._thread.start()

    def read(self) -> tuple[np.ndarray, float]:
        """The latest (H, W, 3) uint8 RGB image and its ``time.monotonic()`` timestamp (s).

        Raises:
            RobotError: not connected, no frame within ``timeout_s`` of connecting, the device
                stopped delivering (unplugged, end of a video file), or the latest frame is
                older than ``timeout_s``.
        """
        if self._thread is None:
            raise RobotError(f"camera {self.name!r}: read() before connect()")
        if not self._first_frame.wait(self.timeout_s):
            raise RobotError(
                f"camera {self.name!r} ({self.source}): no frame within {self.timeout_s} s"
            )
        with self._lock:
            image, timestamp_s = self._latest
            grabbing = self._grabbing
        if not grabbing:
            raise RobotError(f"camera {self.name!r} ({self.source}) is gone: no more frames")
        age_s = time.monotonic() - timestamp_s
        if age_s > self.timeout_s:
            raise RobotError(
                f"camera {self.name!r} ({self.source}) stalled: the latest frame is "
                f"{age_s:.2f} s old (at most {self.timeout_s} s)"
            )
        return image, timestamp_s

    def disconnect(self) -> None:
        """Stop the thread and release the device; harmless when not connected."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join()
        self._capture.release()
        self._thread = None
        self._capture = None

    def _grab(self, capture: cv2.VideoCapture) -> None:
        """Grab frames until ``disconnect()`` or until the device stops delivering."""
        period_s = 1.0 / self.fps
        next_grab_s = time.monotonic()
        while not self._stopping.is_set():
            ok, frame = capture.read()
            if not ok:
                logger.warning("camera %r (%s) stopped delivering frames", self.name, self.source)
                break
            timestamp_s = time.monotonic()
            image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            height, width = self._size
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            with self._lock:
                self._latest = (image, timestamp_s)
            self._first_frame.set()
            next_grab_s = max(next_grab_s + period_s, timestamp_s)
            self._stopping.wait(next_grab_s - time.monotonic())
        with self._lock:
            self._grabbing = False
