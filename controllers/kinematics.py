"""Forward kinematics, frame poses and Jacobians of the ALOHA arms, read from the MuJoCo model.

Nothing here is derived by hand: poses come from ``mj_kinematics`` and Jacobians from
``mj_jacSite`` / ``mj_jacBody`` / ``mj_jac`` on the same model the simulator runs, so they cannot
drift from it. ``Kinematics`` owns its own ``MjData``: configuring it never disturbs a running
simulation.

Coordinates. A configuration is the 14-vector of ``kinema.aloha`` (left arm first; per arm six
joint angles in rad, then the gripper opening in [0, 1]). Jacobians have one column per entry
of that vector, so a joint velocity v (rad/s, gripper opening per second) maps to the frame's
twist by ``J @ v``. The gripper columns are zero for every frame but the fingers: opening a
gripper by one unit slides each finger ``FINGER_TRAVEL_M``; the tool centre point stays put.

A frame Jacobian is 6 × 14: rows 0–2 map v to the linear velocity of the frame origin (m/s),
rows 3–5 to the angular velocity (rad/s), both in the world frame.

Example:
    >>> from kinema.sim.model import build_model
    >>> from kinema.aloha import HOME_POSE
    >>> kin = Kinematics(build_model(""))
    >>> kin.configure(HOME_POSE)
    >>> kin.frame_pose("right/tcp").position.shape, kin.frame_jacobian("right/tcp").shape
    ((3,), (6, 14))
"""

import math
from dataclasses import dataclass
from typing import Literal

import mujoco
import numpy as np

from kinema.aloha import ACTION_DIM, ARM_JOINTS, ARMS, GRIPPER_INDICES, JOINT_INDICES, Arm
from kinema.sim.model import FINGER_JOINTS, arm_prefix
from kinema.sim.simulation import FINGER_TRAVEL_M, ActionError, validate_action

FrameKind = Literal["site", "body"]


class KinematicsError(ValueError):
    """A frame that does not exist, or a configuration of the wrong shape."""


@dataclass(frozen=True)
class Pose:
    """A rigid transform: ``position`` (3,) in metres and ``rotation`` (3, 3), both in world."""

    position: np.ndarray
    rotation: np.ndarray

    def inverse_apply(self, point: np.ndarray) -> np.ndarray:
        """Express a world ``point`` in this frame: Rᵀ (p − t)."""
        return self.rotation.T @ (point - self.position)

    def compose(self, other: "Pose") -> "Pose":
        """This pose followed by ``other`` expressed in this frame: (R₁R₂, R₁t₂ + t₁)."""
        return Pose(self.rotation @ other.position + self.position, self.rotation @ other.rotation)

    def relative_to(self, base: "Pose") -> "Pose":
        """This pose expressed in ``base``'s frame: (R_bᵀR, R_bᵀ(t − t_b))."""
        return Pose(base.inverse_apply(self.position), base.rotation.T @ self.rotation)


