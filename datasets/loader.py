"""Training windows from any LeRobotDataset v3 directory, decoded on worker processes.

A window is what one training sample of a chunking policy needs at frame ``t`` of an episode
of length L:

- the observation history, frames ``t - n + 1 … t`` of every observation feature (states as
  ``(n, D)`` float32, cameras as ``(n, 3, H, W)`` uint8), with ``observation_is_pad`` (n,) true
  where a frame lies before the episode start (the first frame is repeated there);
- the action chunk, actions ``t … t + H - 1`` as ``(H, A)`` float32, with ``action_is_pad``
  (H,) true past the episode end (the last action is repeated there), and, for a dataset that
  flags a demonstrator's deliberate mistakes, ``action_is_mistake`` (H,) true on those actions
  (a loss leaves both out);
- the task text of frame ``t`` (``task``, and ``task_index``), ``episode_index`` and
  ``frame_index``.

Every frame of the dataset is the ``t`` of exactly one window per epoch.

How it is fast: each worker process takes its share of the episodes (shuffled per epoch),
keeps ``episodes_in_memory`` of them decoded at a time (every camera decoded once, in one
sequential pass; ``kinema.datasets.frames``), and draws each batch uniformly, without
replacement, from all the frames not yet served in those episodes. An episode that runs out
is replaced by the worker's next one. Batches are assembled in the worker with array indexing
and arrive as tensors: no per-sample decoding, seeking or collation. Images stay uint8 (a
quarter of the bytes of float32 between processes); the policy scales them to 0..1.

Example:
    loader = WindowLoader(Path("outputs/dataset"), WindowConfig(observation_steps=2))
    for batch in loader:          # one epoch
        batch["action"].shape     # (64, 50, 14)
    loader.stats["action"].mean   # normalisation statistics (kinema.datasets.stats)
"""

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from kinema.datasets.augment import AugmentConfig, augment
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.frames import decode_episode
from kinema.datasets.stats import FeatureStats, compute_stats
from kinema.datasets.table import EpisodeTable

ACTION = "action"


