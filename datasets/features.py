"""LeRobot feature descriptions of what a kinema environment observes and does.

``environment_features(env)`` names, for ``LeRobotDataset.create``, every observation key of the
environment (state and environment state as float32 vectors, camera images as videos), the
14-value joint action with the ALOHA joint names, and the same action in the end-effector space
(``action.end_effector``, 20 values: per arm the gripper's position in metres, its 6-D rotation
and its opening; forward kinematics of the joint action), so one recording trains policies in
either action space. Recordings of an expert that errs on purpose also hold ``action.is_mistake``
(1.0 where the frame's action heads for a deliberate mistake, which training leaves out; 0.0
elsewhere). ``frame_values`` turns one observation and action into the values of one dataset
frame.

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> env = gym.make("kinema/TransferCube-v0", cameras=["cam_high"], image_size=(48, 64))
    >>> sorted(environment_features(env.unwrapped))  # doctest: +NORMALIZE_WHITESPACE
    ['action', 'action.end_effector', 'observation.environment_state',
     'observation.images.cam_high', 'observation.state']
"""

import itertools
from typing import Any

import numpy as np

from kinema.aloha import STATE_NAMES
from kinema.controllers.action_spaces import (
    END_EFFECTOR_ACTION_DIM,
    END_EFFECTOR_NAMES,
    end_effector_action_of,
)
from kinema.controllers.kinematics import Kinematics
from kinema.datasets.info import MISTAKE
from kinema.sim.env import ENV_STATE_KEY, IMAGE_KEY_PREFIX, AlohaEnv

END_EFFECTOR_ACTION = "action.end_effector"


def environment_features(env: AlohaEnv, mistakes: bool = False) -> dict[str, dict[str, Any]]:
    """LeRobot features of ``env``'s observations and actions (see the module docstring), with
    ``action.is_mistake`` when the demonstrator makes ``mistakes``."""
    features: dict[str, dict[str, Any]] = {}
    for key, space in env.observation_space.spaces.items():
        if key.startswith(IMAGE_KEY_PREFIX):
            names = ["height", "width", "channels"]
            features[key] = {"dtype": "video", "shape": tuple(space.shape), "names": names}
            continue
        if key == ENV_STATE_KEY:
            names = list(env.task.environment_state_names)
        else:
            names = STATE_NAMES if space.shape == (len(STATE_NAMES),) else None
        features[key] = {"dtype": "float32", "shape": tuple(space.shape), "names": names}
    features["action"] = {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": STATE_NAMES}
    features[END_EFFECTOR_ACTION] = {
        "dtype": "float32",
        "shape": (END_EFFECTOR_ACTION_DIM,),
        "names": END_EFFECTOR_NAMES,
    }
    if mistakes:
        features[MISTAKE] = {"dtype": "float32", "shape": (1,), "names": None}
    return features


def object_lengths(names: list[str] | None) -> tuple[int, ...]:
    """The lengths of the runs of consecutive entries whose ``names`` share the part before
    the first dot (``cube_0.x`` … ``cube_0.purple``, then ``cube_1.x`` …): one run per object.
    Empty when the names do not give at least two objects (no names, or names without dots).

    >>> object_lengths(["peg.x", "peg.y", "socket.x"])
    (2, 1)
    """
    if not names or not all(isinstance(name, str) and "." in name for name in names):
        return ()
    objects = [name.split(".", 1)[0] for name in names]
    lengths = tuple(len(list(run)) for _, run in itertools.groupby(objects))
    return lengths if len(lengths) > 1 else ()


def frame_values(
    observation: dict[str, np.ndarray],
    action: np.ndarray,
    kinematics: Kinematics,
    mistake: bool | None = None,
) -> dict[str, np.ndarray]:
    """One dataset frame: the observation the action was chosen from, the action in both
    action spaces (``kinematics`` of the environment's model gives the end-effector one) and,
    unless None, whether the action heads for a deliberate ``mistake``."""
    values = {key: np.asarray(value) for key, value in observation.items()}
    values["action"] = np.asarray(action, dtype=np.float32)
    values[END_EFFECTOR_ACTION] = end_effector_action_of(kinematics, action).astype(np.float32)
    if mistake is not None:
        values[MISTAKE] = np.array([float(mistake)], dtype=np.float32)
    return values
