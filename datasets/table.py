"""The numbers of a LeRobotDataset v3 directory in memory, and where each episode's images are.

``EpisodeTable.load`` reads ``meta/info.json``, ``meta/tasks.parquet``, ``meta/episodes/`` and
the float and index columns of every ``data/`` parquet file (not the images: those are decoded
later, on the loader's worker processes). Features are renamed and sliced by a ``FeatureMap``,
so the table serves the names and sizes the policy expects. Every float value is checked to be
finite; a bad file is named with its episode and frame.

Arrays are in dataset order (the ``index`` column): ``floats[name][i]`` is frame ``i``, and
episode ``e`` spans ``starts[e] : starts[e] + lengths[e]``. A dataset with ``action.is_mistake``
(a demonstrator's deliberate mistakes, ``kinema.datasets.info.MISTAKE``) gives ``mistakes``, true on
the frames whose action is not to be imitated.

Example:
    table = EpisodeTable.load(Path("outputs/dataset"))
    table.floats["action"].shape     # (total_frames, 14)
    table.cameras                    # ["observation.images.cam_high", ...]
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kinema.datasets.check import check_finite, column_array, read_parquet
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.info import JOURNAL_DIR, MISTAKE, DatasetError, read_info, video_file

VISUAL_DTYPES = ("video", "image")
FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ImageSource:
    """Where one episode's frames of one camera are.

    Attributes:
        path: the MP4 file (video features) or the data parquet file (image features).
        start_s: timestamp of the episode's first frame in ``path``, in seconds (videos).
        dtype: "video" or "image".
        column: the parquet column (image features).
    """

    path: Path
    start_s: float
    dtype: str
    column: str


@dataclass
class EpisodeTable:
    """A dataset's frames as arrays (see the module docstring).

    Attributes:
        root: the dataset directory.
        fps: frames per second.
        floats: served float feature name → (total_frames, D) float32 array.
        cameras: served camera feature names (video or image dtype).
        image_shapes: camera name → (channels, height, width).
        episode_indices: the dataset's episode index of each row of ``starts``/``lengths``.
        starts, lengths: first row and frame count of each episode.
        task_index: (total_frames,) task of every frame; ``tasks[task_index]`` is its text.
        tasks: task texts by task index.
        image_sources: camera name → one ``ImageSource`` per episode.
        mistakes: (total_frames,) bool, true where the action heads for a deliberate mistake;
            None when the dataset flags none.
    """

    root: Path
    fps: float
    floats: dict[str, np.ndarray]
    cameras: list[str]
    image_shapes: dict[str, tuple[int, int, int]]
    episode_indices: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    task_index: np.ndarray
    tasks: list[str]
    image_sources: dict[str, list[ImageSource]]
    mistakes: np.ndarray | None = None

    @property
    def total_frames(self) -> int:
        return len(self.task_index)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Served feature name → the shape of one frame of it."""
        shapes: dict[str, tuple[int, ...]] = {
            name: values.shape[1:] for name, values in self.floats.items()
        }
        return shapes | dict(self.image_shapes)

    def require(self, expected: dict[str, tuple[int, ...]]) -> None:
        """``DatasetError`` listing every feature a consumer (a policy) expects that is absent or
        of another shape; the message names ``meta/info.json`` and the ``--map`` that fixes it."""
        shapes = self.shapes()
        problems = []
        for name, shape in expected.items():
            if name not in shapes:
                problems.append(f"no feature {name!r} (map one to it: --map {name}=SOURCE)")
            elif tuple(shapes[name]) != tuple(shape):
                problems.append(
                    f"{name!r} has shape {tuple(shapes[name])}, expected {tuple(shape)} "
                    f"(select entries: --map {name}=SOURCE[0:N])"
                )
        if problems:
            raise DatasetError(
                f"{self.root / 'meta' / 'info.json'}: the features do not match: "
                + "; ".join(problems)
                + f". The dataset serves {sorted(shapes)}"
            )

    @classmethod
    def load(
        cls, root: Path, feature_map: FeatureMap | None = None, features: list[str] | None = None
    ) -> "EpisodeTable":
        """Read the dataset at ``root``; serve ``features`` (default: every observation feature
        and ``action``) under the names of ``feature_map``."""
        feature_map = feature_map or FeatureMap()
        if (root / JOURNAL_DIR).is_dir():
            raise DatasetError(
                f"{root}: its recording was stopped while saving an episode ({JOURNAL_DIR}/ is "
                f"there); `kinema record --task <its task> --out {root} --resume --episodes 0` "
                "rolls that episode back and keeps the others"
            )
        info = read_info(root)
        info_path = root / "meta" / "info.json"
        specs: dict[str, dict[str, Any]] = info["features"]
        served = feature_map.served_names(list(specs))
        if features is None:
            features = [n for n in served if n.startswith("observation.") or n == "action"]
        for name in features:
            source = feature_map.source_of(name)
            if source not in specs:
                raise DatasetError(
                    f"{info_path}: no feature {source!r} to serve as {name!r}; the dataset has "
                    f"{sorted(specs)}"
                )
        dtypes = {name: specs[feature_map.source_of(name)]["dtype"] for name in features}
        float_names = [name for name in features if dtypes[name] in FLOAT_DTYPES]
        cameras = [name for name in features if dtypes[name] in VISUAL_DTYPES]
        unsupported = sorted(set(features) - set(float_names) - set(cameras))
        if unsupported:
            raise DatasetError(f"{info_path}: cannot serve {unsupported}: not float or image")

        episodes = _read_episodes(root)
        flagged = [MISTAKE] if MISTAKE in specs else []
        data = _read_data(root, [feature_map.source_of(n) for n in float_names] + flagged)
        floats = {}
        for name in float_names:
            values = data[feature_map.source_of(name)]
            indices = feature_map.indices_of(name)
            if indices is not None:
                if max(indices) >= values.shape[1]:
                    raise DatasetError(
                        f"{info_path}: {feature_map.source_of(name)!r} has {values.shape[1]} "
                        f"entries; the map for {name!r} asks for entry {max(indices)}"
                    )
                values = values[:, indices]
            floats[name] = np.ascontiguousarray(values, dtype=np.float32)

        episode_indices = np.asarray(episodes["episode_index"], dtype=np.int64)
        starts = np.asarray(episodes["dataset_from_index"], dtype=np.int64)
        lengths = np.asarray(episodes["length"], dtype=np.int64)
        if starts[-1] + lengths[-1] != len(data["task_index"]):
            raise DatasetError(
                f"{root / 'meta' / 'episodes'}: episodes end at frame {starts[-1] + lengths[-1]}, "
                f"{root / 'data'} holds {len(data['task_index'])} frames"
            )
        image_sources = {
            name: _image_sources(root, info, episodes, feature_map.source_of(name))
            for name in cameras
        }
        image_shapes = {
            name: _channels_first(specs[feature_map.source_of(name)], info_path) for name in cameras
        }
        tasks_table = read_parquet(root / "meta" / "tasks.parquet").to_pandas()
        tasks = [""] * (int(tasks_table["task_index"].max()) + 1 if len(tasks_table) else 0)
        for text, index in zip(tasks_table.index, tasks_table["task_index"], strict=True):
            tasks[int(index)] = str(text)
        return cls(
            root=root,
            fps=float(info["fps"]),
            floats=floats,
            cameras=cameras,
            image_shapes=image_shapes,
            episode_indices=episode_indices,
            starts=starts,
            lengths=lengths,
            task_index=data["task_index"],
            tasks=tasks,
            image_sources=image_sources,
            mistakes=data[MISTAKE][:, 0] > 0.5 if flagged else None,
        )


