"""Run a scripted expert in an environment: plan → cerebellum at 500 Hz → 50 Hz frames.

``ExpertDriver`` produces each 20 ms frame's ten servo commands (see its docstring);
``run_expert_episode`` steps the environment with them (``AlohaEnv.step_ticks``). The frame's
recorded action is its last command: the joint targets the robot is to reach at the end of the
frame, in the 14-value ALOHA convention. With ``ExpertTiming.mistake_rate`` > 0 the expert
sometimes errs on purpose and recovers; ``ExpertDriver.frame_is_mistake`` flags the frames whose
commands head for such an error.

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


def check_timing(task: str, timing: ExpertTiming) -> None:
    """``ValueError`` when ``task``'s expert cannot honour ``timing`` (a mistake rate for an
    expert that cannot err on purpose)."""
    if timing.mistake_rate > 0 and not EXPERTS[task].makes_mistakes:
        raise ValueError(
            f"the {task} expert cannot make deliberate mistakes (mistake_rate "
            f"{timing.mistake_rate}); experts that can: "
            f"{[name for name, expert in EXPERTS.items() if expert.makes_mistakes]}"
        )


class ExpertDriver:
    """A task's expert and the cerebellum together, one 50 Hz frame of servo commands at a time.

    ``start`` resets the environment and plans; each ``next_frame`` advances the plan's clock
    ten ticks, samples the plan one MPC horizon ahead at every tick and lets the cerebellum turn
    that into the next 2 ms command; ``finished`` turns true once the whole plan has been
    executed and the arms have had ``settle_s`` to come to rest.
    """

    def __init__(self, task: str, settle_s: float = 0.3, timing: ExpertTiming = DEFAULT_TIMING):
        check_timing(task, timing)
        self.task = task
        self.settle_s = settle_s
        self.timing = timing

    def start(self, env: AlohaEnv, seed: int) -> tuple[dict, dict]:
        """Reset ``env`` with ``seed`` and plan; returns the first observation and info.

        The expert's randomness (timing, approach) is seeded from ``seed`` too, so an episode
        is reproducible.
        """
        observation, info = env.reset(seed=seed)
        assert env.episode is not None
        self.env = env
        self.expert = EXPERTS[self.task](
            env.task, env.episode.subtasks, np.random.default_rng([seed, 1]), self.timing
        )
        self.cerebellum = EndEffectorCerebellum(env.sim.model, CerebellumConfig())
        self.cerebellum.reset(env.sim.joint_state())
        left, right = self.cerebellum.lookahead_poses()
        start = env.sim.joint_state()
        self.plan = EndEffectorPlan(left, right, (float(start[6]), float(start[13])))
        self.expert.start(self.plan)
        mpc = self.cerebellum.config.mpc
        self._lookahead_s = mpc.horizon_steps * mpc.horizon_dt_s
        self._clock_s = 0.0
        self._planning = True
        self.frame_is_mistake = False
        return observation, info

    def next_frame(self) -> np.ndarray:
        """The servo commands of the next frame, (``PHYSICS_STEPS_PER_CONTROL``, 14).

        ``frame_is_mistake`` then says whether any of them tracked a motion towards a
        deliberate mistake (a frame not to imitate)."""
        commands = np.empty((PHYSICS_STEPS_PER_CONTROL, 14))
        self.frame_is_mistake = False
        for tick in range(PHYSICS_STEPS_PER_CONTROL):
            self._clock_s += self.cerebellum.config.mpc.tick_dt_s
            while self._planning and self._clock_s >= self.plan.end_s:
                self._planning = self.expert.extend(self.env.sim, self.plan)
            target = self.plan.sample(self._clock_s)
            self.frame_is_mistake |= target.mistake
            commands[tick] = self.cerebellum.tick(
                target.left, target.right, target.openings
            ).position
        return commands

    @property
    def finished(self) -> bool:
        """Whether the plan is done and the arms have settled."""
        executed_s = self._clock_s - self._lookahead_s
        return not self._planning and executed_s > self.plan.end_s + self.settle_s

    @property
    def fallbacks(self) -> int:
        """Ticks on which the MPC or the WBC fell back to a safe command."""
        return self.cerebellum.mpc.fallback_count + self.cerebellum.wbc.fallback_count


def run_expert_episode(
    env: AlohaEnv,
    task: str,
    seed: int,
    on_frame: FrameCallback | None = None,
    settle_s: float = 0.3,
    timing: ExpertTiming = DEFAULT_TIMING,
) -> ExpertEpisode:
    """Reset ``env`` with ``seed``, run the task's expert to the end, report the outcome."""
    driver = ExpertDriver(task, settle_s, timing)
    driver.start(env, seed)
    actions = []
    success = False
    for _ in range(env.task.max_episode_steps):
        commands = driver.next_frame()
        observation, _, terminated, truncated, info = env.step_ticks(commands)
        actions.append(commands[-1])
        if on_frame is not None:
            on_frame(observation, commands[-1], info)
        success = success or bool(info["is_success"])
        if terminated or truncated or driver.finished:
            break
    return ExpertEpisode(success, len(actions), np.array(actions), driver.fallbacks)
