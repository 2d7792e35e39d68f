"""Leader-arm teleoperation: a person moves ALOHA's leader arms, the follower arms follow.

Every 50 Hz frame the leaders' 14 joint values are read over the Dynamixel bus
(``kinema.hardware.leader_arms``), clipped to the followers' joint limits, and held as the
reference of the joint cerebellum for the frame's ten 2 ms ticks: the MPC moves the followers
there within their velocity and acceleration limits (so a leader yanked faster than a follower
may move is followed at the follower's pace) and the safety pass keeps the arms off each other
and the table. The followers here are the simulated ones; the same source drives real
followers through the hardware layer. A person is in the loop, so the recorder paces the frames
at 50 Hz.

Example:
    with LeaderArms(ports, RobotCalibration.load(path)) as leaders:
        source = LeaderTeleop(leaders)
        observation, info = source.start(env, seed=0)
        commands = source.next_frame(observation)     # (10, 14)
"""

import numpy as np

from kinema.aloha import ACTION_HIGH, ACTION_LOW
from kinema.controllers.cerebellum import JointCerebellum
from kinema.datasets.teleop import TeleopSource
from kinema.hardware.leader_arms import LeaderArms
from kinema.sim.env import AlohaEnv
from kinema.sim.simulation import PHYSICS_STEPS_PER_CONTROL


class LeaderTeleop(TeleopSource):
    """Follower arms driven by the leader arms (see the module docstring)."""

    realtime = True

    def __init__(self, leaders: LeaderArms):
        self.leaders = leaders
        self.cerebellum: JointCerebellum | None = None

    def start(self, env: AlohaEnv, seed: int) -> tuple[dict, dict]:
        observation, info = env.reset(seed=seed)
        self.cerebellum = JointCerebellum(env.sim.model)
        self.cerebellum.reset(observation["observation.state"])
        return observation, info

    def next_frame(self, observation: dict) -> np.ndarray:
        if self.cerebellum is None:
            raise RuntimeError("LeaderTeleop.next_frame called before start()")
        target = np.clip(self.leaders.read(), ACTION_LOW, ACTION_HIGH)
        reference = np.tile(target, (self.cerebellum.config.mpc.horizon_steps, 1))
        return np.stack(
            [self.cerebellum.tick(reference).position for _ in range(PHYSICS_STEPS_PER_CONTROL)]
        )

    @property
    def finished(self) -> bool:
        """Never by itself: the episode runs to the task's frame limit."""
        return False

    def close(self) -> None:
        self.leaders.disconnect()
