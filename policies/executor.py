"""Chunk execution: from a policy that predicts H-action chunks to one action per 50 Hz frame.

Three modes (``ExecutorConfig.mode``):

- **chunk**: predict from the frame's observation, execute the first ``executed_steps`` actions,
  predict again. Simple; the trajectory may jump where one chunk hands over to the next.
- **ensemble** (ACT's temporal ensembling): predict at every frame; the action for frame f is
  the weighted mean of every stored chunk's prediction for f, weights ``exp(-m · i)`` with i = 0
  for the oldest chunk. Smooth but slow (a prediction per frame) and it averages modes.
- **rtc** (real-time chunking): the next chunk is requested ``latency_steps`` frames before the
  current one runs out of executed actions, from the observation then, and becomes available
  ``latency_steps`` frames later, as when inference runs in a background thread while the arms
  keep moving. The new chunk is *generated* to agree with what is executed meanwhile: its first
  ``latency_steps`` actions are inpainted with the old chunk's (the policy's ``prefix``), and
  the hand-over is *blended*: over ``blend_steps`` frames the action moves linearly from the old
  chunk's to the new chunk's. No jump either way.

Frames are counted from the episode start; a chunk predicted from the observation of frame f
holds the actions of frames f, f + 1, …

The executor calls ``predict(observation, prefix) -> (H, A) chunk``; ``prefix`` is None or the
(d, A) actions the chunk must start with. In simulation the latency is counted in frames, so an
evaluation is deterministic; ``kinema run`` (the live stack) runs the same logic on a thread.

Example:
    config = ExecutorConfig().for_policy(policy.config.executed_steps)  # rtc, 35 of 50
    predict = lambda obs, prefix: policy.predict_chunk(obs, "", prefix=prefix).actions
    executor = ChunkExecutor(predict, config)
    executor.reset()
    action = executor.action(observation, frame=0)
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

Predict = Callable[[dict, np.ndarray | None], np.ndarray]


@dataclass(frozen=True)
class ExecutorConfig:
    """How chunks become actions (see the module docstring).

    Attributes:
        mode: "chunk", "ensemble" or "rtc".
        executed_steps: actions of a chunk executed before the next takes over (chunk, rtc);
            None takes the policy's own (``config.executed_steps``: ``for_policy``). A DiT
            trained with ``kinema train`` executes 35 of its 50 actions, which measured best
            with rtc (README, "Choosing the executor"), and with latency 3 and blend 8 its
            hand-over still reads the old chunk's own actions.
        ensemble_decay: m of the ensembling weights exp(-m i), per frame of age.
        latency_steps: frames between requesting a chunk and having it (rtc).
        blend_steps: frames of the linear hand-over from old to new chunk (rtc).
    """

    mode: Literal["chunk", "ensemble", "rtc"] = "rtc"
    executed_steps: int | None = None
    ensemble_decay: float = 0.01
    latency_steps: int = 3
    blend_steps: int = 8

    def __post_init__(self) -> None:
        if self.mode not in ("chunk", "ensemble", "rtc"):
            raise ValueError(f"ExecutorConfig.mode must be chunk, ensemble or rtc: {self.mode!r}")
        if self.executed_steps is None:
            return
        if self.executed_steps < 1:
            raise ValueError(f"ExecutorConfig.executed_steps must be ≥ 1: {self.executed_steps}")
        if self.mode == "rtc" and not 0 <= self.latency_steps < self.executed_steps:
            raise ValueError(
                f"ExecutorConfig.latency_steps must be in [0, executed_steps={self.executed_steps})"
                f", got {self.latency_steps}"
            )

    def for_policy(self, policy_executed_steps: int) -> "ExecutorConfig":
        """This config with ``executed_steps`` settled: its own, else the policy's."""
        if self.executed_steps is not None:
            return self
        return replace(self, executed_steps=policy_executed_steps)


@dataclass
class _Chunk:
    actions: np.ndarray  # (H, A)
    first_frame: int  # the frame of actions[0] (the frame it was predicted at)
    started: int = 0  # the frame it began to be executed (rtc: after the latency)

    def at(self, frame: int) -> np.ndarray:
        """The chunk's action for ``frame`` (its last one past its end)."""
        return self.actions[min(max(frame - self.first_frame, 0), len(self.actions) - 1)]


