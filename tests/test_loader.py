"""Training windows: the same values lerobot serves, from our datasets and from lerobot's."""

import json
import re
from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from recordings import (
    FOREIGN_IMAGE_SHAPE,
    FOREIGN_LENGTHS,
    FOREIGN_TASKS,
    REPO_ID,
    corrupted_copy,
    foreign_grey,
    foreign_value,
    put_nan_action,
    write_foreign_dataset,
)

from kinema.cli import main
from kinema.datasets.augment import AugmentConfig, augment
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.info import MISTAKE, DatasetError
from kinema.datasets.loader import WindowConfig, WindowLoader
from kinema.datasets.recorder import EpisodeRecorder
from kinema.datasets.stats import load_stats, save_stats

OBSERVATION_KEYS = ("observation.state", "observation.environment_state")
CAMERA = "observation.images.cam_high"


def served_windows(loader: WindowLoader) -> dict[tuple[int, int], tuple[dict, int]]:
    """(episode, frame) → (its batch, its position in the batch), over one epoch."""
    windows = {}
    for batch in loader:
        pairs = zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
        for position, key in enumerate(pairs):
            assert key not in windows, f"window {key} served twice in one epoch"
            windows[key] = (batch, position)
    return windows


def test_windows_hold_what_lerobot_serves_for_the_same_frames(recorded_dataset):
    root, recorded = recorded_dataset
    history, horizon = 3, 20
    config = WindowConfig(observation_steps=history, action_steps=horizon, batch_size=16, workers=0)
    windows = served_windows(WindowLoader(root, config))
    assert sorted(windows) == [
        (episode, frame) for episode, frames in enumerate(recorded) for frame in range(len(frames))
    ]

    steps = {key: [(i - history + 1) / 50 for i in range(history)] for key in OBSERVATION_KEYS}
    steps[CAMERA] = steps["observation.state"]
    steps["action"] = [i / 50 for i in range(horizon)]
    lerobot = LeRobotDataset(REPO_ID, root=root, delta_timestamps=steps, return_uint8=True)
    length = len(recorded[0])
    for episode, frame in [(0, 0), (0, 1), (0, 150), (0, length - 5), (0, length - 1), (1, 0)]:
        batch, position = windows[(episode, frame)]
        item = lerobot[episode * length + frame]
        for key in (*OBSERVATION_KEYS, "action"):
            torch.testing.assert_close(batch[key][position], item[key], rtol=0, atol=0)
        pad = batch["observation_is_pad"][position]
        assert pad.tolist() == item["observation.state_is_pad"].tolist()
        assert batch["action_is_pad"][position].tolist() == item["action_is_pad"].tolist()
        difference = (batch[CAMERA][position].float() - item[CAMERA].float()).abs().mean()
        assert difference < 2.0  # pyav and torchcodec convert the same AV1 frames to RGB
        assert batch["task"][position] == item["task"]
    first, last = windows[(0, 0)], windows[(0, length - 1)]
    assert first[0]["observation_is_pad"][first[1]].tolist() == [True, True, False]
    assert last[0]["action_is_pad"][last[1]].sum() == horizon - 1


def test_worker_processes_serve_each_frame_once_in_a_reproducible_order(recorded_dataset):
    root, recorded = recorded_dataset
    config = WindowConfig(observation_steps=2, action_steps=10, batch_size=32, workers=2, seed=3)

    def epoch_order(loader: WindowLoader) -> list[tuple[int, int]]:
        return [
            pair
            for batch in loader
            for pair in zip(
                batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True
            )
        ]

    loader = WindowLoader(root, config)
    first_epoch, second_epoch = epoch_order(loader), epoch_order(loader)
    frames = sum(len(frames) for frames in recorded)
    assert len(first_epoch) == len(set(first_epoch)) == frames
    assert Counter(first_epoch) == Counter(second_epoch)
    assert first_epoch != second_epoch  # reshuffled every epoch
    assert epoch_order(WindowLoader(root, config)) == first_epoch  # same seed, same order


def test_a_stream_resumed_at_batch_k_serves_what_the_whole_stream_serves_from_k(
    recorded_dataset,
):
    root, recorded = recorded_dataset
    config = WindowConfig(observation_steps=1, action_steps=5, batch_size=64, workers=2, seed=1)
    loader = WindowLoader(root, config)
    whole = list(islice(loader.stream(), 30))  # about three epochs
    resumed = list(islice(loader.stream(start_batch=17), 13))
    for expected, served in zip(whole[17:], resumed, strict=True):
        for key in ("episode_index", "frame_index", "action", "observation.images.cam_high"):
            assert torch.equal(expected[key], served[key])
    frames = sum(len(frames) for frames in recorded)
    assert sum(len(batch["task"]) for batch in whole) > 2 * frames


