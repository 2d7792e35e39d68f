"""``kinema eval``: seeded episodes of a saved policy in worker processes, a report with a
confidence interval, and films."""

import json

import pytest
from scenes import decode
from test_dit_policy import TINY

from kinema.cli import main
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.loader import WindowConfig, WindowLoader
from kinema.evaluate import wilson_interval
from kinema.policies.dit.config import DiTConfig
from kinema.policies.dit.policy import DiTPolicy


def test_wilson_interval_matches_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = wilson_interval(43, 50)
    assert low < 0.86 < high and high - low < 0.2


@pytest.mark.parametrize(("action_space", "workers"), [("joint", 2), ("end_effector", 1)])
def test_eval_runs_a_saved_policy_end_to_end_in_worker_processes(
    recorded_dataset, tmp_path, capsys, action_space, workers
):
    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "action_space": action_space})
    mapping = FeatureMap.parse(["action=action.end_effector"] if action_space != "joint" else [])
    loader = WindowLoader(root, WindowConfig(workers=0), mapping, expected=config.input_shapes())
    DiTPolicy(config, loader.stats).save_pretrained(tmp_path / "policy")
    main(
        [
            "eval",
            "--policy", str(tmp_path / "policy"),
            "--task", "TransferCube",
            "--episodes", "2",
            "--workers", str(workers),
            "--videos", "1",
            "--executed-steps", "4",
            "--latency-steps", "1",
            "--blend-steps", "2",
            "--out", str(tmp_path / "eval"),
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["task"] == "TransferCube" and report["episodes"] == 2
    assert report["action_space"] == action_space and report["executed_steps"] == 4
    assert report["ci95"][0] <= report["success_rate"] <= report["ci95"][1]
    assert 0.0 <= report["mean_stage_fraction"] <= 1.0 and report["inference_ms"] > 0
    assert len(report["videos"]) == 1
    frames = decode(report["videos"][0])
    assert len(frames) > 10 and frames[0].shape[1] >= 64
    saved = json.loads((tmp_path / "eval" / "TransferCube_rtc.json").read_text())
    assert [episode["seed"] for episode in saved["episodes"]] == [100_000, 100_001]


def test_a_state_only_policy_is_filmed_through_the_overview_camera(
    recorded_dataset, tmp_path, capsys
):
    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "cameras": ()})
    loader = WindowLoader(root, WindowConfig(workers=0), expected=config.input_shapes())
    DiTPolicy(config, loader.stats).save_pretrained(tmp_path / "policy")
    main(
        [
            "eval", "--policy", str(tmp_path / "policy"), "--episodes", "1", "--workers", "1",
            "--videos", "1", "--out", str(tmp_path / "eval"),
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    frames = decode(report["videos"][0])
    assert len(frames) > 10 and frames[0].shape[1] >= 64