def rotation_log(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector ω (rad) with exp([ω]×) = ``rotation``: axis times angle, angle in [0, π]."""
    quaternion = np.empty(4)
    mujoco.mju_mat2Quat(quaternion, np.ascontiguousarray(rotation).ravel())
    w, x, y, z = quaternion.tolist()
    if w < 0.0:  # the same rotation, with the angle in [0, π]
        w, x, y, z = -w, -x, -y, -z
    sine = math.sqrt(x * x + y * y + z * z)  # sin(angle / 2)
    scale = 2.0 if sine < 1e-12 else 2.0 * math.atan2(sine, w) / sine
    return np.array([scale * x, scale * y, scale * z])


def rotation_exp(vector: np.ndarray) -> np.ndarray:
    """Rotation matrix of the rotation vector ``vector`` (axis times angle, rad)."""
    quaternion = np.empty(4)
    mujoco.mju_axisAngle2Quat(
        quaternion, vector / max(np.linalg.norm(vector), 1e-300), float(np.linalg.norm(vector))
    )
    matrix = np.empty(9)
    mujoco.mju_quat2Mat(matrix, quaternion)
    return matrix.reshape(3, 3)


def skew(vector: np.ndarray) -> np.ndarray:
    """The cross-product matrix [v]× with [v]× u = v × u."""
    x, y, z = vector
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


class Kinematics:
    """Poses and Jacobians of named frames of the ALOHA model at a chosen configuration."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        self.configuration = np.zeros(ACTION_DIM)
        self._jacobians: dict[tuple[str, FrameKind], np.ndarray] = {}
        joint_qpos, joint_dof, finger_qpos, finger_dof = [], [], [], []
        for arm in ARMS:
            p = arm_prefix(arm)
            joints = [model.joint(p + j) for j in ARM_JOINTS]
            joint_qpos += [j.qposadr[0] for j in joints]
            joint_dof += [j.dofadr[0] for j in joints]
            finger_qpos.append([model.joint(p + f).qposadr[0] for f in FINGER_JOINTS])
            finger_dof.append([model.joint(p + f).dofadr[0] for f in FINGER_JOINTS])
        # 14-vector → the arms' qpos entries: joints one to one, both fingers of a gripper at
        # opening · FINGER_TRAVEL_M.
        self._qpos_index = np.concatenate([joint_qpos, np.ravel(finger_qpos)])
        self._to_qpos = np.zeros((ACTION_DIM, len(self._qpos_index)))
        self._to_qpos[JOINT_INDICES, np.arange(len(joint_qpos))] = 1.0
        for arm, column in enumerate(GRIPPER_INDICES):
            start = len(joint_qpos) + 2 * arm
            self._to_qpos[column, start : start + 2] = FINGER_TRAVEL_M
        # Model velocities → 14-vector columns: J₁₄ = J_nv · M. An arm joint maps one to one;
        # both fingers slide FINGER_TRAVEL_M per unit of gripper opening.
        self._to_action = np.zeros((model.nv, ACTION_DIM))
        self._to_action[joint_dof, JOINT_INDICES] = 1.0
        for fingers, column in zip(finger_dof, GRIPPER_INDICES, strict=True):
            self._to_action[fingers, column] = FINGER_TRAVEL_M
        self._jacobian_buffer = np.zeros((6, model.nv))
        self._frame_ids: dict[tuple[str, FrameKind], int] = {}

    def configure(self, configuration: np.ndarray) -> None:
        """Set the 14-vector configuration and recompute every frame (objects keep their pose)."""
        q = np.array(configuration, dtype=np.float64)
        if q.shape != (ACTION_DIM,) or not np.isfinite(q).all():
            try:
                validate_action(q)  # raises, saying what is wrong
            except ActionError as error:
                raise KinematicsError(f"Kinematics.configure: {error}") from error
        self.configuration = q
        self.data.qpos[self._qpos_index] = q @ self._to_qpos
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        self._jacobians: dict[tuple[str, FrameKind], np.ndarray] = {}

    def _frame_id(self, name: str, kind: FrameKind) -> int:
        frame_id = self._frame_ids.get((name, kind))
        if frame_id is None:
            object_type = mujoco.mjtObj.mjOBJ_SITE if kind == "site" else mujoco.mjtObj.mjOBJ_BODY
            frame_id = mujoco.mj_name2id(self.model, object_type, name)
            if frame_id < 0:
                raise KinematicsError(f"Kinematics: the model has no {kind} named {name!r}")
            self._frame_ids[(name, kind)] = frame_id
        return frame_id

    def frame_pose(self, name: str, kind: FrameKind = "site") -> Pose:
        """World pose of a site (default) or body frame at the configured configuration."""
        frame_id = self._frame_id(name, kind)
        if kind == "site":
            return Pose(
                self.data.site_xpos[frame_id].copy(),
                self.data.site_xmat[frame_id].reshape(3, 3).copy(),
            )
        return Pose(self.data.xpos[frame_id].copy(), self.data.xmat[frame_id].reshape(3, 3).copy())

    def frame_jacobian(self, name: str, kind: FrameKind = "site") -> np.ndarray:
        """6 × 14 Jacobian of the frame: [linear; angular] velocity in world per unit of v.

        Computed once per configuration; the returned array is shared, do not modify it.
        """
        cached = self._jacobians.get((name, kind))
        if cached is not None:
            return cached
        frame_id = self._frame_id(name, kind)
        linear, angular = self._jacobian_buffer[:3], self._jacobian_buffer[3:]
        if kind == "site":
            mujoco.mj_jacSite(self.model, self.data, linear, angular, frame_id)
        else:
            mujoco.mj_jacBody(self.model, self.data, linear, angular, frame_id)
        jacobian = self._jacobian_buffer @ self._to_action
        self._jacobians[(name, kind)] = jacobian
        return jacobian

    def point_jacobian(self, point: np.ndarray, body_id: int) -> np.ndarray:
        """3 × 14 Jacobian of the world ``point`` (m) rigidly attached to body ``body_id``."""
        linear = self._jacobian_buffer[:3]
        mujoco.mj_jac(self.model, self.data, linear, None, point, body_id)
        return linear @ self._to_action


def tcp_site(arm: Arm) -> str:
    """Name of the tool-centre-point site of ``arm``: between the finger pads."""
    return f"{arm_prefix(arm)}tcp"
