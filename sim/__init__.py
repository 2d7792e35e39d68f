"""kinema.sim: the MuJoCo simulation of a bimanual ALOHA-style robot, its tasks and environments.

Importing this package registers one gymnasium environment per task, ``kinema/<Task>-v0``
(TransferCube, Insertion, SortCubes, StackBlocks); ``kinema`` itself selects headless EGL
rendering when ``MUJOCO_GL`` is unset.
"""

import gymnasium as gym

from kinema.sim.tasks import TASKS


def env_id(task: str) -> str:
    """The gymnasium id of a task, e.g. ``kinema/TransferCube-v0``."""
    return f"kinema/{task}-v0"


for _name, _task in TASKS.items():
    if env_id(_name) not in gym.registry:
        gym.register(
            id=env_id(_name),
            entry_point="kinema.sim.env:AlohaEnv",
            kwargs={"task": _name},
            max_episode_steps=_task.max_episode_steps,
        )
