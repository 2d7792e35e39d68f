"""The physics of the scene in ALOHA terms: 14-value joint state and actions, contacts, poses.

``AlohaSim`` wraps an ``MjModel``/``MjData`` pair. It converts between the 14-vector convention
of ``kinema.aloha`` (radians, gripper 0 = closed … 1 = open) and the simulator's joints and
position servos, advances the physics by whole control periods, and answers the questions tasks
ask of the simulator state: which geoms touch, where a body is, whether a gripper holds something.

Gripper mapping: each finger slides ``FINGER_TRAVEL_M`` metres from closed to open, so a gripper
opening g ∈ [0, 1] is a finger position q = g · FINGER_TRAVEL_M on both fingers.

Timing: the physics step is 2 ms; one control step (50 Hz) is ``PHYSICS_STEPS_PER_CONTROL`` = 10
physics steps.

Example:
    >>> from kinema.sim.model import build_model
    >>> sim = AlohaSim(build_model(""))
    >>> sim.reset()
    >>> sim.step(sim.joint_state())  # hold the home pose for one 20 ms control step
    >>> sim.joint_state().shape
    (14,)
"""

from collections.abc import Iterable
from dataclasses import dataclass

import mujoco
import numpy as np

from kinema.aloha import ACTION_DIM, ARM_JOINTS, ARMS, HOME_POSE, Arm, arm_slice
from kinema.sim.model import FINGER_JOINTS, arm_prefix

FINGER_TRAVEL_M = 0.04
"""Finger travel from closed to open, per finger, in metres (the finger joints' range)."""

CONTROL_DT_S = 0.02
PHYSICS_STEPS_PER_CONTROL = 10


class ActionError(ValueError):
    """An action that cannot be applied: wrong shape or non-finite values."""


@dataclass(frozen=True)
class _ArmIndex:
    """Addresses of one arm's joints, servos and finger pads in the model."""

    joint_qpos: np.ndarray  # (6,) qpos addresses of the arm joints
    joint_dof: np.ndarray  # (6,) dof addresses of the arm joints
    finger_qpos: np.ndarray  # (2,) qpos addresses of the finger slides
    finger_dof: np.ndarray  # (2,)
    joint_actuators: np.ndarray  # (6,)
    finger_actuators: np.ndarray  # (2,)
    pad_geoms: tuple[int, int]  # left pad, right pad


def _arm_index(model: mujoco.MjModel, arm: Arm) -> _ArmIndex:
    p = arm_prefix(arm)
    joints = [model.joint(p + j) for j in ARM_JOINTS]
    fingers = [model.joint(p + f) for f in FINGER_JOINTS]
    return _ArmIndex(
        joint_qpos=np.array([j.qposadr[0] for j in joints]),
        joint_dof=np.array([j.dofadr[0] for j in joints]),
        finger_qpos=np.array([f.qposadr[0] for f in fingers]),
        finger_dof=np.array([f.dofadr[0] for f in fingers]),
        joint_actuators=np.array([model.actuator(p + j).id for j in ARM_JOINTS]),
        finger_actuators=np.array([model.actuator(p + f).id for f in FINGER_JOINTS]),
        pad_geoms=(model.geom(p + "left_pad").id, model.geom(p + "right_pad").id),
    )


