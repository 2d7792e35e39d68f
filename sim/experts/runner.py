"""Run a scripted expert in an environment: plan → cerebellum at 500 Hz → 50 Hz frames.

Each 20 ms frame the runner advances the plan's clock ten ticks; at every tick it samples the
plan one MPC horizon ahead (the cerebellum's look-ahead), lets the cerebellum turn that into the
next 2 ms servo command, and finally steps the environment with the frame's ten commands
(``AlohaEnv.step_ticks``). The frame's recorded action is its last command: the joint targets
the robot is to reach at the end of the frame, in the 14-value ALOHA convention.

The episode ends on success (when the environment terminates), when the plan is finished and
the arms have had ``settle_s`` to come to rest, or at the environment's step limit.

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> env = gym.make("kinema/TransferCube-v0").unwrapped
    >>> result = run_expert_episode(env, "TransferCube", seed=1)
    >>> result.actions.shape[1]
    14
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kinema.controllers.cerebellum import CerebellumConfig, EndEffectorCerebellum
from kinema.sim.env import AlohaEnv
from kinema.sim.experts.base import DEFAULT_TIMING, Expert, ExpertTiming
from kinema.sim.experts.insertion import InsertionExpert
from kinema.sim.experts.plan import EndEffectorPlan
from kinema.sim.experts.sort_cubes import SortCubesExpert
from kinema.sim.experts.stack_blocks import StackBlocksExpert
from kinema.sim.experts.transfer_cube import TransferCubeExpert
from kinema.sim.simulation import PHYSICS_STEPS_PER_CONTROL

EXPERTS: dict[str, type[Expert]] = {
    "TransferCube": TransferCubeExpert,
    "Insertion": InsertionExpert,
    "SortCubes": SortCubesExpert,
    "StackBlocks": StackBlocksExpert,
}

FrameCallback = Callable[[dict, np.ndarray, dict], None]
"""Called after every frame with (observation, action, info)."""


@dataclass(frozen=True)
class ExpertEpisode:
    """The outcome of one demonstration.

    Attributes:
        success: whether the task's success predicate held at some frame.
        frames: number of 50 Hz frames executed.
        actions: (frames, 14) recorded joint actions.
        fallbacks: cerebellum ticks that fell back to a safe command (MPC or WBC).
    """

    success: bool
    frames: int
    actions: np.ndarray
    fallbacks: int


def run_expert_episode(
    env: AlohaEnv,
    task: str,
    seed: int,
    on_frame: FrameCallback | None = None,
    settle_s: float = 0.3,
    timing: ExpertTiming = DEFAULT_TIMING,
) -> ExpertEpisode:
    """Reset ``env`` with ``seed``, run the task's expert to the end, report the outcome.

    The expert's randomness (timing, approach) is seeded from ``seed`` too, so an episode is
    reproducible.
    """
    observation, info = env.reset(seed=seed)
    assert env.episode is not None
    expert = EXPERTS[task](env.task, env.episode.subtasks, np.random.default_rng([seed, 1]), timing)
    cerebellum = EndEffectorCerebellum(env.sim.model, CerebellumConfig())
    cerebellum.reset(env.sim.joint_state())
    left, right = cerebellum.lookahead_poses()
    start = env.sim.joint_state()
    plan = EndEffectorPlan(left, right, (float(start[6]), float(start[13])))
    expert.start(plan)
    tick_s = cerebellum.config.mpc.tick_dt_s
    clock_s = 0.0
    planning = True
    actions = []
    success = False
    steps_left = env.task.max_episode_steps
    while steps_left > 0:
        commands = np.empty((PHYSICS_STEPS_PER_CONTROL, 14))
        for tick in range(PHYSICS_STEPS_PER_CONTROL):
            clock_s += tick_s
            while planning and clock_s >= plan.end_s:
                planning = expert.extend(env.sim, plan)
            target = plan.sample(clock_s)
            commands[tick] = cerebellum.tick(target.left, target.right, target.openings).position
        observation, _, terminated, truncated, info = env.step_ticks(commands)
        actions.append(commands[-1])
        if on_frame is not None:
            on_frame(observation, commands[-1], info)
        steps_left -= 1
        success = success or bool(info["is_success"])
        lookahead_s = cerebellum.config.mpc.horizon_steps * cerebellum.config.mpc.horizon_dt_s
        finished = not planning and clock_s - lookahead_s > plan.end_s + settle_s
        if terminated or truncated or finished:
            break
    fallbacks = cerebellum.mpc.fallback_count + cerebellum.wbc.fallback_count
    return ExpertEpisode(success, len(actions), np.array(actions), fallbacks)
