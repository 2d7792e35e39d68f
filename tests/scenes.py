"""Hand-built simulator states for tests: objects placed in grippers, bins, towers."""

import av
import mujoco
import numpy as np

from kinema.aloha import HOME_POSE, Arm, arm_slice
from kinema.sim.simulation import FINGER_TRAVEL_M, AlohaSim

PAD_INNER_GAP_M = 0.001
"""Distance of each pad's inner face from the gripper centre line when fully closed."""


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    quaternion = np.empty(4)
    mujoco.mju_mat2Quat(quaternion, rotation.reshape(-1))
    return quaternion


def hold_in_gripper(
    sim: AlohaSim,
    arm: Arm,
    body: str,
    half_width_m: float,
    lift_m: float = 0.0,
    body_rotation: np.ndarray | None = None,
) -> None:
    """Put ``body`` between the finger pads of ``arm`` (that arm at home, leaned back by ``lift_m``
    rad at the shoulder; the other arm as it is) and close the pads on it with 1 mm of
    penetration, so both pads touch it.

    ``half_width_m`` is the object's half width along the closing direction; ``body_rotation``
    maps the gripper frame to the body frame (identity when None)."""
    pose = sim.joint_state()
    pose[arm_slice(arm)] = HOME_POSE[arm_slice(arm)]
    pose[arm_slice(arm).start + 1] -= lift_m
    contact_opening = (half_width_m - PAD_INNER_GAP_M - 0.001) / FINGER_TRAVEL_M
    pose[arm_slice(arm).start + 6] = contact_opening
    sim.set_arm_pose(pose)
    site = sim.data.site(f"{arm}/tcp")
    gripper_rotation = site.xmat.reshape(3, 3)
    rotation = gripper_rotation if body_rotation is None else gripper_rotation @ body_rotation
    sim.set_free_body_pose(body, site.xpos.copy(), rotation_to_quaternion(rotation))
    sim.forward()


def decode(path) -> list[np.ndarray]:
    """All frames of an MP4 as RGB arrays."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
