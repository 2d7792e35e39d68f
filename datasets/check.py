"""``kinema dataset check``: read every file of a LeRobotDataset v3 directory and report the first
problem, naming the file and, for data, the episode and frame.

What it reads: ``meta/info.json`` (present, valid JSON), every episode-metadata and data parquet
file (readable to the footer), every float feature of the data (finite: NaN or inf in an action
or a state is an error), and every video (decodable to the end, with as many frames as the
episodes stored in it have). Nothing is written.

Example:

    summary = check_dataset(Path("outputs/dataset"))   # raises DatasetError on a bad file
"""

from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kinema.datasets.info import DatasetError, read_info, video_file


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The table in ``path`` (only ``columns`` if given); ``DatasetError`` naming the file if it
    cannot be read."""
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as error:
        raise DatasetError(f"{path}: not a readable parquet file ({error})") from error


def column_array(table: pa.Table, name: str) -> np.ndarray:
    """A float feature's column as an (N, D) array (an (N,) column becomes (N, 1))."""
    column = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        return column.flatten().to_numpy().reshape(len(column), column.type.list_size)
    if pa.types.is_list(column.type):
        return np.stack(column.to_numpy(zero_copy_only=False)).reshape(len(column), -1)
    return column.to_numpy().reshape(len(column), 1)


def check_finite(path: Path, table: pa.Table, float_features: list[str]) -> None:
    """``DatasetError`` naming ``path``, the episode and the frame of the first non-finite value
    of any of ``float_features``."""
    episodes = table.column("episode_index").to_numpy()
    frames = table.column("frame_index").to_numpy()
    for name in float_features:
        if name not in table.column_names:
            raise DatasetError(f"{path}: feature {name!r} of meta/info.json is missing")
        bad = ~np.isfinite(column_array(table, name)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{path}: episode {episodes[row]} frame {frames[row]}: {name} is not finite "
                f"({int(bad.sum())} frames in this file)"
            )


def _count_video_frames(path: Path) -> int:
    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.FFmpegError, OSError) as error:
        raise DatasetError(f"{path}: not a decodable video ({error})") from error


def check_dataset(root: Path) -> dict[str, Any]:
    """Check every file (see the module docstring); a summary, or ``DatasetError``."""
    info = read_info(root)
    info_path = root / "meta" / "info.json"
    features = info["features"]
    float_features = [name for name, spec in features.items() if spec["dtype"].startswith("float")]
    video_keys = [name for name, spec in features.items() if spec["dtype"] == "video"]

    episode_files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    episodes = pa.concat_tables([read_parquet(path) for path in episode_files]).to_pylist()
    if len(episodes) != info["total_episodes"]:
        raise DatasetError(
            f"{info_path}: says {info['total_episodes']} episodes, meta/episodes holds "
            f"{len(episodes)}"
        )
    data_files = sorted((root / "data").rglob("*.parquet"))
    frames = 0
    for path in data_files:
        table = read_parquet(path)
        check_finite(path, table, float_features)
        frames += table.num_rows
    expected_video_frames: dict[Path, int] = {}
    for episode in episodes:
        for key in video_keys:
            path = video_file(
                root,
                info,
                key,
                episode[f"videos/{key}/chunk_index"],
                episode[f"videos/{key}/file_index"],
            )
            expected_video_frames[path] = expected_video_frames.get(path, 0) + episode["length"]
    for path, expected in expected_video_frames.items():
        if not path.exists():
            raise DatasetError(f"{path}: missing (meta/episodes refers to it)")
        decoded = _count_video_frames(path)
        if decoded != expected:
            raise DatasetError(f"{path}: {decoded} frames decoded, its episodes hold {expected}")
    return {
        "root": str(root.resolve()),
        "episodes": len(episodes),
        "frames": frames,
        "data_files": len(data_files),
        "videos": len(expected_video_frames),
        "ok": True,
    }
