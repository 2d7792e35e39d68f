"""``kinema dataset info``: what a LeRobotDataset v3 directory holds, read from its metadata.

Example:

    summary = dataset_info(Path("outputs/dataset"))
    print(describe(summary))  # episodes, frames, fps, features, tasks
"""

import json
from pathlib import Path
from typing import Any

from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

JOURNAL_DIR = ".recording-journal"
"""Where the recorder journals the episode it is saving (``kinema.datasets.recorder``): while it
exists, the dataset holds a half-saved episode that only the recorder can roll back."""

MISTAKE = "action.is_mistake"
"""The float32 (1,) feature that flags frames whose action heads for a demonstrator's deliberate
mistake (1.0), which training leaves out; recorded by an expert that errs on purpose."""


class DatasetError(ValueError):
    """A directory that is not a readable LeRobotDataset v3 dataset; the message names the file."""


def require_dataset(root: Path) -> None:
    """Raise ``DatasetError`` naming ``meta/info.json`` if ``root`` does not have one."""
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise DatasetError(f"{info_path} is missing: {root} is not a LeRobotDataset v3 directory")


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json`` of the dataset at ``root``; ``DatasetError`` naming it if it is missing
    or not JSON."""
    require_dataset(root)
    info_path = root / "meta" / "info.json"
    try:
        return json.loads(info_path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{info_path}: not valid JSON ({error})") from error


def video_file(root: Path, info: dict[str, Any], key: str, chunk: int, file: int) -> Path:
    """The MP4 of camera feature ``key`` in chunk ``chunk``, file ``file`` (``meta/episodes``
    says which one holds an episode), by ``meta/info.json``'s ``video_path`` pattern."""
    return root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)


def dataset_info(root: Path, repo_id: str = "local/kinema") -> dict[str, Any]:
    """Episodes, frames, fps, robot, features (dtype and shape) and tasks of the dataset."""
    require_dataset(root)
    try:
        meta = LeRobotDatasetMetadata(repo_id, root=root)
    except Exception as error:  # lerobot raises many kinds; name the dataset and pass them on
        raise DatasetError(f"cannot read the metadata in {root / 'meta'}: {error}") from error
    return {
        "root": str(root.resolve()),
        "episodes": meta.total_episodes,
        "frames": meta.total_frames,
        "fps": meta.fps,
        "robot_type": meta.robot_type,
        "features": {
            name: {"dtype": spec["dtype"], "shape": list(spec["shape"])}
            for name, spec in meta.features.items()
        },
        "tasks": [str(task) for task in meta.tasks.index],
    }


def describe(summary: dict[str, Any]) -> str:
    """The summary as readable lines."""
    lines = [
        f"{summary['root']}",
        f"  {summary['episodes']} episodes, {summary['frames']} frames at {summary['fps']} fps "
        f"({summary['frames'] / max(summary['fps'], 1):.1f} s), robot {summary['robot_type']}",
        "  features:",
    ]
    lines += [
        f"    {name:40s} {spec['dtype']:8s} {tuple(spec['shape'])}"
        for name, spec in summary["features"].items()
    ]
    lines.append(f"  tasks ({len(summary['tasks'])}):")
    lines += [f"    {task}" for task in summary["tasks"]]
    return "\n".join(lines)
