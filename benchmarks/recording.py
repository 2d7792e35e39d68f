"""Recording and loading speed: ``kinema record`` and our training-window loader, next to
lerobot's own loader on the same dataset, measured in the same run.

Figures:
  record_fps                  frames per second of ``kinema record`` with the TransferCube expert,
                              2 cameras at 96×128: simulation, expert control (500 Hz WBC + MPC),
                              rendering, lerobot's writer and video encoding, all included.
                              Goal: ≥ 50 (keeps up with ALOHA's 50 Hz).
  load_samples_per_s          training windows per second from our ``WindowLoader`` over one epoch
                              of that dataset (2 history steps of both cameras and the states,
                              50-action chunk, batch 64, 2 worker processes), startup included.
  lerobot_load_samples_per_s  the same windows from lerobot's ``LeRobotDataset`` with
                              ``delta_timestamps`` (uint8 frames, its fastest setting) through a
                              torch ``DataLoader`` with the same batch size and workers, one epoch.
  load_speedup                ours / lerobot's. Goal: ≥ 1.
  load_augmented_samples_per_s  ours with random shift and colour jitter on.

Usage:  .venv/bin/python -P benchmarks/recording.py [--episodes 10] [--out DIR]
Ends with one JSON line of the figures.
"""

import argparse
import json
import tempfile
from pathlib import Path

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from torch.utils.data import DataLoader

from kinema.datasets.augment import AugmentConfig
from kinema.datasets.loader import WindowConfig, WindowLoader
from kinema.datasets.record import RecordConfig, record
from kinema.datasets.throughput import measure_throughput

CAMERAS = ("cam_high", "cam_left_wrist")
IMAGE_SIZE = (96, 128)
HISTORY, HORIZON, BATCH, WORKERS = 2, 50, 64, 2
REALTIME_FPS = 50


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def lerobot_loader(root: Path, fps: int) -> DataLoader:
    """lerobot's loader for the same windows as ours: history, chunk, batch size, workers."""
    history = [(step - HISTORY + 1) / fps for step in range(HISTORY)]
    keys = ["observation.state", "observation.environment_state"]
    keys += [f"observation.images.{camera}" for camera in CAMERAS]
    delta_timestamps = {key: history for key in keys}
    delta_timestamps["action"] = [step / fps for step in range(HORIZON)]
    dataset = LeRobotDataset(
        "local/kinema", root=root, delta_timestamps=delta_timestamps, return_uint8=True
    )
    return DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        prefetch_factor=4,
        worker_init_fn=_one_thread,
        generator=torch.Generator().manual_seed(0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=10, help="TransferCube episodes to record")
    parser.add_argument("--out", type=Path, default=None, help="dataset directory (default: temp)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch) / "dataset"
        recorded = record(
            RecordConfig(
                task="TransferCube",
                episodes=args.episodes,
                out=root,
                cameras=CAMERAS,
                image_size=IMAGE_SIZE,
                first_seed=0,
            )
        )
        config = WindowConfig(
            observation_steps=HISTORY, action_steps=HORIZON, batch_size=BATCH, workers=WORKERS
        )
        ours = measure_throughput(WindowLoader(root, config), desc="kinema loader")
        augmented_config = WindowConfig(
            observation_steps=HISTORY,
            action_steps=HORIZON,
            batch_size=BATCH,
            workers=WORKERS,
            augment=AugmentConfig(),
        )
        augmented = measure_throughput(
            WindowLoader(root, augmented_config), desc="kinema loader, augmented"
        )
        theirs = measure_throughput(lerobot_loader(root, fps=REALTIME_FPS), desc="lerobot loader")

    print(f"recording: {recorded['frames']} frames, {recorded['record_fps']} frames/s")
    for label, figures in (("kinema", ours), ("kinema+aug", augmented), ("lerobot", theirs)):
        print(
            f"{label:11s} {figures['samples']} windows in {figures['seconds']} s: "
            f"{figures['samples_per_s']} samples/s (first batch after {figures['first_batch_s']} s)"
        )
    print(
        json.dumps(
            {
                "episodes": args.episodes,
                "frames": recorded["frames"],
                "record_fps": recorded["record_fps"],
                "record_over_realtime": round(recorded["record_fps"] / REALTIME_FPS, 3),
                "load_samples_per_s": ours["samples_per_s"],
                "load_augmented_samples_per_s": augmented["samples_per_s"],
                "lerobot_load_samples_per_s": theirs["samples_per_s"],
                "load_speedup": round(ours["samples_per_s"] / theirs["samples_per_s"], 2),
                "window": {
                    "history": HISTORY,
                    "horizon": HORIZON,
                    "batch": BATCH,
                    "workers": WORKERS,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
