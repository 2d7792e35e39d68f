"""Chunk execution: hand-overs without jumps (rtc), ACT's ensembling, and the policy's prefix
inpainting that real-time chunking relies on."""

import numpy as np
import pytest
import torch

from kinema.policies.executor import ChunkExecutor, ExecutorConfig

CHUNK = 20


class DisagreeingPolicy:
    """A policy whose every chunk ramps up slowly but starts 1.0 above the previous chunk's:
    the worst case for hand-overs. With a prefix it starts with the prefix, as ours does."""

    def __init__(self):
        self.calls: list[np.ndarray | None] = []

    def __call__(self, observation: dict, prefix: np.ndarray | None) -> np.ndarray:
        self.calls.append(prefix)
        base = float(len(self.calls))
        chunk = base + 0.01 * np.arange(CHUNK)[:, None] * np.ones((1, 14))
        if prefix is not None:
            chunk[: len(prefix)] = prefix
        return chunk


def executed(config: ExecutorConfig, frames: int = 100) -> tuple[np.ndarray, ChunkExecutor]:
    executor = ChunkExecutor(DisagreeingPolicy(), config)
    actions = np.stack([executor.action({}, frame) for frame in range(frames)])
    return actions, executor


def test_chunk_mode_jumps_at_every_handover_and_rtc_blends_it_away():
    chunked, chunk_executor = executed(ExecutorConfig(mode="chunk", executed_steps=10))
    jumps = np.abs(np.diff(chunked[:, 0]))
    assert chunk_executor.handover_frames == list(range(10, 100, 10))
    assert jumps.max() > 0.8  # the raw hand-over

    config = ExecutorConfig(mode="rtc", executed_steps=10, latency_steps=2, blend_steps=8)
    blended, rtc_executor = executed(config)
    assert rtc_executor.handover_frames == list(range(10, 100, 10))
    assert np.abs(np.diff(blended[:, 0])).max() < 1.0 / 8  # spread over the blend
    assert rtc_executor.predictions - chunk_executor.predictions <= 1  # one asked ahead


def test_rtc_asks_for_chunks_that_start_with_what_is_executed_meanwhile():
    policy = DisagreeingPolicy()
    config = ExecutorConfig(mode="rtc", executed_steps=10, latency_steps=3, blend_steps=4)
    executor = ChunkExecutor(policy, config)
    actions = np.stack([executor.action({}, frame) for frame in range(40)])
    assert policy.calls[0] is None
    # Requested at frame 7 from that observation; frames 7, 8, 9 still run the first chunk.
    np.testing.assert_array_equal(policy.calls[1], actions[7:10])


def test_ensembling_predicts_every_frame_and_weights_older_chunks_more():
    config = ExecutorConfig(mode="ensemble", ensemble_decay=0.5)
    actions, executor = executed(config, frames=5)
    assert executor.predictions == 5
    # At frame 1: chunk 1 (value 1.01) weight 1, chunk 2 (value 2.0) weight e^-0.5.
    weights = np.array([1.0, np.exp(-0.5)])
    np.testing.assert_allclose(actions[1, 0], weights @ [1.01, 2.0] / weights.sum())


def test_executor_lookahead_and_bad_chunks():
    executor = ChunkExecutor(DisagreeingPolicy(), ExecutorConfig(mode="chunk", executed_steps=5))
    ahead = executor.actions({}, 0, 30)
    np.testing.assert_allclose(ahead[:, 0], 1.0 + 0.01 * np.minimum(np.arange(30), CHUNK - 1))
    nan_chunk = lambda observation, prefix: np.full((CHUNK, 14), np.nan)  # noqa: E731
    broken = ChunkExecutor(nan_chunk, ExecutorConfig(executed_steps=25))
    with pytest.raises(ValueError, match="NaN/inf"):
        broken.action({}, 0)
    with pytest.raises(ValueError, match="latency_steps must be in"):
        ExecutorConfig(mode="rtc", executed_steps=4, latency_steps=4)


def test_the_executed_steps_are_the_policys_unless_given():
    assert ExecutorConfig().for_policy(35).executed_steps == 35
    assert ExecutorConfig(executed_steps=10).for_policy(35).executed_steps == 10
    with pytest.raises(ValueError, match="settle executed_steps"):
        ChunkExecutor(DisagreeingPolicy(), ExecutorConfig())
    with pytest.raises(ValueError, match="latency_steps must be in"):
        ExecutorConfig(latency_steps=3).for_policy(2)


@pytest.mark.parametrize("objective", ["diffusion", "flow"])
def test_the_policy_inpaints_a_prefix_exactly(recorded_dataset, objective):
    from test_dit_policy import TINY, first_batch, windows

    from kinema.policies.dit.config import DiTConfig
    from kinema.policies.dit.policy import DiTPolicy

    root, _ = recorded_dataset
    config = DiTConfig(**{**TINY.__dict__, "objective": objective})
    loader = windows(root, config, batch_size=2)
    policy = DiTPolicy(config, loader.stats).eval()
    batch = first_batch(loader)
    prefix = batch["action"][:, :3]
    chunk = policy.sample(batch, torch.Generator().manual_seed(0), prefix)
    torch.testing.assert_close(chunk[:, :3], prefix, rtol=0, atol=1e-5)
    free = policy.sample(batch, torch.Generator().manual_seed(0))
    assert not torch.allclose(free[:, :3], prefix, atol=1e-3)
