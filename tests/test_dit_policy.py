"""The DiT policy: it learns a handful of demonstrations, saves and loads bit-exactly, and
refuses observations it cannot use."""

import json

import numpy as np
import pytest
import torch

from kinema.datasets.loader import WindowConfig, WindowLoader
from kinema.policies.dit.config import DiTConfig
from kinema.policies.dit.encoders import StackedImageEncoders
from kinema.policies.dit.policy import DiTPolicy, PolicyInputError

TINY = DiTConfig(
    cameras=("cam_high",),
    image_size=(48, 64),
    environment_state_dim=7,
    observation_steps=2,
    chunk_steps=8,
    executed_steps=4,
    hidden_dim=32,
    layers=2,
    heads=2,
    mlp_ratio=2.0,
    dropout=0.0,
    image_channels=(8, 8, 16, 32),
    text_layers=1,
    text_max_bytes=48,
    inference_steps=4,
)


# two cameras (the recording has one: the second sees cam_high's frames upside down)
TWO_CAMERAS = DiTConfig(**{**TINY.__dict__, "cameras": ("cam_high", "cam_left_wrist")})


def with_second_camera(batch: dict) -> dict:
    images = batch["observation.images.cam_high"]
    return {**batch, "observation.images.cam_left_wrist": images.flip(-2)}


def perturbed(policy: DiTPolicy, seed: int = 0) -> DiTPolicy:
    """``policy`` with noise added to every parameter (adaLN-Zero starts every block as the
    identity, which would hide most of the network)."""
    with torch.no_grad():
        torch.manual_seed(seed)
        for parameter in policy.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return policy


def windows(root, config: DiTConfig, batch_size: int = 16) -> WindowLoader:
    window = WindowConfig(
        observation_steps=config.observation_steps,
        action_steps=config.chunk_steps,
        batch_size=batch_size,
        workers=0,
    )
    return WindowLoader(root, window, expected=config.input_shapes())


def first_batch(loader: WindowLoader) -> dict:
    return next(iter(loader))


@pytest.mark.parametrize("objective", ["diffusion", "flow"])
def test_a_tiny_policy_overfits_a_batch_of_demonstrations(recorded_dataset, objective):
    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "objective": objective})
    loader = windows(root, config)
    batch = first_batch(loader)
    torch.manual_seed(0)
    policy = DiTPolicy(config, loader.stats)
    optimiser = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = policy.loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[:5]) > 0.5
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:5])


@pytest.mark.parametrize("left_out", ["action_is_pad", "action_is_mistake"])
def test_padding_and_deliberately_mistaken_actions_do_not_count_in_the_loss(
    recorded_dataset, left_out
):
    root, _ = recorded_dataset
    loader = windows(root, TINY)
    batch = first_batch(loader)
    policy = DiTPolicy(TINY, loader.stats)
    batch["action_is_pad"] = torch.zeros_like(batch["action_is_pad"])
    batch[left_out] = torch.zeros_like(batch["action_is_pad"])
    batch[left_out][:, 4:] = True

    def loss_with(offset: float, steps: slice) -> torch.Tensor:
        changed = {**batch, "action": batch["action"].clone()}
        changed["action"][:, steps] += offset
        torch.manual_seed(1)
        return policy.loss(changed)

    reference = loss_with(0.0, slice(None))
    assert torch.equal(loss_with(100.0, slice(4, None)), reference)  # only left-out actions
    assert not torch.equal(loss_with(100.0, slice(0, 4)), reference)


