"""Scripted expert for SortCubes: one pick-and-place into the matching bin per subtask.

For each ``put_in`` subtask, in the episode's order, the arm named by the subtask grasps the
cube from above (fingers turned to the cube's yaw), lifts it clear of the bin walls, carries it
over its bin, lowers it into the bin and lets go, then rises; meanwhile the other arm returns to
its resting pose. Each subtask is planned when the previous one has been handed to the
controller, from the cube's and bin's poses at that moment.

The arm that is not working rests at its starting position with the gripper pointing down, not
in the starting pose (pointing forward, wrist angle -0.3 rad): from over a bin, turning the
gripper forward again crosses the wrist singularity (wrist angle 0, where forearm roll and wrist
rotate turn about one axis), and there the controller ended on the mirror solution, forearm roll
-π and wrist rotate +π, in 5 of 8 demonstrations (a twist a real arm's cables should not see, and
a second joint-space mode for the policy to learn).

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> from kinema.sim.experts import run_expert_episode
    >>> env = gym.make("kinema/SortCubes-v0").unwrapped
    >>> run_expert_episode(env, "SortCubes", seed=0).success
    True
"""

import numpy as np

from kinema.aloha import Arm
from kinema.controllers.kinematics import Pose
from kinema.sim.experts.base import (
    GRASP_ABOVE_CENTRE_M,
    OPEN,
    Expert,
    arm_keyframe,
    body_yaw,
    down_rotation,
    square_grasp_yaw,
)
from kinema.sim.experts.plan import EndEffectorPlan
from kinema.sim.simulation import AlohaSim
from kinema.sim.tasks.objects import BIN_WALL_HEIGHT_M

CARRY_HEIGHT_M = 0.14  # TCP height while carrying (cube bottom ≈ 0.1 m, above the bin walls)
RELEASE_ABOVE_RIM_M = 0.02  # cube bottom above the bin rim when the gripper opens


class SortCubesExpert(Expert):
    """Put each cube into its bin, one subtask after the other (see module docstring)."""

    def start(self, plan: EndEffectorPlan) -> None:
        super().start(plan)
        self.rest = {
            arm: Pose(pose.position, down_rotation(arm, 0.0)) for arm, pose in self.rest.items()
        }

    def extend(self, sim: AlohaSim, plan: EndEffectorPlan) -> bool:
        subtask = self.next_subtask()
        if subtask is None:
            return False
        color = subtask.object.removesuffix(" cube")
        arm: Arm = subtask.arm
        cube_body = self.task.cubes.slot(color)
        bin_position = sim.body_position(self.task.bins.slot(color))
        cube = sim.body_position(cube_body)
        yaw = square_grasp_yaw(body_yaw(sim, cube_body))
        grasp = cube + np.array([0.0, 0.0, GRASP_ABOVE_CENTRE_M])
        for keyframe in self.pick_from_above(arm, grasp, yaw, CARRY_HEIGHT_M):
            plan.append(keyframe)
        rotation = down_rotation(arm, 0.0)
        over_bin = np.array([*bin_position[:2], CARRY_HEIGHT_M])
        release_m = BIN_WALL_HEIGHT_M + RELEASE_ABOVE_RIM_M + 0.02 + GRASP_ABOVE_CENTRE_M
        plan.append(arm_keyframe(arm, self.duration(0.8), Pose(over_bin, rotation)))
        plan.append(
            arm_keyframe(
                arm, self.duration(0.35), Pose(np.array([*bin_position[:2], release_m]), rotation)
            )
        )
        plan.append(arm_keyframe(arm, self.duration(0.25), None, OPEN))
        plan.append(arm_keyframe(arm, self.duration(0.3), Pose(over_bin, rotation)))
        return True