@dataclass(frozen=True)
class WindowConfig:
    """What a training window holds and how batches are served.

    Attributes:
        observation_steps: n, frames of observation history (1: the current frame only).
        action_steps: H, actions in the chunk (50 = 1 s at 50 Hz).
        batch_size: windows per batch.
        workers: decoding worker processes (0: decode in the calling process).
        episodes_in_memory: decoded episodes each worker draws windows from at a time; more
            mixes batches better and costs L × cameras × H × W × 3 bytes each.
        augment: image augmentation, or None.
        seed: seeds the episode order, the draws and the augmentation (reproducible).
        drop_last: drop each worker's last, smaller batch of an epoch.
    """

    observation_steps: int = 1
    action_steps: int = 50
    batch_size: int = 64
    workers: int = 2
    episodes_in_memory: int = 8
    augment: AugmentConfig | None = None
    seed: int = 0
    drop_last: bool = False

    def __post_init__(self) -> None:
        for name in ("observation_steps", "action_steps", "batch_size", "episodes_in_memory"):
            if getattr(self, name) < 1:
                raise ValueError(f"WindowConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"WindowConfig.workers must be ≥ 0, got {self.workers}")


def window_rows(
    frames: np.ndarray, lengths: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Frame numbers ``frames[:, None] + offsets`` clamped into each episode, and where they
    were clamped (padding); all arrays (B, len(offsets))."""
    wanted = frames[:, None] + offsets[None, :]
    clamped = np.clip(wanted, 0, lengths[:, None] - 1)
    return clamped, wanted != clamped


class WindowStream(IterableDataset):
    """The batches of one worker process (see the module docstring).

    What is served is set before iterating: ``epochs`` epochs from ``first_epoch`` (None: without
    end), skipping the first ``start_batch`` batches of the whole stream (for resuming). Batch
    ``i`` of the stream belongs to shard ``i mod workers`` of this process (torch's
    ``DataLoader`` takes batches from its workers in turn, so each worker plays the shard whose
    turn its batches fall on); a shard's episodes, draws and augmentation are seeded by (seed,
    epoch, shard), so the stream is the same in every run and from any start.
    """

    def __init__(
        self, table: EpisodeTable, config: WindowConfig, process_index: int, process_count: int
    ):
        self.table = table
        self.config = config
        self.process_index = process_index
        self.process_count = process_count
        self.observation_offsets = np.arange(1 - config.observation_steps, 1)
        self.action_offsets = np.arange(config.action_steps)
        self.first_epoch = 0
        self.epochs: int | None = 1
        self.start_batch = 0

    def _decode(self, row: int) -> dict[str, np.ndarray]:
        table = self.table
        return {
            camera: decode_episode(
                table.image_sources[camera][row],
                int(table.episode_indices[row]),
                int(table.lengths[row]),
                table.fps,
            )
            for camera in table.cameras
        }

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        # The DataLoader's j-th batch comes from worker j mod workers and is batch
        # start_batch + j of the stream: this worker serves the batches of ``role``.
        role = (worker + self.start_batch) % workers
        shard = self.process_index * workers + role
        shards = self.process_count * workers
        to_skip = max(0, -(-(self.start_batch - role) // workers))
        epoch = self.first_epoch
        while self.epochs is None or epoch < self.first_epoch + self.epochs:
            decoded: dict[int, dict[str, np.ndarray]] = {}  # table row → camera → frames
            for number, samples in enumerate(self._epoch_samples(epoch, shard, shards, decoded)):
                if to_skip:
                    to_skip -= 1
                    continue
                for row in np.unique(samples[:, 0]).tolist():
                    if row not in decoded:
                        decoded[row] = self._decode(row)
                rng = np.random.default_rng([self.config.seed, epoch, shard, number])
                yield self._assemble(samples[:, 0], samples[:, 1], decoded, rng)
            epoch += 1

    def _epoch_samples(
        self, epoch: int, shard: int, shards: int, decoded: dict[int, dict[str, np.ndarray]]
    ) -> Iterator[np.ndarray]:
        """The (row, frame) pairs of each batch of ``shard`` in ``epoch``; drops an episode's
        frames from ``decoded`` once all its windows are served."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(
            len(self.table.lengths)
        )
        queue = order[shard::shards].tolist()
        rng = np.random.default_rng([self.config.seed, epoch, shard])
        batch_size = self.config.batch_size
        pool: set[int] = set()
        remaining = np.empty((0, 2), dtype=np.int64)  # (row, frame) not served yet, shuffled
        while queue or len(remaining):
            while queue and len(pool) < self.config.episodes_in_memory:
                row = queue.pop(0)
                pool.add(row)
                frames = np.arange(self.table.lengths[row])
                new = np.stack([np.full_like(frames, row), frames], axis=1)
                remaining = rng.permutation(np.concatenate([remaining, new]))
            samples, remaining = remaining[:batch_size], remaining[batch_size:]
            if len(samples) == batch_size or not self.config.drop_last:
                yield samples
            for row in pool - set(np.unique(remaining[:, 0]).tolist()):
                pool.discard(row)
                decoded.pop(row, None)

    def _assemble(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        decoded: dict[int, dict[str, np.ndarray]],
        rng: np.random.Generator,
    ) -> dict:
        """The batch of windows at ``frames`` of the episodes at table ``rows`` (both (B,))."""
        table = self.table
        lengths, starts = table.lengths[rows], table.starts[rows]
        history, history_pad = window_rows(frames, lengths, self.observation_offsets)
        chunk, chunk_pad = window_rows(frames, lengths, self.action_offsets)
        batch: dict = {}
        for name, values in table.floats.items():
            positions = (chunk if name == ACTION else history) + starts[:, None]
            batch[name] = torch.from_numpy(values[positions])
        for camera in table.cameras:
            windows = np.stack(
                [decoded[row][camera][steps] for row, steps in zip(rows, history, strict=True)]
            )  # (B, n, H, W, 3)
            images = torch.from_numpy(windows).permute(0, 1, 4, 2, 3).contiguous()
            if self.config.augment is not None:
                images = augment(images, self.config.augment, rng)
            batch[camera] = images
        task_index = table.task_index[starts + frames]
        batch["observation_is_pad"] = torch.from_numpy(history_pad)
        batch["action_is_pad"] = torch.from_numpy(chunk_pad)
        if table.mistakes is not None:
            batch["action_is_mistake"] = torch.from_numpy(table.mistakes[chunk + starts[:, None]])
        batch["task_index"] = torch.from_numpy(task_index)
        batch["task"] = [table.tasks[index] for index in task_index]
        batch["episode_index"] = torch.from_numpy(table.episode_indices[rows])
        batch["frame_index"] = torch.from_numpy(frames)
        return batch


