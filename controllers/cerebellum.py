"""The cerebellum: what a policy or planner wants → smooth, limit-respecting joint commands.

``JointCerebellum`` takes joint-space references (action chunks): MPC, then the WBC as a safety
pass (see its docstring). ``EndEffectorCerebellum`` takes gripper poses, as follows.


Per 2 ms tick (500 Hz):

1. **WBC, a horizon ahead.** The caller gives the gripper poses and openings wanted at time
   t + T, T = N·h the MPC's horizon (20 × 0.02 s = 0.4 s). One WBC step (gripper positions and
   openings first, gripper orientations second, posture third; joint position and velocity
   limits, arm–arm and arm–table collision avoidance) moves a look-ahead configuration toward
   them; it is appended to a buffer that holds the planned joint trajectory from now to t + T,
   one sample per tick.
2. **MPC, now.** The MPC reads that buffer at t + k·h (k = 1…N) as its reference and returns the
   command for the next tick under position, velocity and acceleration limits, from the state it
   commanded last (position, velocity, acceleration).

So the WBC decides *where* (priorities, collisions) and the MPC decides *how fast* (smooth, within
the servo limits), and the MPC sees the motion coming a full horizon early. The price is that
targets must be known T in advance, which a planner of waypoints (the scripted experts) has.

Example:
    >>> from kinema.sim.model import build_model
    >>> from kinema.aloha import ARMS, GRIPPER_INDICES, HOME_POSE
    >>> cerebellum = EndEffectorCerebellum(build_model(""))
    >>> cerebellum.reset(HOME_POSE)
    >>> left, right = cerebellum.lookahead_poses()
    >>> command = cerebellum.tick(left, right, (1.0, 1.0))
    >>> command.position.shape
    (14,)
"""

from dataclasses import dataclass, field

import mujoco
import numpy as np

from kinema.aloha import ARMS, GRIPPER_INDICES, HOME_POSE
from kinema.controllers.kinematics import Kinematics, Pose, tcp_site
from kinema.controllers.limits import (
    CollisionAvoidanceLimit,
    Limit,
    PositionLimit,
    VelocityLimit,
    aloha_collision_geoms,
)
from kinema.controllers.mpc import JointMpc, MpcConfig, MpcState
from kinema.controllers.tasks import FrameTask, GripperTask, PostureTask
from kinema.controllers.wbc import WbcConfig, WholeBodyController
from kinema.types import JointCommand

_TCP_SITES = tuple(tcp_site(arm) for arm in ARMS)


@dataclass(frozen=True)
class CerebellumConfig:
    """Settings of ``EndEffectorCerebellum``.

    Attributes:
        mpc: the MPC (its tick_dt_s is the controller period, its horizon the look-ahead).
        position_cost: frame-task cost per metre of gripper position error.
        orientation_cost: frame-task cost per radian of gripper orientation error.
        frame_gain: fraction of the frame error removed per tick.
        posture_cost: cost per radian of the second-level pull toward the home pose.
        arm_clearance_m: smallest distance kept between the two arms' links.
        table_clearance_m: smallest distance kept between the arms' links and the table.
    """

    mpc: MpcConfig = field(default_factory=MpcConfig)
    position_cost: float = 1.0
    orientation_cost: float = 0.3
    frame_gain: float = 0.2
    posture_cost: float = 0.05
    arm_clearance_m: float = 0.01
    table_clearance_m: float = 0.002


def aloha_limits(model: mujoco.MjModel, config: CerebellumConfig) -> list[Limit]:
    """The limits every cerebellum enforces: joint positions, velocities (the MPC's), arm–arm and
    arm–table clearances."""
    left = aloha_collision_geoms(model, "left")
    right = aloha_collision_geoms(model, "right")
    return [
        PositionLimit(),
        VelocityLimit(np.array(config.mpc.max_velocity_rad_s)),
        CollisionAvoidanceLimit(
            model,
            [(left, right), (left + right, [model.geom("table").id])],
            [config.arm_clearance_m, config.table_clearance_m],
        ),
    ]