def test_save_then_load_gives_the_same_weights_and_the_same_chunks(recorded_dataset, tmp_path):
    root, _ = recorded_dataset
    loader = windows(root, TINY)
    batch = first_batch(loader)
    policy = DiTPolicy(TINY, loader.stats).eval()
    policy.save_pretrained(tmp_path / "policy")
    loaded = DiTPolicy.from_pretrained(tmp_path / "policy")
    for name, tensor in policy.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    first = policy.sample(batch, torch.Generator().manual_seed(5))
    second = loaded.sample(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
    assert json.loads((tmp_path / "policy" / "config.json").read_text())["hidden_dim"] == 32
    card = (tmp_path / "policy" / "README.md").read_text()
    assert "adaLN-Zero" in card and "Parameters" in card
    policy.save_pretrained(tmp_path / "policy")  # over an existing checkpoint: replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]


def test_predict_chunk_returns_actions_in_range_and_rejects_bad_observations(recorded_dataset):
    root, recorded = recorded_dataset
    loader = windows(root, TINY)
    policy = DiTPolicy(TINY, loader.stats).eval()
    frame = recorded[0][0]
    observation = {
        "observation.state": frame["observation.state"],
        "observation.environment_state": frame["observation.environment_state"],
        "observation.images.cam_high": frame["observation.images.cam_high"],
    }
    chunk = policy.predict_chunk(observation, "pick up the red cube with the right arm", 1.5)
    assert chunk.actions.shape == (8, 14) and chunk.start_time_s == 1.5 and chunk.dt_s == 0.02
    stats = loader.stats["action"]
    assert np.all(chunk.actions >= stats.min - 1e-5) and np.all(chunk.actions <= stats.max + 1e-5)

    with pytest.raises(PolicyInputError, match=r"no 'observation\.images\.cam_high'"):
        policy.predict_chunk({k: v for k, v in observation.items() if "images" not in k}, "x")
    with pytest.raises(PolicyInputError, match=r"observation\.state holds non-finite"):
        policy.predict_chunk({**observation, "observation.state": np.full(14, np.nan)}, "x")
    with pytest.raises(PolicyInputError, match=r"expected shape \(14,\) or \(2, 14\)"):
        policy.predict_chunk({**observation, "observation.state": np.zeros(12)}, "x")


def test_the_adaln_summary_weighs_each_token_kind_alike(recorded_dataset):
    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "cameras": ()})  # tokens: n states, n objects, text
    loader = windows(root, config)
    batch = first_batch(loader)
    n = config.observation_steps
    summaries = {}
    for summary in ("kinds", "tokens"):
        policy = DiTPolicy(DiTConfig(**{**config.__dict__, "summary": summary}), loader.stats)
        observation = policy.encode_observation(batch)
        tokens, kept = observation.tokens, (~observation.padding).unsqueeze(-1).float()
        text = (tokens[:, 2 * n :] * kept[:, 2 * n :]).sum(1) / kept[:, 2 * n :].sum(1)
        kinds = (tokens[:, :n].mean(1) + tokens[:, n : 2 * n].mean(1) + text) / 3
        every_token = (tokens * kept).sum(1) / kept.sum(1)
        torch.testing.assert_close(
            observation.summary, kinds if summary == "kinds" else every_token
        )
        summaries[summary] = observation.summary
    assert not torch.allclose(summaries["kinds"], summaries["tokens"], atol=1e-3)


def test_training_encodes_each_distinct_text_once_as_if_it_were_alone(recorded_dataset):
    root, _ = recorded_dataset
    loader = windows(root, TINY)
    policy = perturbed(DiTPolicy(TINY, loader.stats)).train()
    texts = ["pick", "put the red cube in the red bin", "pick", "ŕed"]
    tokens, padding = policy._text_tokens(texts, torch.device("cpu"))
    assert tokens.shape[1] == len(texts[1].encode("utf-8"))  # columns padding every text cut
    torch.testing.assert_close(tokens[0], tokens[2])
    for row, text in enumerate(texts):
        alone = policy._text_tokens([text], torch.device("cpu"))[0]
        length = len(text.encode("utf-8"))
        assert not padding[row, :length].any() and padding[row, length:].all()
        torch.testing.assert_close(tokens[row, :length], alone[0, :length])


