"""Scripted expert for StackBlocks: build the tower one block at a time.

For each ``stack_on`` subtask the arm on the moved block's side grasps it from above (fingers
turned to its yaw), lifts it, carries it over the block it goes on, lowers it until it sits a
few millimetres above that block's top face (turned to that block's yaw, so the tower stays
square) and lets go. The place pose is read from the simulator when the carrying motion starts,
so each block lands where the block below really is.

Deliberate mistakes (``ExpertTiming.mistake_rate``): a first attempt goes wrong, half the time
in the grasp (the gripper comes down 30–45 mm beside the block, closes and lifts, then opens
again) and half the time in the release (the block is let go 25–40 mm off the tower's axis and
falls; the gripper rises slowly while it settles). Either way the subtask is then planned again
from where the block lies.

Example:
    >>> import gymnasium as gym, kinema.sim
    >>> from kinema.sim.experts import run_expert_episode
    >>> env = gym.make("kinema/StackBlocks-v0").unwrapped
    >>> run_expert_episode(env, "StackBlocks", seed=0).success
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
    as_mistake,
    body_yaw,
    down_rotation,
    horizontal_offset,
    square_grasp_yaw,
)
from kinema.sim.experts.plan import EndEffectorPlan
from kinema.sim.simulation import AlohaSim
from kinema.sim.tasks.stack_blocks import BLOCK_HALF_M

CARRY_CLEARANCE_M = 0.07  # the carried block's bottom above the tower's top while carrying
DROP_GAP_M = 0.004  # gap between the carried block and the one below when the gripper opens
MISSED_GRASP_OFFSET_M = (0.03, 0.045)  # a deliberately missed grasp: this far beside the block
MISPLACED_OFFSET_M = (0.025, 0.04)  # a deliberately bad release: this far off the tower's axis


class StackBlocksExpert(Expert):
    """Stack the blocks in the spoken order (see module docstring)."""

    makes_mistakes = True

    def extend(self, sim: AlohaSim, plan: EndEffectorPlan) -> bool:
        subtask = self.next_subtask()
        if subtask is None:
            return False
        arm: Arm = subtask.arm
        assert subtask.target is not None
        moved = self.task.blocks.slot(subtask.object.removesuffix(" block"))
        below = self.task.blocks.slot(subtask.target.removesuffix(" block"))
        block = sim.body_position(moved)
        base = sim.body_position(below)
        carry_m = base[2] + 3 * BLOCK_HALF_M + CARRY_CLEARANCE_M + GRASP_ABOVE_CENTRE_M
        grasp = block + np.array([0.0, 0.0, GRASP_ABOVE_CENTRE_M])
        yaw = square_grasp_yaw(body_yaw(sim, moved))
        mistake = self.first_attempt_goes_wrong()
        if mistake and self.rng.random() < 0.5:
            miss = grasp + horizontal_offset(self.rng, MISSED_GRASP_OFFSET_M)
            for keyframe in as_mistake(self.pick_from_above(arm, miss, yaw, carry_m)):
                plan.append(keyframe)
            plan.append(arm_keyframe(arm, self.duration(0.25), None, OPEN))
            self.retry_subtask()
            return True
        for keyframe in self.pick_from_above(arm, grasp, yaw, carry_m):
            plan.append(keyframe)
        off_axis = horizontal_offset(self.rng, MISPLACED_OFFSET_M) if mistake else np.zeros(3)

        def place(height_m: float) -> Pose:
            """TCP pose with the carried block centred ``height_m`` above the block below (off
            its axis by ``off_axis`` on a deliberately bad release)."""
            base_now = sim.body_position(below) + off_axis
            rotation = down_rotation(arm, square_grasp_yaw(body_yaw(sim, below)))
            return Pose(base_now + np.array([0.0, 0.0, height_m + GRASP_ABOVE_CENTRE_M]), rotation)

        release = [
            arm_keyframe(arm, self.duration(0.8), lambda: place(carry_m - base[2])),
            arm_keyframe(arm, self.duration(0.45), lambda: place(2 * BLOCK_HALF_M + DROP_GAP_M)),
            arm_keyframe(arm, self.duration(0.25), None, OPEN),
        ]
        for keyframe in as_mistake(release) if mistake else release:
            plan.append(keyframe)
        # after a bad release rise slowly: the block has settled before the retry reads its pose
        rise_s = self.duration(0.9 if mistake else 0.3)
        plan.append(arm_keyframe(arm, rise_s, lambda: place(carry_m - base[2])))
        if mistake:
            self.retry_subtask()
        return True
