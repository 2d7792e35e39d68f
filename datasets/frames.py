"""Decode all frames of one episode of one camera, in one sequential pass.

A LeRobotDataset v3 video file holds many episodes one after another; an episode starts at
``from_timestamp`` seconds into it. Seeking once to that keyframe and decoding forward gives
every frame of the episode for the cost of decoding each frame once — far cheaper than seeking
anew for every training sample, which is what per-item loaders do. Image features (PNG bytes
in the data parquet files) are decoded the same way, one episode at a time.

Example:
    frames = decode_episode(source, episode=3, length=400, fps=50.0)   # (400, H, W, 3) uint8
"""

import io

import av
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from kinema.datasets.info import DatasetError
from kinema.datasets.table import ImageSource


def _decode_video(source: ImageSource, episode: int, length: int, fps: float) -> np.ndarray:
    """Frames ``[start_s, start_s + length / fps)`` of the video, as (length, H, W, 3) uint8."""
    half_frame_s = 0.5 / fps
    frames: list[np.ndarray] = []
    try:
        with av.open(str(source.path)) as container:
            stream = container.streams.video[0]
            if source.start_s > 0:
                container.seek(int(source.start_s / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < source.start_s - half_frame_s:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == length:
                    break
    except (av.FFmpegError, OSError) as error:
        raise DatasetError(
            f"{source.path}: episode {episode}: not a decodable video ({error})"
        ) from error
    if len(frames) != length:
        raise DatasetError(
            f"{source.path}: episode {episode}: {len(frames)} frames decoded from "
            f"{source.start_s:.3f} s, the episode has {length} (a truncated video?)"
        )
    return np.stack(frames)


def _decode_images(source: ImageSource, episode: int, length: int) -> np.ndarray:
    """The PNG images of ``episode`` in column ``source.column`` of its data file."""
    try:
        table = pq.read_table(source.path, columns=[source.column, "episode_index", "index"])
        table = table.filter(pc.equal(table.column("episode_index"), episode))
        table = table.sort_by("index")
        images = [
            np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"))
            for cell in table.column(source.column).to_pylist()
        ]
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"{source.path}: episode {episode}: images of {source.column} unreadable ({error})"
        ) from error
    if len(images) != length:
        raise DatasetError(
            f"{source.path}: episode {episode}: {len(images)} images of {source.column}, the "
            f"episode has {length}"
        )
    return np.stack(images)


def decode_episode(source: ImageSource, episode: int, length: int, fps: float) -> np.ndarray:
    """All ``length`` frames of ``episode`` from ``source``, as (length, H, W, 3) uint8 RGB;
    ``DatasetError`` naming the file and the episode when they cannot all be decoded."""
    if source.dtype == "video":
        return _decode_video(source, episode, length, fps)
    return _decode_images(source, episode, length)
