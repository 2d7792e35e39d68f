"""``kinema dataset visualize``: one MP4 per episode, cameras side by side, joints plotted below.

Each frame shows every camera of the dataset in a row, captioned with the episode, the frame and
its task text, and underneath the episode's joint trajectories: the 14 state entries (each
scaled to its own range over the episode, one colour per joint, thick) with the actions in the
same colour (thin), and a cursor at the current frame.

Example:

    videos = visualize(Path("outputs/dataset"), episodes=[0], out=Path("outputs/viz"))
"""

from pathlib import Path

import cv2
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from tqdm import tqdm

from kinema.datasets.info import DatasetError, require_dataset
from kinema.video import Mp4Writer, mosaic

PLOT_HEIGHT_PX = 160
_IMAGE_PREFIX = "observation.images."


def _colours(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct RGB colours around the hue circle."""
    hues = np.linspace(0, 179, count, endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 255, np.uint8)], axis=1)
    rgb = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
    return [tuple(int(c) for c in colour) for colour in rgb]


def trajectory_plot(state: np.ndarray, action: np.ndarray, width: int) -> np.ndarray:
    """The plot panel (``PLOT_HEIGHT_PX`` × ``width`` RGB) of an episode's (T, D) trajectories,
    each joint scaled to the range its state and action span over the episode."""
    panel = np.full((PLOT_HEIGHT_PX, width, 3), 16, dtype=np.uint8)
    frames = len(state)
    low = np.minimum(state.min(axis=0), action.min(axis=0))
    span = np.maximum(np.maximum(state.max(axis=0), action.max(axis=0)) - low, 1e-6)
    x = np.linspace(4, width - 5, frames) if frames > 1 else np.full(1, width / 2)
    margin = 6
    for joint, colour in enumerate(_colours(state.shape[1])):
        for values, thickness in ((state[:, joint], 2), (action[:, joint], 1)):
            y = (
                PLOT_HEIGHT_PX
                - margin
                - (values - low[joint]) / span[joint] * (PLOT_HEIGHT_PX - 2 * margin)
            )
            points = np.stack([x, y], axis=1).round().astype(np.int32)
            cv2.polylines(panel, [points], False, colour, thickness, cv2.LINE_AA)
    return panel


def visualize_episode(dataset: LeRobotDataset, episode: int, path: Path) -> int:
    """Write ``episode`` of ``dataset`` (loaded with that episode) to ``path``; frames written."""
    cameras = [key for key in dataset.meta.camera_keys if key.startswith(_IMAGE_PREFIX)]
    if not cameras:
        raise DatasetError(f"{dataset.root}: the dataset has no camera to show")
    items = [dataset[i] for i in range(len(dataset))]
    state = np.stack([item["observation.state"].numpy() for item in items])
    action = np.stack([item["action"].numpy() for item in items])
    with Mp4Writer(path, fps=dataset.fps) as video:
        for index, item in enumerate(items):
            images = {
                key.removeprefix(_IMAGE_PREFIX): (item[key].numpy().transpose(1, 2, 0) * 255.0)
                .clip(0, 255)
                .astype(np.uint8)
                for key in cameras
            }
            top = mosaic(
                images,
                f"episode {episode}  |  frame {index}  |  {item['task']}",
                columns=len(images),
            )
            if index == 0:
                plot = trajectory_plot(state, action, top.shape[1])
            panel = plot.copy()
            cursor = round(4 + (top.shape[1] - 9) * index / max(len(items) - 1, 1))
            cv2.line(panel, (cursor, 0), (cursor, PLOT_HEIGHT_PX - 1), (255, 255, 255), 1)
            video.write(np.concatenate([top, panel]))
    return len(items)


def visualize(
    root: Path, episodes: list[int] | None, out: Path, repo_id: str = "local/kinema"
) -> dict[int, str]:
    """Write one MP4 per episode (all when ``episodes`` is None) under ``out``; their paths."""
    require_dataset(root)
    total = LeRobotDataset(repo_id, root=root, episodes=[0]).meta.total_episodes
    chosen = list(range(total)) if episodes is None else episodes
    unknown = [e for e in chosen if not 0 <= e < total]
    if unknown:
        raise DatasetError(f"{root} has episodes 0–{total - 1}; no episode {unknown}")
    written = {}
    for episode in tqdm(chosen, desc="visualize", unit="episode"):
        dataset = LeRobotDataset(repo_id, root=root, episodes=[episode])
        path = out / f"episode_{episode:03d}.mp4"
        visualize_episode(dataset, episode, path)
        written[episode] = str(path.resolve())
    return written