def test_training_processes_share_the_episodes_of_an_epoch(recorded_dataset):
    root, recorded = recorded_dataset
    config = WindowConfig(observation_steps=1, action_steps=5, batch_size=64, workers=0)
    served = [
        set(served_windows(WindowLoader(root, config, process_index=rank, process_count=2)))
        for rank in (0, 1)
    ]
    assert not served[0] & served[1]
    assert len(served[0] | served[1]) == sum(len(frames) for frames in recorded)
    with pytest.raises(ValueError, match="fewer than the 4 shards"):
        WindowLoader(root, WindowConfig(workers=2), process_count=2)


def test_statistics_are_per_entry_over_all_frames_and_survive_json(recorded_dataset, tmp_path):
    root, recorded = recorded_dataset
    loader = WindowLoader(root, WindowConfig(workers=0))
    actions = np.concatenate([[frame["action"] for frame in frames] for frames in recorded])
    actions = actions.astype(np.float64)
    stats = loader.stats["action"]
    np.testing.assert_allclose(stats.mean, actions.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(stats.std, actions.std(axis=0), atol=1e-6)
    np.testing.assert_array_equal(stats.max, actions.max(axis=0))
    assert set(loader.stats) == {*OBSERVATION_KEYS, "action"}
    save_stats(loader.stats, tmp_path / "stats.json")
    again = load_stats(tmp_path / "stats.json")
    np.testing.assert_array_equal(again["action"].q99, stats.q99)


@pytest.fixture(scope="module")
def foreign_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign") / "towels"
    write_foreign_dataset(root)
    return root


FOREIGN_MAP = [
    "observation.images.cam_high=observation.images.top",
    "observation.images.cam_left_wrist=observation.images.wrist",
    "observation.state=observation.state[0:7,8:15]",
    "action=action[0:14]",
]
ALOHA_SHAPES = {
    "observation.state": (14,),
    "action": (14,),
    "observation.images.cam_high": (3, 24, 32),
    "observation.images.cam_left_wrist": (3, 24, 32),
}


def test_a_dataset_written_with_lerobots_api_loads_through_a_feature_map(foreign_dataset):
    horizon = 20
    config = WindowConfig(observation_steps=2, action_steps=horizon, batch_size=8, workers=0)
    loader = WindowLoader(
        foreign_dataset, config, FeatureMap.parse(FOREIGN_MAP), None, ALOHA_SHAPES
    )
    windows = served_windows(loader)
    assert len(windows) == sum(FOREIGN_LENGTHS)
    state_entries = [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
    for (episode, frame), (batch, position) in windows.items():
        previous = max(frame - 1, 0)
        expected_state = [foreign_value(episode, f, 16)[state_entries] for f in (previous, frame)]
        np.testing.assert_array_equal(batch["observation.state"][position], expected_state)
        length = FOREIGN_LENGTHS[episode]
        chunk = [min(frame + i, length - 1) for i in range(horizon)]
        expected_action = [foreign_value(episode, f, 16)[:14] + 0.5 for f in chunk]
        np.testing.assert_array_equal(batch["action"][position], expected_action)
        assert batch["action_is_pad"][position].sum() == max(frame + horizon - length, 0)
        assert batch["task"][position] == FOREIGN_TASKS[episode]
        for camera in ("observation.images.cam_high", "observation.images.cam_left_wrist"):
            images = batch[camera][position].float()
            assert images.shape == (2, 3, *FOREIGN_IMAGE_SHAPE[:2])
            grey = images.mean(dim=(1, 2, 3)).tolist()  # both steps of the history
            expected_grey = [foreign_grey(previous), foreign_grey(frame)]
            np.testing.assert_allclose(grey, expected_grey, atol=3.0)


def test_features_that_do_not_match_the_policy_name_the_file_and_the_fix(foreign_dataset):
    info = re.escape(str(foreign_dataset / "meta" / "info.json"))
    with pytest.raises(DatasetError, match=info + r".*no feature 'observation.images.cam_high'"):
        WindowLoader(foreign_dataset, expected=ALOHA_SHAPES)
    renamed = FeatureMap.parse(FOREIGN_MAP[:2])
    with pytest.raises(DatasetError, match=r"'observation.state' has shape \(16,\), expected"):
        WindowLoader(foreign_dataset, feature_map=renamed, expected=ALOHA_SHAPES)
    too_far = FeatureMap.parse(["observation.state=observation.state[10:20]"])
    with pytest.raises(DatasetError, match=r"has 16 entries; the map .* asks for entry 19"):
        WindowLoader(foreign_dataset, feature_map=too_far)
    with pytest.raises(ValueError, match="expected TARGET=SOURCE"):
        FeatureMap.parse(["observation.state:observation.state"])


def test_dataset_windows_command_maps_features_given_on_the_command_line(foreign_dataset, capsys):
    maps = [argument for rule in FOREIGN_MAP for argument in ("--map", rule)]
    main(["dataset", "windows", str(foreign_dataset), *maps, "--workers", "0", "--batch-size", "4"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == summary["frames"] == sum(FOREIGN_LENGTHS)
    assert summary["shapes"]["observation.state"] == [4, 1, 14]
    assert summary["shapes"]["observation.images.cam_left_wrist"] == [4, 1, 3, 24, 32]
    assert "observation.images.top" not in summary["shapes"]


def test_bad_files_give_errors_naming_the_file_and_the_episode(recorded_dataset, tmp_path):
    root, _ = recorded_dataset
    config = WindowConfig(workers=0)
    copy = corrupted_copy(root, tmp_path / "nan")
    data = sorted((copy / "data").rglob("*.parquet"))[-1]
    put_nan_action(data, row=7)
    with pytest.raises(DatasetError, match=re.escape(str(data)) + ": episode 1 frame 7: action"):
        WindowLoader(copy, config)

    copy = corrupted_copy(root, tmp_path / "video")
    video = sorted((copy / "videos").rglob("*.mp4"))[0]
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with pytest.raises(DatasetError, match=re.escape(str(video)) + ": episode 0: "):
        list(WindowLoader(copy, config))

    copy = corrupted_copy(root, tmp_path / "episodes")
    episodes = sorted((copy / "meta" / "episodes").rglob("*.parquet"))[0]
    episodes.write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match=re.escape(str(episodes)) + ": not a readable parquet"):
        WindowLoader(copy, config)

    (copy / "meta" / "info.json").unlink()
    with pytest.raises(DatasetError, match=r"meta/info\.json is missing"):
        WindowLoader(copy, config)


def test_frames_flagged_as_mistakes_mark_the_actions_of_every_window(tmp_path):
    features = {
        "observation.state": {"dtype": "float32", "shape": (14,), "names": None},
        "action": {"dtype": "float32", "shape": (14,), "names": None},
        MISTAKE: {"dtype": "float32", "shape": (1,), "names": None},
    }
    recorder = EpisodeRecorder.create(tmp_path / "errs", "local/test", 50, features)
    flagged = range(10, 15)  # frames of each episode whose action heads for a mistake
    for episode in range(2):
        for frame in range(30):
            state = np.full(14, episode + frame / 100, np.float32)
            mistake = np.array([float(frame in flagged)], np.float32)
            recorder.add_frame(
                {"observation.state": state, "action": -state, MISTAKE: mistake}, "t"
            )
        recorder.save_episode()
    recorder.close()
    horizon = 8
    config = WindowConfig(action_steps=horizon, batch_size=16, workers=0)
    loader = WindowLoader(tmp_path / "errs", config)
    assert MISTAKE not in loader.stats  # a flag, not an input or a target
    windows = 0
    for batch in loader:
        for frame, marks in zip(batch["frame_index"], batch["action_is_mistake"], strict=True):
            actions = [min(int(frame) + k, 29) for k in range(horizon)]
            assert marks.tolist() == [action in flagged for action in actions]
            windows += 1
    assert windows == 60


def test_augmentation_moves_and_recolours_every_history_step_alike():
    rng = np.random.default_rng(0)
    images = torch.zeros((6, 3, 3, 20, 24), dtype=torch.uint8)
    images[:, :, :, 10, 12] = 255  # one white pixel, at the same place in all three steps
    shifted = augment(
        images, AugmentConfig(shift_px=3, brightness=0, contrast=0, saturation=0), rng
    )
    moved = set()
    for sample in shifted:
        where = [tuple(torch.nonzero(step[0] == 255)[0].tolist()) for step in sample]
        assert len(set(where)) == 1  # the history moved together
        (y, x) = where[0]
        assert abs(y - 10) <= 3 and abs(x - 12) <= 3
        moved.add((y, x))
    assert len(moved) > 1  # samples moved differently

    grey = torch.full((64, 2, 3, 8, 8), 100, dtype=torch.uint8)
    jittered = augment(grey, AugmentConfig(shift_px=0, brightness=0.3, contrast=0.3), rng)
    levels = jittered.float().mean(dim=(1, 2, 3, 4))
    assert levels.min() >= 70 - 1 and levels.max() <= 130 + 1 and levels.std() > 5
    assert (jittered[:, :, 0] == jittered[:, :, 2]).all()  # grey stays grey
    unchanged = AugmentConfig(shift_px=0, brightness=0, contrast=0, saturation=0)
    assert torch.equal(augment(images, unchanged, rng), images)
    with pytest.raises(ValueError, match=r"expected \(B, n, 3, H, W\) uint8"):
        augment(images.float(), unchanged, rng)