def test_each_object_of_the_environment_state_gets_a_token_of_its_own(recorded_dataset, tmp_path):
    root, _ = recorded_dataset
    # the cube's pose (7 entries) read as two objects: its position, then its orientation
    config = DiTConfig(**{**TINY.__dict__, "cameras": (), "environment_objects": (3, 4)})
    loader = windows(root, config)
    batch = first_batch(loader)
    policy = perturbed(DiTPolicy(config, loader.stats)).eval()
    n = config.observation_steps
    with torch.no_grad():
        tokens = policy.encode_observation(batch).tokens
        moved = {
            **batch,
            "observation.environment_state": batch["observation.environment_state"].clone(),
        }
        moved["observation.environment_state"][..., :3] += 0.05  # the position only
        moved_tokens = policy.encode_observation(moved).tokens
    # tokens: n states, then per step the position and the orientation, then the text
    objects, moved_objects = (t[:, n : 3 * n].unflatten(1, (n, 2)) for t in (tokens, moved_tokens))
    assert not torch.allclose(objects[:, :, 0], moved_objects[:, :, 0])
    torch.testing.assert_close(objects[:, :, 1], moved_objects[:, :, 1], rtol=0, atol=0)
    policy.save_pretrained(tmp_path / "policy")
    loaded = DiTPolicy.from_pretrained(tmp_path / "policy")
    assert loaded.config.environment_objects == (3, 4)
    first = policy.sample(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, loaded.sample(batch, torch.Generator().manual_seed(5)))


NAMED_OBJECTS = ("tip.x", "tip.y", "tip.z", "base.qw", "base.qx", "base.qy", "base.qz")


def named_objects_policy(root, switch: str) -> tuple[DiTConfig, WindowLoader, dict, DiTPolicy]:
    """A state-only policy whose environment state is a named tip (3) and base (4), with the
    DiTConfig ``switch`` on; its loader, a batch and the policy (perturbed, eval mode)."""
    objects = {
        "cameras": (),
        "environment_objects": (3, 4),
        "environment_state_names": NAMED_OBJECTS,
        switch: True,
    }
    config = DiTConfig(**{**TINY.__dict__, **objects})
    loader = windows(root, config)
    policy = perturbed(DiTPolicy(config, loader.stats)).eval()
    return config, loader, first_batch(loader), policy


