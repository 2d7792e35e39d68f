"""MP4 writing (H.264 through PyAV) and the camera mosaic people look at.

Example:
    >>> with Mp4Writer("rollout.mp4", fps=50) as video:
    ...     video.write(mosaic({"cam_high": image, "cam_low": image}, caption="step 0"))
"""

import math
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

CAPTION_HEIGHT_PX = 28


class Mp4Writer:
    """Writes H×W×3 uint8 RGB frames to an H.264 MP4 file at ``fps`` frames per second.

    The first frame fixes the size; odd sizes are padded by one pixel (H.264 needs even sizes).
    Use as a context manager, or call ``close()``: the file is complete only then.
    """

    def __init__(self, path: str | Path, fps: int = 50):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "23", "preset": "veryfast"}
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be H×W×3 uint8, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        padded = (height + height % 2, width + width % 2)
        if self._size is None:
            self._size = padded
            self._stream.height, self._stream.width = padded
        elif padded != self._size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the first {self._size}")
        if padded != (height, width):
            frame = np.pad(frame, ((0, padded[0] - height), (0, padded[1] - width), (0, 0)))
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def mosaic(images: dict[str, np.ndarray], caption: str = "", columns: int = 2) -> np.ndarray:
    """Tile same-sized camera images in a grid (row-major, ``columns`` wide), each labelled with
    its camera name, with ``caption`` in a bar above. Returns one RGB uint8 frame."""
    if not images:
        raise ValueError("mosaic needs at least one image")
    tiles = []
    for name, image in images.items():
        tile = np.array(image, dtype=np.uint8, order="C")  # a C-ordered copy to draw on
        cv2.putText(tile, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        tiles.append(tile)
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    grid = np.concatenate(
        [np.concatenate(tiles[r * columns : (r + 1) * columns], axis=1) for r in range(rows)]
    )
    bar = np.full((CAPTION_HEIGHT_PX, grid.shape[1], 3), 24, dtype=np.uint8)
    cv2.putText(bar, caption, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1)
    return np.concatenate([bar, grid])