class EndEffectorCerebellum:
    """Gripper pose targets a horizon ahead → smooth joint commands now (see module docstring)."""

    def __init__(self, model: mujoco.MjModel, config: CerebellumConfig = CerebellumConfig()):
        self.config = config
        self.kinematics = Kinematics(model)
        # Gripper positions outrank gripper orientations: where a pose is out of reach the
        # gripper tilts rather than stopping short of the place it must be.
        self.position_tasks = [
            FrameTask(site, config.position_cost, 0.0, config.frame_gain) for site in _TCP_SITES
        ]
        self.orientation_tasks = [
            FrameTask(site, 0.0, config.orientation_cost, config.frame_gain) for site in _TCP_SITES
        ]
        self.gripper_task = GripperTask(gain=config.frame_gain)
        self.wbc = WholeBodyController(
            self.kinematics,
            [
                [*self.position_tasks, self.gripper_task],
                self.orientation_tasks,
                [PostureTask(HOME_POSE, config.posture_cost)],
            ],
            aloha_limits(model, config),
            WbcConfig(dt_s=config.mpc.tick_dt_s),
        )
        self.mpc = JointMpc(config.mpc)
        self._ticks_per_step = round(config.mpc.horizon_dt_s / config.mpc.tick_dt_s)
        self._plan = np.empty((config.mpc.horizon_steps * self._ticks_per_step + 1, len(HOME_POSE)))
        self.state = MpcState.at_rest(HOME_POSE)

    def reset(self, configuration: np.ndarray) -> None:
        """Start at rest at ``configuration`` (14,), with the look-ahead plan holding it."""
        self._plan[:] = configuration
        self._head = 0
        self.state = MpcState.at_rest(configuration)

    @property
    def lookahead_configuration(self) -> np.ndarray:
        """The planned configuration one horizon ahead (the newest buffer entry)."""
        return self._plan[(self._head - 1) % len(self._plan)]

    def lookahead_poses(self) -> tuple[Pose, Pose]:
        """Gripper poses (left, right) of the look-ahead configuration."""
        self.kinematics.configure(self.lookahead_configuration)
        left, right = (self.kinematics.frame_pose(site) for site in _TCP_SITES)
        return left, right

    def tick(self, left: Pose, right: Pose, gripper_openings: tuple[float, float]) -> JointCommand:
        """Plan one tick toward the targets wanted a horizon from now; command the next tick."""
        for index, target in enumerate((left, right)):
            self.position_tasks[index].set_target(target)
            self.orientation_tasks[index].set_target(target)
        self.gripper_task.set_target(gripper_openings)
        planned = self.wbc.step(self.lookahead_configuration).configuration
        self._plan[self._head] = planned
        self._head = (self._head + 1) % len(self._plan)
        steps = np.arange(1, self.config.mpc.horizon_steps + 1) * self._ticks_per_step
        reference = self._plan[(self._head + steps) % len(self._plan)]
        result = self.mpc.step(self.state, reference)
        self.state = result.state
        return result.command


class JointCerebellum:
    """Joint-space references (action chunks) → smooth, safe joint commands at 500 Hz.

    Per tick, the MPC follows the reference (positions at t + k·h, e.g. from ``sample_chunk``)
    under position, velocity and acceleration limits; then the WBC passes its command through
    (a posture task on the command and the gripper task, gain 1, at top priority) with the joint
    limits and the arm–arm and arm–table clearances enforced. Where no limit binds, the command is
    the MPC's exactly; where a clearance binds, the arms stop short and the MPC continues from
    where they are.

    Example:
        >>> from kinema.sim.model import build_model
        >>> from kinema.aloha import ARMS, GRIPPER_INDICES, HOME_POSE
        >>> import numpy as np
        >>> cerebellum = JointCerebellum(build_model(""))
        >>> cerebellum.reset(HOME_POSE)
        >>> cerebellum.tick(np.tile(HOME_POSE, (20, 1))).position.shape
        (14,)
    """

    def __init__(self, model: mujoco.MjModel, config: CerebellumConfig = CerebellumConfig()):
        self.config = config
        self.mpc = JointMpc(config.mpc)
        self.pass_through = PostureTask(HOME_POSE, cost=1.0, gain=1.0)
        self.gripper_task = GripperTask(cost=1.0, gain=1.0)
        self.wbc = WholeBodyController(
            Kinematics(model),
            [[self.pass_through, self.gripper_task]],
            aloha_limits(model, config),
            # The two tasks cover all 14 entries, so the QP is strictly convex undamped, and an
            # unconstrained command passes through exactly.
            WbcConfig(dt_s=config.mpc.tick_dt_s, damping=0.0),
        )
        self.state = MpcState.at_rest(HOME_POSE)

    def reset(self, configuration: np.ndarray) -> None:
        """Start at rest at ``configuration`` (14,)."""
        self.state = MpcState.at_rest(configuration)

    def tick(self, reference: np.ndarray) -> JointCommand:
        """The command for the next tick toward ``reference`` (N × 14 positions at t + k·h)."""
        planned = self.mpc.step(self.state, reference).state
        self.pass_through.set_target(planned.position)
        self.gripper_task.set_target(np.clip(planned.position[GRIPPER_INDICES], 0.0, 1.0))
        safe = self.wbc.step(self.state.position)
        if np.allclose(safe.configuration, planned.position, rtol=0.0, atol=1e-9):
            self.state = planned
        else:  # a limit held the arms back: continue from where they are
            tick = self.config.mpc.tick_dt_s
            acceleration = (safe.velocity - self.state.velocity) / tick
            self.state = MpcState(safe.configuration, safe.velocity, acceleration)
        return JointCommand(self.state.position.copy(), self.state.velocity.copy())