def validate_action(action: np.ndarray) -> np.ndarray:
    """Return ``action`` as a float64 (14,) array, or raise ``ActionError`` saying what is wrong."""
    array = np.asarray(action, dtype=np.float64)
    if array.shape != (ACTION_DIM,):
        raise ActionError(
            f"action must have shape ({ACTION_DIM},): per arm, left first, 6 joint angles in rad "
            f"and the gripper opening in [0, 1]. Got shape {array.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ActionError(f"action has non-finite values at indices {bad.tolist()}: {array[bad]}")
    return array


class AlohaSim:
    """MuJoCo physics of the bimanual scene, spoken in the 14-value ALOHA convention."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        self._arms = {arm: _arm_index(model, arm) for arm in ARMS}
        self.table_geom = model.geom("table").id

    # -- joint state and actions -------------------------------------------------------------

    def reset(self, arm_pose: np.ndarray = HOME_POSE) -> None:
        """Reset all physics state and put both arms at ``arm_pose`` (14-vector), at rest."""
        mujoco.mj_resetData(self.model, self.data)
        self.set_arm_pose(arm_pose)

    def set_arm_pose(self, arm_pose: np.ndarray) -> None:
        """Place both arms at ``arm_pose`` (14-vector) with zero velocity and servos holding it."""
        pose = validate_action(arm_pose)
        for arm, index in self._arms.items():
            values = pose[arm_slice(arm)]
            self.data.qpos[index.joint_qpos] = values[:6]
            self.data.qpos[index.finger_qpos] = values[6] * FINGER_TRAVEL_M
            self.data.qvel[index.joint_dof] = 0.0
            self.data.qvel[index.finger_dof] = 0.0
        self._write_controls(pose)
        mujoco.mj_forward(self.model, self.data)

    def joint_state(self) -> np.ndarray:
        """Current 14-vector: joint angles (rad) and gripper openings (0..1), left arm first."""
        state = np.empty(ACTION_DIM)
        for arm, index in self._arms.items():
            part = state[arm_slice(arm)]
            part[:6] = self.data.qpos[index.joint_qpos]
            part[6] = self.data.qpos[index.finger_qpos].mean() / FINGER_TRAVEL_M
        return state

    def joint_velocity(self) -> np.ndarray:
        """Current 14-vector of velocities: rad/s for joints, opening per second for grippers."""
        velocity = np.empty(ACTION_DIM)
        for arm, index in self._arms.items():
            part = velocity[arm_slice(arm)]
            part[:6] = self.data.qvel[index.joint_dof]
            part[6] = self.data.qvel[index.finger_dof].mean() / FINGER_TRAVEL_M
        return velocity

    def _write_controls(self, action: np.ndarray) -> None:
        for arm, index in self._arms.items():
            values = action[arm_slice(arm)]
            self.data.ctrl[index.joint_actuators] = values[:6]
            self.data.ctrl[index.finger_actuators] = values[6] * FINGER_TRAVEL_M

    def step(self, action: np.ndarray, physics_steps: int = PHYSICS_STEPS_PER_CONTROL) -> None:
        """Hold ``action`` (14 joint/gripper targets) as the servo setpoints for one control step.

        Targets beyond the joint limits are clipped by the servos' control ranges.

        Raises:
            ActionError: if the action is not a finite (14,) vector.
        """
        self._write_controls(validate_action(action))
        mujoco.mj_step(self.model, self.data, nstep=physics_steps)

    def step_ticks(self, commands: np.ndarray) -> None:
        """Hold each row of ``commands`` (k × 14 targets) for one physics step (2 ms) in turn:
        how a 500 Hz controller drives the servos.

        Raises:
            ActionError: if a row is not a finite (14,) vector.
        """
        rows = np.asarray(commands, dtype=np.float64)
        if rows.ndim != 2:
            raise ActionError(f"commands must have shape (k, {ACTION_DIM}). Got {rows.shape}.")
        for row in rows:
            self._write_controls(validate_action(row))
            mujoco.mj_step(self.model, self.data)

    # -- contacts ----------------------------------------------------------------------------

    def contact_pairs(self) -> set[tuple[int, int]]:
        """Geom id pairs (smaller id first) in contact now."""
        n = self.data.ncon
        first = self.data.contact.geom1[:n]
        second = self.data.contact.geom2[:n]
        return set(
            zip(np.minimum(first, second).tolist(), np.maximum(first, second).tolist(), strict=True)
        )

    def touching(self, geoms_a: Iterable[int], geoms_b: Iterable[int]) -> bool:
        """True if any geom of ``geoms_a`` is in contact with any geom of ``geoms_b``."""
        pairs = self.contact_pairs()
        return any((min(a, b), max(a, b)) in pairs for a in geoms_a for b in geoms_b)

    def pad_geoms(self, arm: Arm) -> tuple[int, int]:
        """Geom ids of the arm's two finger pads."""
        return self._arms[arm].pad_geoms

    def gripper_touches(self, arm: Arm, geoms: Iterable[int]) -> bool:
        """True if either finger pad of ``arm`` touches one of ``geoms``."""
        return self.touching(self.pad_geoms(arm), geoms)

    def touches_table(self, geoms: Iterable[int]) -> bool:
        """True if one of ``geoms`` touches the table top."""
        return self.touching([self.table_geom], geoms)

    # -- bodies ------------------------------------------------------------------------------

    def body_geoms(self, body: str) -> list[int]:
        """Ids of the geoms attached to the named body."""
        body_id = self.model.body(body).id
        return np.flatnonzero(self.model.geom_bodyid == body_id).tolist()

    def body_position(self, body: str) -> np.ndarray:
        """World position of the named body's frame, in metres."""
        return self.data.body(body).xpos.copy()

    def body_quaternion(self, body: str) -> np.ndarray:
        """World orientation of the named body as a unit quaternion (w, x, y, z)."""
        return self.data.body(body).xquat.copy()

    def set_free_body_pose(
        self, body: str, position: np.ndarray, quaternion: np.ndarray = (1.0, 0.0, 0.0, 0.0)
    ) -> None:
        """Place a body that has a free joint at ``position`` (m) / ``quaternion`` (w, x, y, z),
        at rest. Call ``forward()`` before reading derived quantities."""
        joint = self.model.body(body).jntadr[0]
        if joint < 0 or self.model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"set_free_body_pose: body {body!r} has no free joint")
        qpos = self.model.jnt_qposadr[joint]
        dof = self.model.jnt_dofadr[joint]
        self.data.qpos[qpos : qpos + 3] = position
        self.data.qpos[qpos + 3 : qpos + 7] = np.asarray(quaternion) / np.linalg.norm(quaternion)
        self.data.qvel[dof : dof + 6] = 0.0

    def set_mocap_position(self, body: str, position: np.ndarray) -> None:
        """Move a fixed (mocap) body, such as a bin, to ``position`` in metres."""
        mocap = self.model.body(body).mocapid[0]
        if mocap < 0:
            raise ValueError(f"set_mocap_position: body {body!r} is not a mocap body")
        self.data.mocap_pos[mocap] = position

    def forward(self) -> None:
        """Recompute positions and contacts from the current state without advancing time."""
        mujoco.mj_forward(self.model, self.data)
