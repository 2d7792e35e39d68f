"""Recorded datasets for the dataset tests: expert episodes, and copies with a damaged file."""

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kinema.controllers.kinematics import Kinematics
from kinema.datasets.features import environment_features, frame_values
from kinema.datasets.record import subtask_text
from kinema.datasets.recorder import EpisodeRecorder
from kinema.sim.experts import run_expert_episode

REPO_ID = "local/test"


def record_expert_episodes(root: Path, seeds: list[int], resume: bool = False):
    """Record the TransferCube expert for ``seeds``; return what was recorded, per episode."""
    env = gym.make("kinema/TransferCube-v0", cameras=["cam_high"], image_size=(48, 64)).unwrapped
    recorder = (
        EpisodeRecorder.resume(root, REPO_ID)
        if resume
        else EpisodeRecorder.create(root, REPO_ID, 50, environment_features(env))
    )
    kinematics = Kinematics(env.sim.model)
    recorded = []
    for seed in seeds:
        frames = []
        previous = {}

        def on_frame(observation, action, info, frames=frames, previous=previous):
            values = frame_values(previous["observation"], action, kinematics)
            recorder.add_frame(values, subtask_text(previous["info"]))
            frames.append(values)
            previous["observation"], previous["info"] = observation, info

        previous["observation"], previous["info"] = env.reset(seed=seed)
        # run_expert_episode resets with the same seed: the same first observation.
        run_expert_episode(env, "TransferCube", seed, on_frame=on_frame)
        recorder.save_episode()
        recorded.append(frames)
    recorder.close()
    env.close()
    return recorded


def record_numbered_episodes(root: Path, episodes: int) -> None:
    """Record ``episodes`` episodes of 30 frames into ``root`` (created, or resumed when it
    exists), printing the episode count after each save. Episode k (counted over the whole
    dataset) has the task text "episode k", state k + frame / 100, action −state, and a camera
    image of grey (37 k) mod 256."""
    features = {
        "observation.state": {"dtype": "float32", "shape": (14,), "names": None},
        "action": {"dtype": "float32", "shape": (14,), "names": None},
        "observation.images.cam_high": {
            "dtype": "video",
            "shape": (48, 64, 3),
            "names": ["height", "width", "channels"],
        },
    }
    recorder = (
        EpisodeRecorder.resume(root, REPO_ID)
        if root.exists()
        else EpisodeRecorder.create(root, REPO_ID, 50, features)
    )
    for _ in range(episodes):
        number = recorder.episodes
        for frame in range(30):
            state = np.full(14, number + frame / 100, np.float32)
            image = np.full((48, 64, 3), (number * 37) % 256, np.uint8)
            values = {"observation.state": state, "action": -state}
            values["observation.images.cam_high"] = image
            recorder.add_frame(values, f"episode {number}")
        recorder.save_episode()
        print(recorder.episodes, flush=True)
    recorder.close()


def corrupted_copy(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    return copy


def put_nan_action(data: Path, row: int) -> None:
    """Overwrite entry 3 of the action in ``row`` of the parquet file ``data`` with NaN."""
    table = pq.read_table(data)
    actions = np.stack(table.column("action").to_numpy(zero_copy_only=False)).copy()
    actions[row, 3] = np.nan
    column = pa.array(list(actions), type=table.schema.field("action").type)
    pq.write_table(table.set_column(table.column_names.index("action"), "action", column), data)


FOREIGN_REPO_ID = "someone/towels"
FOREIGN_LENGTHS = (20, 13)
FOREIGN_TASKS = ("fold the towel", "stack the cups")
FOREIGN_IMAGE_SHAPE = (24, 32, 3)


def foreign_value(episode: int, frame: int, entries: int) -> np.ndarray:
    """The state written at ``frame`` of ``episode`` in the foreign dataset (the action is the
    state + 0.5): every entry tells where it came from."""
    return (episode * 1000 + frame + np.arange(entries) / 100).astype(np.float32)


def foreign_grey(frame: int) -> int:
    """The grey level of both cameras' images at ``frame``."""
    return 20 + 10 * frame


def write_foreign_dataset(root: Path) -> None:
    """A dataset written directly with lerobot's API, as another lab would: other camera names
    (``top`` as video, ``wrist`` as PNG images in the parquet files), a 16-value state and
    action, 30 fps, two episodes of ``FOREIGN_LENGTHS`` frames."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    camera = {"shape": FOREIGN_IMAGE_SHAPE, "names": ["height", "width", "channel"]}
    vector = {"dtype": "float32", "shape": (16,), "names": None}
    features = {
        "observation.images.top": {"dtype": "video", **camera},
        "observation.images.wrist": {"dtype": "image", **camera},
        "observation.state": vector,
        "action": vector,
    }
    dataset = LeRobotDataset.create(FOREIGN_REPO_ID, fps=30, root=root, features=features)
    for episode, (length, task) in enumerate(zip(FOREIGN_LENGTHS, FOREIGN_TASKS, strict=True)):
        for frame in range(length):
            image = np.full(FOREIGN_IMAGE_SHAPE, foreign_grey(frame), dtype=np.uint8)
            state = foreign_value(episode, frame, 16)
            dataset.add_frame(
                {
                    "observation.images.top": image,
                    "observation.images.wrist": image,
                    "observation.state": state,
                    "action": state + 0.5,
                    "task": task,
                }
            )
        dataset.save_episode()
    dataset.finalize()
