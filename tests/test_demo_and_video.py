"""The main job (``kinema run`` on the shipped defaults), the MP4 writer and the camera mosaic."""

import json
from pathlib import Path

import numpy as np
import pytest
from scenes import decode

from kinema.cli import main
from kinema.policies.dit.policy import DiTPolicy
from kinema.policies.dit.shipped import SHIPPED_POLICIES
from kinema.run import RunConfig
from kinema.sim.tasks import TASKS
from kinema.video import CAPTION_HEIGHT_PX, Mp4Writer, mosaic


def test_mp4_round_trip_keeps_frame_count_and_pads_odd_sizes(tmp_path):
    path = tmp_path / "clip.mp4"
    with Mp4Writer(path, fps=50) as video:
        for value in range(0, 250, 25):
            video.write(np.full((33, 47, 3), value, dtype=np.uint8))
    frames = decode(path)
    assert len(frames) == 10 and frames[0].shape == (34, 48, 3)
    assert abs(int(frames[-1][10, 10, 0]) - 225) < 8  # content survives compression


def test_mp4_writer_rejects_bad_frames(tmp_path):
    with Mp4Writer(tmp_path / "bad.mp4") as video:
        with pytest.raises(ValueError, match="uint8"):
            video.write(np.zeros((8, 8, 3), dtype=np.float32))
        video.write(np.zeros((8, 8, 3), dtype=np.uint8))
        with pytest.raises(ValueError, match="differs"):
            video.write(np.zeros((16, 8, 3), dtype=np.uint8))


def test_mosaic_tiles_cameras_under_a_caption():
    images = {name: np.full((20, 30, 3), i * 60, np.uint8) for i, name in enumerate("abc")}
    frame = mosaic(images, caption="hello", columns=2)
    assert frame.shape == (CAPTION_HEIGHT_PX + 40, 60, 3)
    assert frame[CAPTION_HEIGHT_PX + 30, 45].tolist() == [0, 0, 0]  # empty fourth tile


def test_the_main_job_runs_the_whole_stack_on_the_shipped_defaults(tmp_path, capsys):
    main(["run", "--seed", "3", "--out", str(tmp_path)])  # what `make demo` runs, on a set seed
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["task"], report["brain"], report["seed"]) == ("SortCubes", "embedded", 3)
    assert isinstance(report["success"], bool)
    assert 0 <= report["subtasks_done"] <= report["subtasks"] in (3, 4)  # the brain planned
    timing = report["timing"]  # every layer ran and was timed
    assert timing["brain"]["checks_per_s"] > 0 and timing["policy"]["chunks_per_s"] > 0
    assert timing["cerebellum"]["achievable_hz"] >= 50
    frames = decode(report["video"])
    assert len(frames) == report["frames"] + report["held_frames"]
    assert (tmp_path / "trace_seed3" / "decisions.jsonl").exists()
    audit = report["brain_audit"]  # the embedded brain's checks scored against the task
    assert audit["checks"] > 0 and audit["false_done"] + audit["missed_done"] < audit["checks"]


def test_kinema_run_picks_the_policy_shipped_for_its_task():
    for task, folder in SHIPPED_POLICIES.items():
        assert RunConfig(task=task).policy_dir == folder
        names = DiTPolicy.from_pretrained(folder).config.environment_state_names
        assert tuple(names) == tuple(TASKS[task].environment_state_names)  # trained on this task
    with pytest.raises(ValueError, match="no shipped policy was trained on 'TransferCube'"):
        RunConfig(task="TransferCube").policy_dir  # noqa: B018
    assert RunConfig(task="TransferCube", policy=Path("mine")).policy_dir == Path("mine")
    with pytest.raises(SystemExit, match=r"kinema run: no shipped policy .* --policy"):
        main(["run", "--task", "TransferCube"])  # a one-line error, not a traceback


def test_tasks_command_prints_every_task(capsys):
    main(["tasks", "--seed", "1"])
    printed = capsys.readouterr().out
    for task in ("TransferCube", "Insertion", "SortCubes", "StackBlocks"):
        assert f"kinema/{task}-v0" in printed
