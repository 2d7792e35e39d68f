"""Per-feature normalisation statistics of a dataset's float features, and their JSON form.

For every float feature (joint states in radians, gripper openings 0..1, object poses in metres,
actions) the statistics are taken per entry over every frame of the dataset: mean, standard
deviation, minimum, maximum and the 1 % / 99 % quantiles. A policy stores them with its weights
(``save``/``load``) and normalises with them, e.g. ``(x - mean) / std`` or, with the quantiles,
``2 (x - q01) / (q99 - q01) - 1``. Images need none: they are scaled from 0..255 to 0..1.

Example:
    stats = compute_stats({"action": actions})        # actions: (frames, 14)
    stats["action"].std.shape                         # (14,)
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FeatureStats:
    """Statistics of one feature, each an array with the feature's shape (float32)."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> "FeatureStats":
        """Statistics over the first axis of ``values`` (frames × entries)."""
        values = np.asarray(values, dtype=np.float64)
        low, high = np.quantile(values, [0.01, 0.99], axis=0)
        return cls(
            *(
                np.asarray(array, dtype=np.float32)
                for array in (
                    values.mean(axis=0),
                    values.std(axis=0),
                    values.min(axis=0),
                    values.max(axis=0),
                    low,
                    high,
                )
            )
        )


def compute_stats(floats: dict[str, np.ndarray]) -> dict[str, FeatureStats]:
    """``FeatureStats`` of every (frames, D) array in ``floats``."""
    return {name: FeatureStats.of(values) for name, values in floats.items()}


def save_stats(stats: dict[str, FeatureStats], path: Path) -> None:
    """Write ``stats`` as JSON (feature → statistic → list of floats)."""
    payload = {
        name: {key: value.tolist() for key, value in asdict(feature).items()}
        for name, feature in stats.items()
    }
    path.write_text(json.dumps(payload, indent=1))


def load_stats(path: Path) -> dict[str, FeatureStats]:
    """Read statistics written by ``save_stats``."""
    payload = json.loads(path.read_text())
    return {
        name: FeatureStats(**{key: np.asarray(value, np.float32) for key, value in entry.items()})
        for name, entry in payload.items()
    }
