"""Scripted expert for TransferCube: the right arm picks the cube, the left arm takes it over.

The right gripper grasps the cube from above and lifts it to a meeting point above the middle of
the table. The left gripper comes in horizontally from its own side with its fingers closing
along world z, so its pads take the cube's top and bottom faces while the right pads hold the
side faces; it closes, the right gripper opens and withdraws upward.

Example:
    >>> import gymnasium as gym, numpy as np, kinema.sim
    >>> from kinema.sim.experts import run_expert_episode
    >>> env = gym.make("kinema/TransferCube-v0").unwrapped
    >>> run_expert_episode(env, "TransferCube", seed=0).success
    True
"""

import numpy as np

from kinema.controllers.kinematics import Pose
from kinema.sim.experts.base import (
    CLOSED,
    GRASP_ABOVE_CENTRE_M,
    OPEN,
    Expert,
    arm_keyframe,
    down_rotation,
)
from kinema.sim.experts.plan import EndEffectorPlan, Keyframe
from kinema.sim.simulation import AlohaSim

# Left gripper pointing +x (toward the table centre) with its fingers closing along world z.
_LEFT_SIDEWAYS = np.column_stack([(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)])
_HANDOVER_OPENING = 0.65  # the left gripper's opening while it slides in (clears both faces)
_LEFT_TCP_BEHIND_CENTRE_M = 0.012  # how far the left TCP stops short of the cube centre


class TransferCubeExpert(Expert):
    """Pick with the right arm, hand over to the left (see module docstring)."""

    def extend(self, sim: AlohaSim, plan: EndEffectorPlan) -> bool:
        if not self.take_all_subtasks():
            return False
        cube = sim.body_position("cube")
        grasp = cube + np.array([0.0, 0.0, GRASP_ABOVE_CENTRE_M])
        meet = np.array(
            [self.rng.uniform(-0.02, 0.04), self.rng.uniform(-0.05, 0.05), 0.0]
        ) + np.array([0.0, 0.0, self.rng.uniform(0.2, 0.26)])
        for keyframe in self.pick_from_above("right", grasp, 0.0, grasp[2] + 0.08):
            plan.append(keyframe)
        right_down = down_rotation("right", 0.0)
        plan.append(arm_keyframe("right", self.duration(0.8), Pose(meet, right_down)))
        cube_at_meet = meet - np.array([0.0, 0.0, GRASP_ABOVE_CENTRE_M])
        left_grasp = cube_at_meet - np.array([_LEFT_TCP_BEHIND_CENTRE_M, 0.0, 0.0])
        left_ready = left_grasp - np.array([self.rng.uniform(0.08, 0.12), 0.0, 0.0])
        plan.append(
            Keyframe(
                self.duration(0.5),
                left=Pose(left_ready + self.jitter(), _LEFT_SIDEWAYS),
                left_opening=_HANDOVER_OPENING,
            )
        )
        plan.append(arm_keyframe("left", self.duration(0.4), Pose(left_ready, _LEFT_SIDEWAYS)))
        plan.append(arm_keyframe("left", self.duration(0.5), Pose(left_grasp, _LEFT_SIDEWAYS)))
        plan.append(arm_keyframe("left", self.duration(0.35), None, CLOSED))
        plan.append(arm_keyframe("right", self.duration(0.3), None, OPEN))
        plan.append(
            arm_keyframe(
                "right", self.duration(0.5), Pose(meet + np.array([0.0, 0.0, 0.08]), right_down)
            )
        )
        return True
