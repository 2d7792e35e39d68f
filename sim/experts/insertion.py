"""Scripted expert for Insertion: both arms pick up their object, then the peg goes in mid-air.

The right gripper grasps the peg from above near its outer (+x) end, the left gripper the socket
near its outer (−x) end, at the same time. Both lift. When the meeting motion starts, the expert
reads where each object actually sits in its gripper (true poses from the simulator) and aims
the grippers so that the socket's axis is level along x at the meeting point and the peg lies on
that axis, first outside the opening, then pushed in until its tip touches the pin.

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> from kinema.sim.experts import run_expert_episode
    >>> env = gym.make("kinema/Insertion-v0").unwrapped
    >>> run_expert_episode(env, "Insertion", seed=0).success
    True
"""

import mujoco
import numpy as np

from kinema.controllers.kinematics import Pose
from kinema.sim.experts.base import Expert
from kinema.sim.experts.plan import EndEffectorPlan, Keyframe
from kinema.sim.simulation import AlohaSim

PEG_HALF_LENGTH_M = 0.06
SOCKET_HALF_LENGTH_M = 0.05
PIN_HALF_THICKNESS_M = 0.004
_PEG_GRASP_OFFSET_M = 0.03  # from the peg centre toward +x
_SOCKET_GRASP_OFFSET_M = 0.03  # from the socket centre toward −x
_PAD_CLEARANCE_M = 0.032  # TCP height above the table when grasping a flat object


def _world_pose(sim: AlohaSim, body: str) -> Pose:
    rotation = np.empty(9)
    mujoco.mju_quat2Mat(rotation, sim.body_quaternion(body))
    return Pose(sim.body_position(body), rotation.reshape(3, 3))


def _tcp_pose(sim: AlohaSim, arm: str) -> Pose:
    site = sim.data.site(f"{arm}/tcp")
    return Pose(site.xpos.copy(), site.xmat.reshape(3, 3).copy())


def _gripper_target(object_target: Pose, object_in_gripper: Pose) -> Pose:
    """The TCP pose that puts the held object at ``object_target``: T_obj* · T_obj_in_tcp⁻¹."""
    inverse_rotation = object_in_gripper.rotation.T
    return Pose(
        object_target.position
        - object_target.rotation @ inverse_rotation @ (object_in_gripper.position),
        object_target.rotation @ inverse_rotation,
    )


class InsertionExpert(Expert):
    """Pick peg and socket together, meet, insert (see module docstring)."""

    def extend(self, sim: AlohaSim, plan: EndEffectorPlan) -> bool:
        if not self.take_all_subtasks():
            return False
        peg = sim.body_position("peg")
        socket = sim.body_position("socket")
        peg_grasp = np.array([peg[0] + _PEG_GRASP_OFFSET_M, peg[1], _PAD_CLEARANCE_M])
        socket_grasp = np.array(
            [socket[0] - _SOCKET_GRASP_OFFSET_M, socket[1], socket[2] + 0.022 - 0.012]
        )
        lift_m = self.rng.uniform(0.12, 0.16)
        right_picks = self.pick_from_above("right", peg_grasp, 0.0, lift_m)
        left_picks = self.pick_from_above("left", socket_grasp, 0.0, lift_m)
        for right, left in zip(right_picks, left_picks, strict=True):
            plan.append(
                Keyframe(
                    max(right.duration_s, left.duration_s),
                    left=left.left,
                    right=right.right,
                    left_opening=left.left_opening,
                    right_opening=right.right_opening,
                )
            )
        meet = np.array(
            [
                self.rng.uniform(-0.04, 0.0),
                self.rng.uniform(-0.04, 0.04),
                self.rng.uniform(0.2, 0.26),
            ]
        )
        outside = SOCKET_HALF_LENGTH_M + PEG_HALF_LENGTH_M + self.rng.uniform(0.02, 0.04)
        inserted = PIN_HALF_THICKNESS_M + PEG_HALF_LENGTH_M - 0.003

        def holding(arm: str, body: str, axis_offset_m: float) -> Pose:
            """TCP target that puts ``body`` on the socket axis, ``axis_offset_m`` along +x."""
            in_gripper = _world_pose(sim, body).relative_to(_tcp_pose(sim, arm))
            target = Pose(meet + np.array([axis_offset_m, 0.0, 0.0]), np.eye(3))
            return _gripper_target(target, in_gripper)

        plan.append(
            Keyframe(
                self.duration(1.0),
                left=lambda: holding("left", "socket", 0.0),
                right=lambda: holding("right", "peg", outside),
            )
        )
        plan.append(Keyframe(self.duration(0.3)))
        plan.append(Keyframe(self.duration(0.8), right=lambda: holding("right", "peg", inserted)))
        return True
