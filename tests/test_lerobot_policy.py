"""lerobot's ACT and Diffusion Policy, as ``lerobot-train`` saves them, in our control loop and
``kinema eval``."""

import json

import numpy as np
import pytest
import torch
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.datasets import LeRobotDataset
from lerobot.policies.act import ACTConfig, ACTPolicy
from lerobot.policies.diffusion import DiffusionConfig, DiffusionPolicy
from lerobot.processor import make_default_pre_post_processors

from kinema.cli import main
from kinema.policies.dit.config import ENVIRONMENT_STATE, IMAGE_PREFIX, STATE
from kinema.policies.dit.policy import PolicyInputError
from kinema.policies.lerobot_policy import LerobotChunkPolicy, is_lerobot_checkpoint

CAMERA = IMAGE_PREFIX + "cam_high"
CAMERA_AND_STATE = {
    STATE: PolicyFeature(type=FeatureType.STATE, shape=(14,)),
    CAMERA: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64)),
}
ACTION = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(14,))}


def tiny_act(dataset: LeRobotDataset, inputs: dict[str, PolicyFeature] | None = None):
    """A small untrained ACT (chunks of 10) for the dataset's cam_high and joint state, and its
    processors with the dataset's statistics."""
    config = ACTConfig(
        input_features=inputs or CAMERA_AND_STATE,
        output_features=ACTION,
        device="cpu",
        chunk_size=10,
        n_action_steps=10,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        pretrained_backbone_weights=None,
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    preprocessor, postprocessor = make_default_pre_post_processors(config, dataset.meta.stats)
    return policy, preprocessor, postprocessor


def save_checkpoint(policy, preprocessor, postprocessor, folder):
    """Write the policy and its processors as ``lerobot-train`` writes ``pretrained_model``."""
    policy.save_pretrained(folder)
    preprocessor.save_pretrained(folder)
    postprocessor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def act_checkpoint(recorded_dataset, tmp_path_factory):
    """A tiny ACT saved as ``lerobot-train`` saves its checkpoints, and the dataset."""
    root, _ = recorded_dataset
    dataset = LeRobotDataset("kinema/recorded", root=root)
    folder = tmp_path_factory.mktemp("act") / "pretrained_model"
    return save_checkpoint(*tiny_act(dataset), folder), dataset


def test_a_lerobot_checkpoint_is_recognised_and_a_dit_one_is_not(act_checkpoint, tmp_path):
    folder, _ = act_checkpoint
    assert is_lerobot_checkpoint(folder)
    (tmp_path / "config.json").write_text(json.dumps({"cameras": [], "state_dim": 14}))
    assert not is_lerobot_checkpoint(tmp_path)


def test_the_adapter_gives_the_actions_lerobot_gives_on_its_own_dataset_frame(act_checkpoint):
    """Our uint8 (H, W, 3) camera images become exactly the [0, 1] channels-first floats that
    lerobot's dataset feeds its policy, and the chunk comes back unnormalised."""
    folder, dataset = act_checkpoint
    adapter = LerobotChunkPolicy.from_pretrained(folder)
    assert adapter.config.cameras == ("cam_high",) and adapter.config.chunk_steps == 10
    frame = dataset[30]
    image = (frame[CAMERA].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ours = adapter.predict_chunk({STATE: frame[STATE].numpy(), CAMERA: image}, "any text")

    batch = {STATE: frame[STATE][None], CAMERA: torch.from_numpy(image).permute(2, 0, 1)[None]}
    batch[CAMERA] = batch[CAMERA].float() / 255
    with torch.inference_mode():
        theirs = adapter.postprocessor(
            adapter.policy.predict_action_chunk(adapter.preprocessor(batch))
        )
    assert ours.actions.shape == (10, 14)
    np.testing.assert_allclose(ours.actions, theirs[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="chunk or ensemble executor"):
        adapter.predict_chunk({STATE: frame[STATE].numpy(), CAMERA: image}, "", prefix=ours.actions)
    with pytest.raises(ValueError, match=r"no 'observation\.images\.cam_high'"):
        adapter.predict_chunk({STATE: frame[STATE].numpy()}, "")


def test_diffusion_policy_sees_the_two_frame_history_lerobot_feeds_it(recorded_dataset, tmp_path):
    """lerobot's Diffusion Policy reads the last two frames: the adapter's (2, H, W, 3) history
    gives the chunk lerobot gives on the same two dataset frames, with the same noise."""
    root, _ = recorded_dataset
    history = {key: [-1 / 50, 0.0] for key in (STATE, CAMERA)}
    dataset = LeRobotDataset("kinema/recorded", root=root, delta_timestamps=history)
    config = DiffusionConfig(
        input_features=CAMERA_AND_STATE,
        output_features=ACTION,
        device="cpu",
        horizon=16,
        n_action_steps=8,
        down_dims=(16, 32),
        diffusion_step_embed_dim=16,
        spatial_softmax_num_keypoints=8,
        pretrained_backbone_weights=None,
        noise_scheduler_type="DDIM",
        num_inference_steps=3,
    )
    torch.manual_seed(0)
    policy = DiffusionPolicy(config)
    processors = make_default_pre_post_processors(config, dataset.meta.stats)
    folder = save_checkpoint(policy, *processors, tmp_path / "pretrained_model")
    adapter = LerobotChunkPolicy.from_pretrained(folder)
    assert adapter.config.observation_steps == 2 and adapter.config.chunk_steps == 8

    frame = dataset[40]
    images = (frame[CAMERA].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    observation = {STATE: frame[STATE].numpy(), CAMERA: images}
    torch.manual_seed(3)
    ours = adapter.predict_chunk(observation, "").actions

    batch = {STATE: frame[STATE][None], CAMERA: torch.from_numpy(images).permute(0, 3, 1, 2)[None]}
    batch[CAMERA] = batch[CAMERA].float() / 255
    torch.manual_seed(3)
    with torch.inference_mode():
        theirs = adapter.postprocessor(
            adapter.policy.predict_action_chunk(adapter.preprocessor(batch))
        )
    assert ours.shape == (8, 14)
    np.testing.assert_allclose(ours, theirs[0].numpy(), atol=1e-5)

    def seeded(observation):
        return adapter.predict_chunk(observation, "", 0.0, torch.Generator().manual_seed(5)).actions

    np.testing.assert_array_equal(seeded(observation), seeded(observation))
    assert not np.allclose(seeded({**observation, CAMERA: images[[1, 1]]}), seeded(observation))


def test_a_state_based_peer_gets_the_object_poses_and_other_inputs_are_refused(act_checkpoint):
    """A peer of the state-based DiT (joint state and object poses, no camera) gets the
    observation's object poses as lerobot's dataset feeds them; an input we cannot give is a
    clear error."""
    _, dataset = act_checkpoint
    inputs = {
        STATE: CAMERA_AND_STATE[STATE],
        ENVIRONMENT_STATE: PolicyFeature(type=FeatureType.ENV, shape=(7,)),
    }
    adapter = LerobotChunkPolicy(*tiny_act(dataset, inputs))
    assert adapter.config.cameras == () and adapter.config.environment_state_dim == 7
    frame = dataset[30]
    observation = {name: frame[name].numpy() for name in inputs}
    ours = adapter.predict_chunk(observation, "").actions

    batch = {name: frame[name][None] for name in inputs}
    with torch.inference_mode():
        theirs = adapter.postprocessor(
            adapter.policy.predict_action_chunk(adapter.preprocessor(batch))
        )
    np.testing.assert_allclose(ours, theirs[0].numpy(), atol=1e-5)
    moved = {**observation, ENVIRONMENT_STATE: observation[ENVIRONMENT_STATE] + 0.05}
    assert not np.allclose(adapter.predict_chunk(moved, "").actions, ours)
    with pytest.raises(PolicyInputError, match=r"no 'observation\.environment_state'"):
        adapter.predict_chunk({STATE: observation[STATE]}, "")
    language = {**inputs, "observation.language": PolicyFeature(FeatureType.LANGUAGE, (1,))}
    with pytest.raises(ValueError, match=r"\['observation\.language'\] are not supported"):
        LerobotChunkPolicy(*tiny_act(dataset, language))


def test_kinema_eval_runs_a_lerobot_checkpoint_with_the_chunk_executor(
    act_checkpoint, tmp_path, capsys
):
    folder, _ = act_checkpoint
    with pytest.raises(ValueError, match="--executor chunk or ensemble"):
        main(["eval", "--policy", str(folder), "--out", str(tmp_path / "eval")])
    main(
        [
            "eval", "--policy", str(folder), "--task", "TransferCube", "--episodes", "1",
            "--workers", "1", "--videos", "0", "--executor", "chunk",
            "--out", str(tmp_path / "eval"),
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["task"] == "TransferCube" and report["episodes"] == 1
    assert report["action_space"] == "joint" and report["inference_ms"] > 0
    assert report["executed_steps"] == 10  # the policy's n_action_steps
    saved = json.loads((tmp_path / "eval" / "TransferCube_chunk.json").read_text())
    episode = saved["episodes"][0]
    assert episode["predictions"] == -(-episode["frames"] // 10)  # one chunk per 10 frames