def test_the_objects_the_subtask_names_are_marked_in_their_tokens(recorded_dataset, tmp_path):
    config, loader, batch, policy = named_objects_policy(
        recorded_dataset[0], "mark_subtask_objects"
    )
    n, size = config.observation_steps, len(batch["task"])

    def object_tokens(text: str) -> torch.Tensor:
        with torch.no_grad():
            tokens = policy.encode_observation({**batch, "task": [text] * size}).tokens
        return tokens[:, n : 3 * n].unflatten(1, (n, 2))  # per step: tip, base

    unnamed = object_tokens("tidy up")
    tip_acted_on = object_tokens("pick up the tip with the right arm")
    tip_target = object_tokens("insert the base into the tip")
    assert not torch.allclose(unnamed[:, :, 0], tip_acted_on[:, :, 0])
    assert not torch.allclose(tip_acted_on[:, :, 0], tip_target[:, :, 0])  # two roles
    torch.testing.assert_close(unnamed[:, :, 1], tip_acted_on[:, :, 1], rtol=0, atol=0)
    assert not torch.allclose(unnamed[:, :, 1], tip_target[:, :, 1])  # the base acted on
    policy.save_pretrained(tmp_path / "policy")
    assert "a token per object (2), the subtask's object and target marked" in (
        (tmp_path / "policy" / "README.md").read_text().replace("\n  ", " ")
    )
    loaded = DiTPolicy.from_pretrained(tmp_path / "policy")
    assert loaded.config.environment_state_names == NAMED_OBJECTS
    first = policy.sample(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, loaded.sample(batch, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="lengths"):
        DiTPolicy(DiTConfig(**{**config.__dict__, "environment_objects": (4, 3)}), loader.stats)


def test_objects_the_subtask_does_not_name_are_hidden_from_the_policy(recorded_dataset, tmp_path):
    _, _, batch, policy = named_objects_policy(recorded_dataset[0], "hide_unnamed_objects")
    size = len(batch["task"])

    def chunks(text: str, moved: slice | None = None, rows: int = size, by=policy) -> torch.Tensor:
        objects = batch["observation.environment_state"][:rows].clone()
        if moved is not None:
            objects[..., moved] += 0.05
        observed = {
            "observation.state": batch["observation.state"][:rows],
            "observation.environment_state": objects,
            "task": [text] * rows,
        }
        return by.sample(observed, torch.Generator().manual_seed(5))

    tip, base = slice(0, 3), slice(3, 7)
    named_tip = "pick up the tip with the right arm"
    for rows in (size, 1):  # a batch masks the hidden keys, a single observation drops them
        seen = chunks(named_tip, rows=rows)
        assert torch.equal(seen, chunks(named_tip, base, rows))
        assert not torch.allclose(seen, chunks(named_tip, tip, rows))
    assert not torch.allclose(chunks("tidy up"), chunks("tidy up", base))  # names none: all seen
    policy.save_pretrained(tmp_path / "policy")
    assert "only the objects the subtask names seen" in (
        (tmp_path / "policy" / "README.md").read_text().replace("\n  ", " ")
    )
    loaded = DiTPolicy.from_pretrained(tmp_path / "policy")
    assert torch.equal(chunks(named_tip), chunks(named_tip, by=loaded))


def test_config_round_trips_through_json_and_rejects_nonsense():
    assert DiTConfig.from_dict(json.loads(TINY.to_json())) == TINY
    with pytest.raises(ValueError, match="action_space must be one of"):
        DiTConfig(action_space="cartesian")
    with pytest.raises(ValueError, match="multiples of 16"):
        DiTConfig(image_size=(100, 128))
    with pytest.raises(ValueError, match=r"executed_steps must be in 1\.\.chunk_steps"):
        DiTConfig(chunk_steps=10, executed_steps=20)
    with pytest.raises(ValueError, match="summary must be kinds or tokens"):
        DiTConfig(summary="max")
    with pytest.raises(ValueError, match="summing to environment_state_dim=7"):
        DiTConfig(environment_state_dim=7, environment_objects=(3, 3))
    with pytest.raises(ValueError, match="must name the 7 entries"):
        DiTConfig(environment_state_dim=7, environment_state_names=("a.x",))
    for switch in ("mark_subtask_objects", "hide_unnamed_objects"):
        with pytest.raises(ValueError, match=f"{switch} needs"):
            DiTConfig(environment_state_dim=7, environment_objects=(3, 4), **{switch: True})
    names = ("a.x", "a.y", "a.z", "b.x", "b.y", "b.z", "b.w")
    with_objects = DiTConfig(
        environment_state_dim=7,
        environment_objects=(3, 4),
        environment_state_names=names,
        mark_subtask_objects=True,
    )
    assert DiTConfig.from_dict(json.loads(with_objects.to_json())) == with_objects


def test_image_encoders_start_from_exported_weights_of_the_same_size(recorded_dataset, tmp_path):
    root, _ = recorded_dataset
    stats = windows(root, TINY).stats
    torch.manual_seed(0)
    source = DiTPolicy(TINY, stats)
    source.export_image_encoder("cam_high", tmp_path / "encoder.safetensors")
    torch.manual_seed(1)
    target = DiTPolicy(TINY, stats)
    target.load_image_encoders(tmp_path / "encoder.safetensors")
    for name, tensor in source.image_encoders["cam_high"].state_dict().items():
        assert torch.equal(tensor, target.image_encoders["cam_high"].state_dict()[name])
    wider = DiTConfig(**{**TINY.__dict__, "image_channels": (8, 16, 16, 32)})
    with pytest.raises(ValueError, match=r"encoder\.safetensors: not weights for this image"):
        DiTPolicy(wider, stats).load_image_encoders(tmp_path / "encoder.safetensors")


@pytest.mark.parametrize("objective", ["diffusion", "flow"])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("cameras", [1, 2])
def test_the_inference_path_samples_what_the_full_network_samples(
    recorded_dataset, objective, batch_size, cameras
):
    """In eval mode sampling prepares the observation's keys, values and modulations once per
    chunk and drops padding, runs several cameras' image encoders as one network and keeps the
    text's tokens; in training mode it runs the whole network every step. Both must give the
    same chunk (up to float rounding), with and without a prefix to inpaint."""
    root, _ = recorded_dataset
    config = DiTConfig(**{**(TINY, TWO_CAMERAS)[cameras - 1].__dict__, "objective": objective})
    loader = windows(root, TINY, batch_size=batch_size)
    batch = with_second_camera(first_batch(loader))
    batch["task"] = ["pick up the red cube with the right arm", "x", ""][:batch_size]
    policy = perturbed(DiTPolicy(config, loader.stats))
    prefix = batch["action"][:, :3]
    with torch.no_grad():
        for known in (None, prefix):
            full = policy.train().sample(batch, torch.Generator().manual_seed(3), known)
            fast = policy.eval().sample(batch, torch.Generator().manual_seed(3), known)
            torch.testing.assert_close(fast, full, rtol=0, atol=1e-5)


def test_stacked_image_encoders_give_every_camera_its_own_tokens(recorded_dataset):
    """When sampling, several cameras' image encoders run as one grouped network; every camera
    must get the tokens its own encoder gives."""
    root, _ = recorded_dataset
    loader = windows(root, TINY, batch_size=3)
    batch = with_second_camera(first_batch(loader))
    policy = perturbed(DiTPolicy(TWO_CAMERAS, loader.stats)).eval()
    images = [
        batch[feature].flatten(0, 1).float() / 255.0 for feature in TWO_CAMERAS.image_features()
    ]
    encoders = [policy.image_encoders[camera] for camera in TWO_CAMERAS.cameras]
    with torch.no_grad():
        stacked = StackedImageEncoders(encoders)(images)
        for encoder, frames, tokens in zip(encoders, images, stacked, strict=True):
            torch.testing.assert_close(tokens, encoder(frames), rtol=0, atol=1e-5)


def test_what_sampling_keeps_follows_the_weights(recorded_dataset):
    """Sampling keeps what it derives from the weights across chunks (the transformer's laid-out
    weights, the stacked image encoders, the text's tokens); after the weights change (loaded,
    or an optimiser step) the next chunk must be the one a fresh policy with those weights
    samples."""
    root, _ = recorded_dataset
    loader = windows(root, TINY, batch_size=1)
    batch = with_second_camera(first_batch(loader))

    def chunk(policy: DiTPolicy) -> torch.Tensor:
        return policy.eval().sample(batch, torch.Generator().manual_seed(5))

    def fresh(policy: DiTPolicy) -> DiTPolicy:
        copy = DiTPolicy(TWO_CAMERAS, loader.stats)
        copy.load_state_dict(policy.state_dict())
        return copy

    policy = perturbed(DiTPolicy(TWO_CAMERAS, loader.stats))
    first = chunk(policy)
    assert torch.equal(chunk(policy), first)  # kept, the same
    other = perturbed(DiTPolicy(TWO_CAMERAS, loader.stats), seed=1)
    policy.load_state_dict(other.state_dict())
    loaded = chunk(policy)
    assert not torch.equal(loaded, first)
    assert torch.equal(loaded, chunk(other))
    optimiser = torch.optim.SGD(policy.parameters(), lr=0.1)
    policy.train().loss(batch).backward()
    optimiser.step()
    stepped = chunk(policy)
    assert not torch.equal(stepped, loaded)
    assert torch.equal(stepped, chunk(fresh(policy)))