def _one_thread_per_worker(_: int) -> None:
    torch.set_num_threads(1)


class WindowLoader:
    """Batches of training windows from the dataset at ``root``, epoch after epoch.

    Args:
        root: a LeRobotDataset v3 directory.
        config: window and batching settings.
        feature_map: renames and slices of the dataset's features (``--map`` rules).
        features: the served features to load (default: every observation feature and action).
        expected: feature → shape a consumer needs (e.g. a policy's); checked before anything
            is decoded, with an error naming ``meta/info.json``.
        process_index, process_count: this training process and how many there are; each gets
            its own share of the episodes. (``kinema train`` passes its data shard here: a
            process playing several shards has a loader for each, see ``for_process``.)

    Iterating gives one epoch (the next one each time); ``stream(start_batch)`` gives batches
    without end, from batch ``start_batch`` on (for training and resuming).
    """

    def __init__(
        self,
        root: Path,
        config: WindowConfig = WindowConfig(),
        feature_map: FeatureMap | None = None,
        features: list[str] | None = None,
        expected: dict[str, tuple[int, ...]] | None = None,
        process_index: int = 0,
        process_count: int = 1,
    ):
        self.config = config
        self.table = EpisodeTable.load(root, feature_map, features)
        if expected is not None:
            self.table.require(expected)
        self.stats: dict[str, FeatureStats] = compute_stats(self.table.floats)
        shards = process_count * max(config.workers, 1)
        if shards > len(self.table.lengths):
            raise ValueError(
                f"{root} has {len(self.table.lengths)} episodes, fewer than the {shards} shards "
                f"of {process_count} process(es) × {max(config.workers, 1)} worker(s); use fewer "
                "workers"
            )
        self._serve(process_index, process_count)

    def _serve(self, process_index: int, process_count: int) -> None:
        """Serve the batches of process ``process_index`` of ``process_count``, from epoch 0."""
        config = self.config
        self.stream_dataset = WindowStream(self.table, config, process_index, process_count)
        self.epoch = 0
        self.loader = DataLoader(
            self.stream_dataset,
            batch_size=None,
            num_workers=config.workers,
            worker_init_fn=_one_thread_per_worker if config.workers else None,
            prefetch_factor=4 if config.workers else None,
            persistent_workers=False,
            # its own generator: starting an iteration must not draw from the global one,
            # or a resumed training run would draw different noise
            generator=torch.Generator().manual_seed(config.seed),
        )

    def for_process(self, process_index: int) -> "WindowLoader":
        """The loader of process ``process_index`` of the same ``process_count``, sharing this
        one's episode table and statistics (read and computed once): what that process's own
        ``WindowLoader`` serves."""
        process_count = self.stream_dataset.process_count
        if not 0 <= process_index < process_count:
            raise ValueError(
                f"WindowLoader.for_process: process_index must be in 0..{process_count - 1}, "
                f"got {process_index}"
            )
        other = copy.copy(self)
        other._serve(process_index, process_count)
        return other

    def __iter__(self) -> Iterator[dict]:
        """The batches of the next epoch."""
        self.stream_dataset.first_epoch, self.stream_dataset.epochs = self.epoch, 1
        self.stream_dataset.start_batch = 0
        self.epoch += 1
        return iter(self.loader)

    def stream(self, start_batch: int = 0) -> Iterator[dict]:
        """Batches epoch after epoch without end, starting at batch ``start_batch`` of the
        stream (the same batches a stream from 0 serves there)."""
        self.stream_dataset.first_epoch, self.stream_dataset.epochs = 0, None
        self.stream_dataset.start_batch = start_batch
        return iter(self.loader)