class ChunkExecutor:
    """One action per frame from a chunk-predicting policy (see the module docstring)."""

    def __init__(self, predict: Predict, config: ExecutorConfig):
        if config.executed_steps is None and config.mode != "ensemble":
            raise ValueError(
                "ChunkExecutor: settle executed_steps first (ExecutorConfig.for_policy)"
            )
        self.predict = predict
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every chunk (a new episode)."""
        self.current: _Chunk | None = None
        self.previous: _Chunk | None = None  # rtc: the chunk being blended out
        self.pending: tuple[int, _Chunk] | None = None  # rtc: (frame it arrives, chunk)
        self.ensemble: list[_Chunk] = []
        self.predictions = 0
        self.handover_frames: list[int] = []  # frames where a new chunk took over

    def _predict(self, observation: dict, frame: int, prefix: np.ndarray | None) -> _Chunk:
        actions = np.asarray(self.predict(observation, prefix), dtype=np.float64)
        if actions.ndim != 2 or not np.all(np.isfinite(actions)):
            raise ValueError(f"the policy returned a chunk of shape {actions.shape} with NaN/inf")
        self.predictions += 1
        return _Chunk(actions, frame)

    def action(self, observation: dict, frame: int) -> np.ndarray:
        """The action for ``frame`` (call once per frame, frames in order)."""
        return self.actions(observation, frame, 1)[0]

    def actions(self, observation: dict, frame: int, count: int) -> np.ndarray:
        """(count, A): the action for ``frame`` and the ``count - 1`` after it as the chunks
        known now give them (a lookahead for the controller; the following frames may differ
        once new chunks arrive). Call once per frame, frames in order."""
        self._update(observation, frame)
        return np.stack([self._action_at(frame + k) for k in range(count)])

    def _update(self, observation: dict, frame: int) -> None:
        """Predict, swap and forget chunks as ``frame`` requires."""
        config = self.config
        if config.mode == "ensemble":
            self.ensemble.append(self._predict(observation, frame, None))
            self.ensemble = [c for c in self.ensemble if frame - c.first_frame < len(c.actions)]
            return
        if config.mode == "chunk":
            if self.current is None or frame - self.current.first_frame >= config.executed_steps:
                if self.current is not None:
                    self.handover_frames.append(frame)
                self.current = self._predict(observation, frame, None)
            return
        if self.current is None:
            self.current = self._predict(observation, frame, None)
            self.current.started = frame
        # Request so that the new chunk arrives when this one has run executed_steps frames.
        request_at = self.current.started + config.executed_steps - config.latency_steps
        if self.pending is None and frame >= request_at:
            # Actions executed while the new chunk is computed: the old chunk's.
            prefix = (
                np.stack([self._action_at(f) for f in range(frame, frame + config.latency_steps)])
                if config.latency_steps
                else None
            )
            self.pending = (frame + config.latency_steps, self._predict(observation, frame, prefix))
        if self.pending is not None and frame >= self.pending[0]:
            self.previous, self.current = self.current, self.pending[1]
            self.current.started = frame
            self.pending = None
            self.handover_frames.append(frame)
        if self.previous is not None and self._blend_index(frame) >= config.blend_steps:
            self.previous = None

    def _blend_index(self, frame: int) -> int:
        """Frames since the current chunk took over (rtc)."""
        assert self.current is not None
        return frame - self.current.started

    def _action_at(self, frame: int) -> np.ndarray:
        """The action for ``frame`` from the chunks held now."""
        if self.config.mode == "ensemble":
            covering = [c for c in self.ensemble if frame - c.first_frame < len(c.actions)]
            covering = covering or self.ensemble[-1:]
            weights = np.exp(-self.config.ensemble_decay * np.arange(len(covering)))
            actions = np.stack([chunk.at(frame) for chunk in covering])
            return weights @ actions / weights.sum()
        assert self.current is not None
        action = self.current.at(frame)
        if self.previous is not None:
            since = self._blend_index(frame)
            if since < self.config.blend_steps:
                old_weight = 1.0 - (since + 1) / (self.config.blend_steps + 1)
                action = old_weight * self.previous.at(frame) + (1.0 - old_weight) * action
        return np.array(action, copy=True)
