"""Recording into LeRobotDataset v3: lerobot reads back what we wrote; crashes lose one episode."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from recordings import (
    REPO_ID,
    corrupted_copy,
    put_nan_action,
    record_expert_episodes,
    record_numbered_episodes,
)
from scenes import decode

from kinema.cli import main
from kinema.datasets.check import check_dataset
from kinema.datasets.info import JOURNAL_DIR, MISTAKE, DatasetError, dataset_info
from kinema.datasets.recorder import EpisodeRecorder, RecordingError, recover
from kinema.datasets.table import EpisodeTable
from kinema.datasets.visualize import PLOT_HEIGHT_PX
from kinema.video import CAPTION_HEIGHT_PX

REPO_ID_CLI = "local/kinema"


def test_lerobot_loads_exactly_what_was_recorded(recorded_dataset):
    root, recorded = recorded_dataset
    dataset = LeRobotDataset(REPO_ID, root=root)
    assert dataset.num_episodes == 2
    assert dataset.num_frames == sum(len(frames) for frames in recorded)
    assert dataset.fps == 50
    index = 0
    for episode, frames in enumerate(recorded):
        for position in range(0, len(frames), max(len(frames) // 8, 1)):
            frame = frames[position]
            item = dataset[index + position]
            assert int(item["episode_index"]) == episode
            for key in (
                "observation.state",
                "observation.environment_state",
                "action",
                "action.end_effector",
            ):
                np.testing.assert_array_equal(item[key].numpy(), frame[key].astype(np.float32))
            image = item["observation.images.cam_high"].numpy().transpose(1, 2, 0) * 255.0
            assert np.abs(image - frame["observation.images.cam_high"]).mean() < 6.0  # H.264
        index += len(frames)
    first = dataset[0]
    assert first["task"] == "pick up the red cube with the right arm"
    assert dataset[index - 1]["task"] != first["task"]  # the subtask text changes along the way


def test_an_existing_directory_is_never_overwritten(recorded_dataset):
    root, _ = recorded_dataset
    with pytest.raises(RecordingError, match="exists already"):
        EpisodeRecorder.create(root, REPO_ID, 50, {})


def test_resume_appends_and_discard_drops_the_episode_in_progress(tmp_path):
    root = tmp_path / "dataset"
    first = record_expert_episodes(root, [3])
    appended = record_expert_episodes(root, [4], resume=True)
    recorder = EpisodeRecorder.resume(root, REPO_ID)
    recorder.add_frame(appended[0][0], "a frame that is thrown away")
    recorder.discard_episode()
    recorder.close()
    dataset = LeRobotDataset(REPO_ID, root=root)
    assert dataset.num_episodes == 2
    assert dataset.num_frames == len(first[0]) + len(appended[0])
    np.testing.assert_array_equal(
        dataset[len(first[0])]["action"].numpy(), appended[0][0]["action"]
    )


# Imports once, then for each dataset root read from stdin forks a writer that records into it
# until it is killed, and prints "pid N" for the writer and "ended" when it has gone.
_FORKING_WRITER = textwrap.dedent(
    f"""
    import os
    import sys
    from pathlib import Path
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from recordings import record_numbered_episodes

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            record_numbered_episodes(Path(line.strip()), 1000)
            os._exit(0)
        print(f"pid {{pid}}", flush=True)
        os.waitpid(pid, 0)
        print("ended", flush=True)
    """
)


def test_sigkill_at_any_moment_loses_at_most_the_episode_in_progress(tmp_path):
    root = tmp_path / "dataset"
    rng = np.random.default_rng(0)
    saved = 0
    # Each writer is a fork of one process that has imported lerobot already: seconds saved
    # per kill, and the killed process is a recorder all the same.
    forks = subprocess.Popen(
        [sys.executable, "-P", "-c", _FORKING_WRITER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(4):
            forks.stdin.write(f"{root}\n")
            forks.stdin.flush()
            # Let it save a couple of episodes, then kill it at a random moment of the next one.
            lines = [forks.stdout.readline() for _ in range(3)]  # its pid and two episodes
            (pid,) = [int(line.split()[1]) for line in lines if line.startswith("pid")]
            time.sleep(rng.uniform(0.0, 0.6))
            os.kill(pid, signal.SIGKILL)
            while (line := forks.stdout.readline()) != "ended\n":
                assert line, "the forking writer stopped"
            # Resuming rolls back whatever the kill interrupted; lerobot then reads every episode.
            EpisodeRecorder.resume(root, REPO_ID).close()
            assert not (root / JOURNAL_DIR).exists()
            dataset = LeRobotDataset(REPO_ID, root=root)
            assert dataset.num_episodes >= saved + 2
            saved = dataset.num_episodes
            assert dataset.num_frames == 30 * saved
            for episode in range(saved):
                item = dataset[30 * episode + 29]
                assert item["task"] == f"episode {episode}"
                np.testing.assert_allclose(
                    item["observation.state"].numpy(), episode + 0.29, atol=1e-6
                )
    finally:
        forks.kill()
        forks.wait()


def test_an_interrupted_save_is_rolled_back_and_earlier_episodes_stay_readable(tmp_path):
    root = tmp_path / "dataset"
    record_numbered_episodes(root, 2)
    recorder = EpisodeRecorder.resume(root, REPO_ID)
    state = np.full(14, 9.0, np.float32)
    image = np.zeros((48, 64, 3), np.uint8)
    for _ in range(30):
        values = {"observation.state": state, "action": state, "observation.images.cam_high": image}
        recorder.add_frame(values, "never committed")
    # What a kill between lerobot's save_episode and finalize leaves behind: new files without
    # parquet footers, and metadata that already counts the episode.
    recorder._write_journal()
    recorder.dataset.save_episode()
    with pytest.raises(DatasetError, match="stopped while saving an episode"):
        EpisodeTable.load(root)  # a reader does not trip over the half-saved files
    assert recover(root)
    dataset = LeRobotDataset(REPO_ID, root=root)
    assert dataset.num_episodes == 2 and dataset.num_frames == 60
    assert not recover(root)  # nothing left to roll back


def test_record_command_writes_a_dataset_lerobot_loads_and_resume_continues_the_seeds(
    tmp_path, capsys
):
    out = tmp_path / "cli"
    common = ["--task", "Insertion", "--out", str(out), "--cameras", "cam_high"]
    main(["record", *common, "--episodes", "2", "--image-size", "48", "64"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes_saved"] == 2 and summary["episodes_discarded"] == 0
    assert summary["record_fps"] > 0 and summary["late_frames"] >= 0  # speed: benchmarks/
    with pytest.raises(RecordingError, match=r"observation.images.cam_high is video \(48, 64, 3\)"):
        main(["record", *common, "--episodes", "1", "--resume"])  # 240 × 320 by default
    main(["record", *common, "--episodes", "1", "--resume", "--image-size", "48", "64"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes_total"] == 3
    dataset = LeRobotDataset(REPO_ID_CLI, root=out)
    assert dataset.num_episodes == 3
    assert tuple(dataset.meta.features["observation.images.cam_high"]["shape"]) == (48, 64, 3)
    tasks = {dataset[i]["task"] for i in range(0, dataset.num_frames, 25)}
    assert "insert the peg into the socket" in tasks and len(tasks) >= 2
    with pytest.raises(RecordingError, match="exists already"):
        main(["record", *common, "--episodes", "1"])


def test_record_command_without_cameras_writes_a_state_only_dataset(tmp_path, capsys):
    out = tmp_path / "state"
    main(["record", "--task", "TransferCube", "--out", str(out), "--episodes", "1", "--cameras"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes_saved"] == 1
    dataset = LeRobotDataset(REPO_ID_CLI, root=out)
    assert not [name for name in dataset.meta.features if name.startswith("observation.images")]
    assert dataset[0]["observation.environment_state"].shape == (7,)


def test_record_command_flags_the_frames_of_the_experts_deliberate_mistakes(tmp_path, capsys):
    out = tmp_path / "errs"
    options = ["--out", str(out), "--episodes", "1", "--cameras", "--mistake-rate", "1.0"]
    main(["record", "--task", "StackBlocks", *options, "--keep-failures"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes_saved"] == 1
    flags = np.array(LeRobotDataset(REPO_ID_CLI, root=out).hf_dataset[MISTAKE], dtype=float)
    # every subtask's first attempt errs: a run of flagged frames per subtask attempted
    assert 0.05 < flags.mean() < 0.6
    assert np.array_equal(EpisodeTable.load(out).mistakes, flags > 0.5)
    with pytest.raises(SystemExit, match="TransferCube expert cannot make deliberate mistakes"):
        main(["record", "--task", "TransferCube", *options])
    with pytest.raises(SystemExit, match="only the scripted expert"):
        main(["record", "--task", "StackBlocks", "--teleop", "keyboard", *options])


def test_resume_refuses_a_dataset_with_features_the_recording_would_leave_out(tmp_path):
    state = {"dtype": "float32", "shape": (14,), "names": None}
    flag = {"dtype": "float32", "shape": (1,), "names": None}
    flagged = {"observation.state": state, "action": state, MISTAKE: flag}
    recorder = EpisodeRecorder.create(tmp_path / "flagged", REPO_ID_CLI, 50, flagged)
    for _ in range(3):
        values = {"observation.state": np.zeros(14, np.float32), "action": np.zeros(14, np.float32)}
        recorder.add_frame({**values, MISTAKE: np.zeros(1, np.float32)}, "t")
    recorder.save_episode()
    recorder.close()
    unflagged = {"observation.state": state, "action": state}
    with pytest.raises(RecordingError, match=r"action\.is_mistake is in the dataset but would not"):
        EpisodeRecorder.resume(tmp_path / "flagged", REPO_ID_CLI, unflagged)
    EpisodeRecorder.resume(tmp_path / "flagged", REPO_ID_CLI, flagged).close()


def test_dataset_info_summarises_the_metadata_and_names_a_missing_file(
    recorded_dataset, tmp_path, capsys
):
    root, recorded = recorded_dataset
    main(["dataset", "info", str(root)])
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["fps"] == 50
    assert summary["frames"] == sum(len(frames) for frames in recorded)
    assert summary["features"]["observation.images.cam_high"]["dtype"] == "video"
    assert "pick up the red cube with the right arm" in summary["tasks"]
    assert "2 episodes" in printed
    with pytest.raises(DatasetError, match=r"meta/info.json is missing"):
        dataset_info(tmp_path)


def test_dataset_visualize_writes_an_mp4_per_episode_with_cameras_and_plot(
    recorded_dataset, tmp_path, capsys
):
    root, recorded = recorded_dataset
    main(["dataset", "visualize", str(root), "--episodes", "1", "--out", str(tmp_path)])
    videos = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["videos"]
    frames = decode(videos["1"])
    assert len(frames) == len(recorded[1])
    assert frames[0].shape == (CAPTION_HEIGHT_PX + 48 + PLOT_HEIGHT_PX, 64, 3)
    plot = frames[len(frames) // 2][-PLOT_HEIGHT_PX:]
    assert (plot.max(axis=2) > 100).mean() > 0.02  # the trajectories are drawn
    with pytest.raises(DatasetError, match="no episode"):
        main(["dataset", "visualize", str(root), "--episodes", "5", "--out", str(tmp_path)])


def test_dataset_check_passes_a_good_dataset_and_names_each_bad_file(recorded_dataset, tmp_path):
    root, recorded = recorded_dataset
    summary = check_dataset(root)
    assert summary["ok"] and summary["episodes"] == 2
    assert summary["frames"] == sum(len(frames) for frames in recorded)

    copy = corrupted_copy(root, tmp_path / "truncated")
    data = sorted((copy / "data").rglob("*.parquet"))[0]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(DatasetError, match=re.escape(f"{data}: not a readable parquet")):
        check_dataset(copy)

    copy = corrupted_copy(root, tmp_path / "nan")
    data = sorted((copy / "data").rglob("*.parquet"))[-1]
    put_nan_action(data, row=5)
    with pytest.raises(DatasetError, match=r"episode 1 frame 5: action is not finite"):
        check_dataset(copy)

    copy = corrupted_copy(root, tmp_path / "video")
    video = sorted((copy / "videos").rglob("*.mp4"))[0]
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with pytest.raises(DatasetError, match=re.escape(str(video))):
        check_dataset(copy)

    copy = corrupted_copy(root, tmp_path / "info")
    (copy / "meta" / "info.json").write_text("{ not json")
    with pytest.raises(DatasetError, match=r"info\.json: not valid JSON"):
        check_dataset(copy)
