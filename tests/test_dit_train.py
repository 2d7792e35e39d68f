"""``kinema train``: checkpoints that resume onto the same loss curve, and what a run leaves."""

import json
import shutil

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.datasets.feature_map import FeatureMap
from kinema.datasets.features import object_lengths
from kinema.policies.dit.policy import DiTPolicy
from kinema.policies.dit.train import TrainConfig, environment_state_names, train

TINY = {
    "hidden_dim": 32,
    "layers": 2,
    "heads": 2,
    "mlp_ratio": 2.0,
    "dropout": 0.1,  # the random state must be restored too
    "image_channels": [8, 8, 16, 32],
    "text_layers": 1,
    "text_max_bytes": 48,
    "chunk_steps": 8,
    "executed_steps": 4,
    "inference_steps": 3,
}


def losses(output) -> list[float]:
    checkpoint = (output / "checkpoints" / "latest").read_text().strip()
    return json.loads((output / "checkpoints" / checkpoint / "progress.json").read_text())["losses"]


def test_a_resumed_run_continues_the_same_loss_curve(recorded_dataset, tmp_path):
    root, _ = recorded_dataset
    config = TrainConfig(
        dataset=root,
        output=tmp_path / "whole",
        steps=12,
        batch_size=8,
        learning_rate=1e-3,
        warmup_steps=2,
        save_every=6,
        workers=0,
        augment=True,
    )
    whole = train(config, TINY)
    assert whole["steps"] == 12

    interrupted = tmp_path / "interrupted"
    shutil.copytree(config.output, interrupted)
    # As if killed between the checkpoints of steps 6 and 12: the last one never completed.
    checkpoints = interrupted / "checkpoints"
    (checkpoints / "step-0000012").rename(checkpoints / "step-0000012.tmp")
    (checkpoints / "latest").write_text("step-0000006")
    resumed_config = TrainConfig(**{**config.__dict__, "output": interrupted, "resume": True})
    train(resumed_config)
    np.testing.assert_allclose(losses(interrupted), losses(config.output), rtol=0, atol=1e-6)
    assert len(losses(interrupted)) == 12
    assert not (checkpoints / "step-0000012.tmp").exists()  # the half-written one is replaced

    policy = DiTPolicy.from_pretrained(interrupted / "policy")
    assert policy.config.hidden_dim == 32
    assert (interrupted / "loss.png").stat().st_size > 1000
    assert list((interrupted / "tensorboard").glob("events.out.tfevents.*"))


def test_train_command_trains_with_mapped_features_and_refuses_a_missing_run(
    recorded_dataset, tmp_path, capsys
):
    root, _ = recorded_dataset
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    main(
        [
            "train",
            "--dataset", str(root),
            "--output", str(tmp_path / "run"),
            "--steps", "3",
            "--batch-size", "4",
            "--workers", "0",
            "--action-steps", "8",
            "--no-environment-state",
            *sets,
        ]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 3 and np.isfinite(summary["final_loss"])
    policy = DiTPolicy.from_pretrained(tmp_path / "run" / "policy")
    assert policy.config.environment_state_dim == 0 and policy.config.cameras == ("cam_high",)
    assert policy.config.image_size == (48, 64)
    end_effector = {**TINY, "action_space": "end_effector"}
    summary = train(
        TrainConfig(dataset=root, output=tmp_path / "ee", steps=2, batch_size=4, workers=0),
        end_effector,
    )
    policy = DiTPolicy.from_pretrained(tmp_path / "ee" / "policy")
    assert policy.config.action_dim == 20 and policy.action_low.shape == (20,)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(TrainConfig(dataset=root, output=tmp_path / "none", resume=True))


def test_a_state_only_policy_trains_without_decoding_any_video(
    recorded_dataset, tmp_path, monkeypatch
):
    root, _ = recorded_dataset

    def no_video(*args, **kwargs):
        raise AssertionError("a state-only run decoded a video")

    monkeypatch.setattr("kinema.datasets.loader.decode_episode", no_video)
    config = TrainConfig(dataset=root, output=tmp_path / "state", steps=3, batch_size=4, workers=0)
    summary = train(config, {**TINY, "cameras": []})
    policy = DiTPolicy.from_pretrained(summary["policy"])
    assert policy.config.cameras == () and policy.config.environment_state_dim > 0


def test_fine_tuning_starts_from_a_saved_policy_of_the_same_configuration(
    recorded_dataset, tmp_path
):
    root, _ = recorded_dataset
    state_only = {**TINY, "cameras": []}

    def run(name: str, learning_rate: float, **options) -> dict:
        config = TrainConfig(
            dataset=root,
            output=tmp_path / name,
            steps=3,
            batch_size=4,
            workers=0,
            learning_rate=learning_rate,
            **options,
        )
        summary = train(config, state_only)
        return DiTPolicy.from_pretrained(summary["policy"]).state_dict()

    trained = run("trained", 1e-2)
    # with a learning rate of 0 a run keeps the weights it starts from
    fine_tuned = run("fine_tuned", 0.0, init_from=tmp_path / "trained" / "policy")
    untouched = run("untouched", 0.0)
    assert all(torch.equal(fine_tuned[name], value) for name, value in trained.items())
    assert not all(torch.equal(untouched[name], value) for name, value in trained.items())
    with pytest.raises(ValueError, match=r"differs from this one in .*hidden_dim"):
        config = TrainConfig(
            dataset=root,
            output=tmp_path / "wider",
            steps=1,
            workers=0,
            init_from=tmp_path / "trained" / "policy",
        )
        train(config, {**state_only, "hidden_dim": 64})


def test_a_dataset_that_names_its_objects_trains_a_policy_with_a_token_per_object(
    recorded_dataset, tmp_path
):
    root, _ = recorded_dataset
    named = tmp_path / "named"
    shutil.copytree(root, named)
    info_path = named / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    state = info["features"]["observation.environment_state"]
    assert state["names"] == [
        "cube.x",
        "cube.y",
        "cube.z",
        "cube.qw",
        "cube.qx",
        "cube.qy",
        "cube.qz",
    ]
    summary = train(
        TrainConfig(dataset=root, output=tmp_path / "one", steps=1, batch_size=4, workers=0),
        {**TINY, "cameras": []},
    )
    one = DiTPolicy.from_pretrained(summary["policy"]).config  # one object: one token, as before
    assert (one.environment_objects, one.environment_state_names) == ((), ())
    names = ["tip.x", "tip.y", "tip.z", "base.qw", "base.qx", "base.qy", "base.qz"]
    state["names"] = names
    info_path.write_text(json.dumps(info))
    assert environment_state_names(named, FeatureMap()) == tuple(names)
    summary = train(
        TrainConfig(dataset=named, output=tmp_path / "out", steps=2, batch_size=4, workers=0),
        {**TINY, "cameras": [], "mark_subtask_objects": True},
    )
    config = DiTPolicy.from_pretrained(summary["policy"]).config
    assert config.environment_objects == (3, 4)
    assert config.environment_state_names == tuple(names) and config.mark_subtask_objects


def test_the_long_horizon_tasks_name_one_object_per_slot():
    import gymnasium as gym

    from kinema.datasets.features import environment_features

    env = gym.make("kinema/SortCubes-v0").unwrapped
    names = environment_features(env)["observation.environment_state"]["names"]
    assert names[:2] == ["cube_0.x", "cube_0.y"] and names[-1] == "bin_3.purple"
    assert object_lengths(names) == (12,) * 4 + (8,) * 4  # pose and colours; position and colours
    env.close()
