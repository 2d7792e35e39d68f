"""Crash-safe recording of episodes into a LeRobotDataset v3 directory, with lerobot's own writer.

Frames go through lerobot's ``LeRobotDataset.add_frame`` / ``save_episode`` / ``finalize``, so
the directory is exactly what lerobot writes and loads. lerobot keeps its parquet writers open
between episodes and writes their footers only in ``finalize()``; a process killed before then
leaves files no reader can open, and the episodes before it are lost with them. So the recorder
makes every episode a transaction:

1. **Journal.** Before saving, it writes ``.recording-journal/`` in the dataset root: copies of
   ``meta/info.json``, ``meta/stats.json`` and ``meta/tasks.parquet`` and the list of files that
   exist now, then marks the journal complete (an atomic rename).
2. **Save and close.** ``save_episode()`` then ``finalize()``: the episode's data, metadata and
   video files are written and closed.
3. **Commit.** The journal is deleted (one rename and a removal); the dataset is reopened with
   ``LeRobotDataset.resume`` so the next episode goes into new files and never reopens closed ones.

Opening a dataset that has a journal rolls the interrupted episode back: files not in the
journal's list are deleted and the metadata copies restored. A recording killed at any moment,
SIGKILL included, therefore loses at most the episode in progress.

Example (``features`` as lerobot describes them, e.g. from ``environment_features``):

    recorder = EpisodeRecorder.create(Path("outputs/demo"), "local/demo", 50, features)
    recorder.add_frame({"observation.state": state, "action": action}, "pick up the cube")
    recorder.save_episode()
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.utils.constants import DEFAULT_FEATURES

from kinema.datasets.info import JOURNAL_DIR

_JOURNALED_META = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")
_TEMPORARY_DIRS = ("images",)  # lerobot's per-frame images awaiting video encoding


class RecordingError(RuntimeError):
    """A dataset that cannot be recorded into (exists already, missing, or mismatched)."""


def _files(root: Path) -> list[str]:
    """Every file below ``root`` except the journal, as paths relative to ``root``."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and not any(part.startswith(JOURNAL_DIR) for part in path.relative_to(root).parts)
    )


def recover(root: Path) -> bool:
    """Roll back an episode whose saving was interrupted; True if there was one to roll back.

    Deletes every file created since the journal was written, restores the journaled metadata,
    removes lerobot's temporary frame images, then the journal.
    """
    journal = root / JOURNAL_DIR
    manifest = journal / "manifest.json"
    if journal.exists() and manifest.exists():
        before = set(json.loads(manifest.read_text())["files"])
        for relative in _files(root):
            if relative not in before:
                (root / relative).unlink()
        for relative in _JOURNALED_META:
            backup = journal / relative
            if backup.exists():
                shutil.copy2(backup, root / relative)
    for temporary in _TEMPORARY_DIRS:
        shutil.rmtree(root / temporary, ignore_errors=True)
    rolled_back = journal.exists() and manifest.exists()
    # The journal itself; a half-written one (nothing saved yet) or a committed one not yet
    # removed (the episode is complete).
    for leftover in ("", ".tmp", ".done"):
        shutil.rmtree(root / (JOURNAL_DIR + leftover), ignore_errors=True)
    return rolled_back


def _check_features(
    stored: dict[str, dict[str, Any]], wanted: dict[str, dict[str, Any]], root: Path
) -> None:
    """Raise ``RecordingError`` naming every feature of ``wanted`` that ``stored`` lacks or
    holds with another dtype or shape, and every feature of ``stored`` (besides lerobot's own
    indices) that ``wanted`` would leave unwritten."""
    problems = [
        f"{name} is in the dataset but would not be recorded"
        for name in stored
        if name not in wanted and name not in DEFAULT_FEATURES
    ]
    for name, spec in wanted.items():
        have = stored.get(name)
        if have is None:
            problems.append(f"{name} is not in the dataset")
        elif have["dtype"] != spec["dtype"] or tuple(have["shape"]) != tuple(spec["shape"]):
            problems.append(
                f"{name} is {have['dtype']} {tuple(have['shape'])} in the dataset, "
                f"{spec['dtype']} {tuple(spec['shape'])} here"
            )
    if problems:
        raise RecordingError(f"cannot append to {root}: " + "; ".join(problems))


class EpisodeRecorder:
    """Records episodes into one LeRobotDataset directory, one transaction per episode."""

    def __init__(self, root: Path, repo_id: str, dataset: LeRobotDataset):
        self.root = root
        self.repo_id = repo_id
        self.dataset = dataset
        self.frames_in_episode = 0

    @classmethod
    def create(
        cls,
        root: Path,
        repo_id: str,
        fps: int,
        features: dict[str, dict[str, Any]],
        robot_type: str = "aloha",
    ) -> "EpisodeRecorder":
        """Start a new dataset at ``root``; refuses to touch an existing directory."""
        if root.exists():
            raise RecordingError(
                f"{root} exists already: pass resume to append to it, or choose another path"
            )
        dataset = LeRobotDataset.create(
            repo_id, fps=fps, root=root, features=features, robot_type=robot_type, use_videos=True
        )
        return cls(root, repo_id, dataset)

    @classmethod
    def resume(
        cls, root: Path, repo_id: str, features: dict[str, dict[str, Any]] | None = None
    ) -> "EpisodeRecorder":
        """Append to the dataset at ``root``, first rolling back an interrupted episode.

        With ``features``, refuse (before anything is written) a dataset whose features differ
        in name, dtype or shape.
        """
        info = root / "meta" / "info.json"
        if not info.exists():
            raise RecordingError(f"cannot resume {root}: it holds no meta/info.json")
        if features is not None:
            _check_features(json.loads(info.read_text())["features"], features, root)
        recover(root)
        return cls(root, repo_id, LeRobotDataset.resume(repo_id, root=root))

    @property
    def episodes(self) -> int:
        """Episodes saved so far."""
        return self.dataset.meta.total_episodes

    def add_frame(self, values: dict[str, np.ndarray], task: str) -> None:
        """Buffer one frame: ``values`` by feature name, ``task`` the language of this frame."""
        self.dataset.add_frame({**values, "task": task})
        self.frames_in_episode += 1

    def discard_episode(self) -> None:
        """Drop the episode in progress (re-record)."""
        self.dataset.clear_episode_buffer()
        self.frames_in_episode = 0

    def save_episode(self) -> None:
        """Save the episode in progress as one transaction (see the module docstring)."""
        if self.frames_in_episode == 0:
            raise RecordingError("save_episode: the episode has no frames")
        self._write_journal()
        self.dataset.save_episode()
        self.dataset.finalize()
        self._commit()
        self.dataset = LeRobotDataset.resume(self.repo_id, root=self.root)
        self.frames_in_episode = 0

    def close(self) -> None:
        """Finish: drop an unsaved episode and close lerobot's writers."""
        if self.frames_in_episode:
            self.discard_episode()
        self.dataset.finalize()

    def _write_journal(self) -> None:
        staging = self.root / (JOURNAL_DIR + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        for relative in _JOURNALED_META:
            if (self.root / relative).exists():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.root / relative, staging / relative)
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "manifest.json").write_text(json.dumps({"files": _files(self.root)}))
        os.replace(staging, self.root / JOURNAL_DIR)  # the journal exists complete, or not at all

    def _commit(self) -> None:
        doomed = self.root / (JOURNAL_DIR + ".done")
        os.replace(self.root / JOURNAL_DIR, doomed)
        shutil.rmtree(doomed)