def _read_episodes(root: Path) -> dict[str, list]:
    """``meta/episodes/`` as columns, in episode order."""
    paths = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not paths:
        raise DatasetError(f"{root / 'meta' / 'episodes'}: no episode metadata")
    table = pa.concat_tables([read_parquet(path) for path in paths], promote_options="default")
    table = table.sort_by("episode_index")
    return table.to_pydict()


def _read_data(root: Path, float_sources: list[str]) -> dict[str, np.ndarray]:
    """The float columns ``float_sources`` and ``task_index`` of every data file, in index order,
    each checked to be finite."""
    paths = sorted((root / "data").rglob("*.parquet"))
    if not paths:
        raise DatasetError(f"{root / 'data'}: no data files")
    columns = [*sorted(set(float_sources)), "index", "episode_index", "frame_index", "task_index"]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for path in paths:
        table = read_parquet(path, columns=columns)
        check_finite(path, table, sorted(set(float_sources)))
        for name in columns:
            parts[name].append(
                column_array(table, name)
                if name in float_sources
                else table.column(name).to_numpy()
            )
    data = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.argsort(data["index"], kind="stable")
    return {name: values[order] for name, values in data.items()}


def _image_sources(
    root: Path, info: dict[str, Any], episodes: dict[str, list], source: str
) -> list[ImageSource]:
    """Where each episode's frames of camera feature ``source`` are stored."""
    dtype = info["features"][source]["dtype"]
    if dtype == "video":
        return [
            ImageSource(
                path=video_file(
                    root,
                    info,
                    source,
                    episodes[f"videos/{source}/chunk_index"][row],
                    episodes[f"videos/{source}/file_index"][row],
                ),
                start_s=float(episodes[f"videos/{source}/from_timestamp"][row]),
                dtype=dtype,
                column=source,
            )
            for row in range(len(episodes["episode_index"]))
        ]
    return [
        ImageSource(
            path=root
            / info["data_path"].format(
                chunk_index=episodes["data/chunk_index"][row],
                file_index=episodes["data/file_index"][row],
            ),
            start_s=0.0,
            dtype=dtype,
            column=source,
        )
        for row in range(len(episodes["episode_index"]))
    ]


_HWC = ["height", "width", "channels"]


def _channels_first(spec: dict[str, Any], info_path: Path) -> tuple[int, int, int]:
    """(channels, height, width) of a camera feature, whichever order its ``names`` give."""
    shape = list(spec["shape"])
    names = ["channels" if n == "channel" else n for n in spec.get("names") or _HWC]
    if len(shape) != 3 or sorted(names) != sorted(_HWC):
        raise DatasetError(f"{info_path}: a camera of shape {shape} and names {names}")
    by_name = dict(zip(names, shape, strict=True))
    return (by_name["channels"], by_name["height"], by_name["width"])
