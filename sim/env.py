"""The gymnasium environment of every kinema task: ``gymnasium.make("kinema/<Task>-v0", ...)``.

Observations use LeRobot's key names:
    observation.state              (14,) float32: per arm (left first) 6 joint angles in rad, then
                                   the gripper opening 0 = closed … 1 = open; bounded by the
                                   joint limits (the space says so, and readings are clipped to it)
    observation.environment_state  (D,) float32: the task's object poses (m, unit quaternion
                                   w x y z) and identities, for state-based policies
    observation.images.<camera>    (H, W, 3) uint8, for each camera asked for

Actions: 14 joint targets in the same convention, held by the position servos for one 20 ms
control step (10 physics steps of 2 ms). Targets beyond the limits are clipped by the servos;
an action of the wrong shape or with NaN/inf raises ``ActionError``.

Reward: the task's staged reward (0 … ``info["max_stage"]``). ``terminated`` is True once the task
succeeds (unless ``terminate_on_success=False``); episodes are truncated after the task's
``max_episode_steps`` by gymnasium's TimeLimit.

``info`` holds ``is_success``, ``stage``, ``max_stage``, ``instruction``, ``subtasks`` (the
ground-truth plan, a tuple of ``Subtask``) and ``subtasks_done`` (a bool per subtask).

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> env = gym.make("kinema/TransferCube-v0", cameras=["cam_high", "cam_left_wrist"],
    ...                image_size=(96, 128))
    >>> obs, info = env.reset(seed=0)
    >>> obs["observation.images.cam_high"].shape
    (96, 128, 3)
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from kinema.aloha import ACTION_DIM, ACTION_HIGH, ACTION_LOW, HOME_POSE
from kinema.sim.model import build_model
from kinema.sim.rendering import CameraRenderer, validate_image_size
from kinema.sim.simulation import PHYSICS_STEPS_PER_CONTROL, ActionError, AlohaSim
from kinema.sim.tasks import Episode, Task, make_task
from kinema.types import Subtask

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
IMAGE_KEY_PREFIX = "observation.images."

Observation = dict[str, np.ndarray]


def subtask_in_progress(info: dict[str, Any]) -> Subtask | None:
    """The first subtask of ``info``'s episode that is not done yet; None when all are."""
    for subtask, done in zip(info["subtasks"], info["subtasks_done"], strict=True):
        if not done:
            return subtask
    return None


class AlohaEnv(gym.Env[Observation, np.ndarray]):
    """A bimanual ALOHA-style robot in MuJoCo doing one task (see the module docstring).

    Args:
        task: a task name (``TransferCube``, ``Insertion``, ``SortCubes``, ``StackBlocks``) or
            a ``Task`` instance.
        cameras: the cameras to render into each observation; none means state-only
            observations and no rendering cost.
        image_size: (height, width) of every camera image, in pixels.
        render_mode: ``"rgb_array"`` makes ``render()`` return the ``render_camera`` image.
        render_camera: the camera ``render()`` shows.
        terminate_on_success: end the episode when the task succeeds.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        task: str | Task,
        cameras: Sequence[str] = (),
        image_size: Sequence[int] = (480, 640),
        render_mode: str | None = None,
        render_camera: str = "cam_high",
        terminate_on_success: bool = True,
    ):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = make_task(task) if isinstance(task, str) else task
        self.image_size = validate_image_size(image_size)
        self.render_mode = render_mode
        self.terminate_on_success = terminate_on_success

        self.sim = AlohaSim(build_model(self.task.objects_xml()))
        self.task.bind(self.sim)
        self._camera_renderer = (
            CameraRenderer(self.sim.model, cameras, self.image_size) if cameras else None
        )
        self._view_renderer = (
            CameraRenderer(self.sim.model, [render_camera], self.image_size)
            if render_mode == "rgb_array"
            else None
        )
        self.cameras = tuple(cameras)

        self.action_space = gym.spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)
        spaces: dict[str, gym.Space] = {
            STATE_KEY: gym.spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32),
            ENV_STATE_KEY: gym.spaces.Box(
                -np.inf, np.inf, shape=(self.task.environment_state_dim,), dtype=np.float32
            ),
        }
        height, width = self.image_size
        for camera in self.cameras:
            spaces[IMAGE_KEY_PREFIX + camera] = gym.spaces.Box(
                0, 255, shape=(height, width, 3), dtype=np.uint8
            )
        self.observation_space = gym.spaces.Dict(spaces)
        self.episode: Episode | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        self.sim.reset(HOME_POSE)
        self.episode = self.task.reset(self.sim, self.np_random)
        self.sim.forward()
        return self.observation(), self.task_info()

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self.episode is None:
            raise RuntimeError("AlohaEnv.step called before reset()")
        self.sim.step(action)
        return self._transition()

    def step_ticks(
        self, commands: np.ndarray
    ) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """One 50 Hz control step driven at the physics rate: ``commands`` holds one (14,) target
        per physics step (``PHYSICS_STEPS_PER_CONTROL`` × 14, 2 ms each), as a 500 Hz
        controller produces them. Returns what ``step`` returns."""
        if self.episode is None:
            raise RuntimeError("AlohaEnv.step_ticks called before reset()")
        rows = np.asarray(commands)
        if rows.shape != (PHYSICS_STEPS_PER_CONTROL, ACTION_DIM):
            raise ActionError(
                f"commands must have shape ({PHYSICS_STEPS_PER_CONTROL}, {ACTION_DIM}): one "
                f"target per 2 ms physics step. Got {rows.shape}."
            )
        self.sim.step_ticks(rows)
        return self._transition()

    def _transition(self) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        info = self.task_info()
        terminated = self.terminate_on_success and info["is_success"]
        return self.observation(), float(info["stage"]), terminated, False, info

    def render(self) -> np.ndarray | None:
        if self._view_renderer is None:
            return None
        return next(iter(self._view_renderer.render(self.sim.data).values()))

    def close(self) -> None:
        for renderer in (self._camera_renderer, self._view_renderer):
            if renderer is not None:
                renderer.close()
        self._camera_renderer = self._view_renderer = None

    def observation(self) -> Observation:
        """The observation of the present state (as ``reset`` and ``step`` return it)."""
        state = np.clip(self.sim.joint_state(), ACTION_LOW, ACTION_HIGH).astype(np.float32)
        observation = {
            STATE_KEY: state,
            ENV_STATE_KEY: self.task.environment_state(self.sim).astype(np.float32),
        }
        if self._camera_renderer is not None:
            for camera, image in self._camera_renderer.render(self.sim.data).items():
                observation[IMAGE_KEY_PREFIX + camera] = image
        return observation

    def task_info(self) -> dict[str, Any]:
        """The ``info`` of the present state (as ``reset`` and ``step`` return it)."""
        assert self.episode is not None
        stage = self.task.stage(self.sim)
        return {
            "task": self.task.name,
            "instruction": self.episode.instruction,
            "subtasks": self.episode.subtasks,
            "subtasks_done": tuple(
                self.task.subtask_done(self.sim, s) for s in self.episode.subtasks
            ),
            "stage": stage,
            "max_stage": self.task.max_stage,
            "is_success": stage == self.task.max_stage,  # Task.is_success, stage reused
        }
