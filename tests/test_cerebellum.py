"""The look-ahead cerebellum: WBC targets a horizon ahead, MPC commands within the limits now."""

import numpy as np

from kinema.aloha import ACTION_HIGH, ACTION_LOW, HOME_POSE
from kinema.controllers.cerebellum import EndEffectorCerebellum, JointCerebellum
from kinema.controllers.kinematics import Pose
from kinema.sim.experts.base import down_rotation
from kinema.sim.model import build_model


def drive(cerebellum, left, right, openings, ticks):
    commands = []
    for _ in range(ticks):
        commands.append(cerebellum.tick(left, right, openings))
    return commands


def test_commands_reach_the_targets_and_respect_every_limit():
    cerebellum = EndEffectorCerebellum(build_model(""))
    cerebellum.reset(HOME_POSE)
    left = Pose(np.array([-0.15, -0.05, 0.1]), down_rotation("left", 0.2))
    right = Pose(np.array([0.1, 0.05, 0.06]), down_rotation("right", -0.3))
    commands = drive(cerebellum, left, right, (0.0, 0.5), 1500)
    positions = np.array([c.position for c in commands])
    velocities = np.array([c.velocity for c in commands])
    mpc = cerebellum.config.mpc
    assert np.all(positions >= ACTION_LOW - 1e-9) and np.all(positions <= ACTION_HIGH + 1e-9)
    assert np.all(np.abs(velocities) <= np.array(mpc.max_velocity_rad_s) + 1e-6)
    accelerations = np.diff(velocities, axis=0) / mpc.tick_dt_s
    assert np.all(np.abs(accelerations) <= np.array(mpc.max_acceleration_rad_s2) + 1e-4)
    # After the motion, the commanded configuration puts both grippers on their targets.
    kinematics = cerebellum.kinematics
    kinematics.configure(positions[-1])
    for site, target in (("left/tcp", left), ("right/tcp", right)):
        assert np.linalg.norm(kinematics.frame_pose(site).position - target.position) < 2e-3
    np.testing.assert_allclose(positions[-1, [6, 13]], [0.0, 0.5], atol=1e-3)


def test_the_motion_starts_only_after_the_look_ahead_fills():
    cerebellum = EndEffectorCerebellum(build_model(""))
    cerebellum.reset(HOME_POSE)
    _, right = cerebellum.lookahead_poses()
    moved = Pose(right.position + np.array([0.0, 0.0, -0.1]), right.rotation)
    left, _ = cerebellum.lookahead_poses()
    commands = drive(cerebellum, left, moved, (1.0, 1.0), 100)
    # The MPC sees the new reference at its horizon's end and starts easing in, smoothly: the
    # first commands barely move while the look-ahead configuration already has.
    assert np.abs(commands[0].position - HOME_POSE).max() < 1e-4
    assert np.abs(cerebellum.lookahead_configuration - HOME_POSE).max() > 0.05


def test_joint_cerebellum_passes_feasible_references_through_and_holds_the_limits():
    model = build_model("")
    cerebellum = JointCerebellum(model)
    cerebellum.reset(HOME_POSE)
    target = HOME_POSE.copy()
    target[[1, 8]] += 0.4  # both shoulders lean forward
    target[6] = 0.2
    commands = [cerebellum.tick(np.tile(target, (20, 1))) for _ in range(600)]
    np.testing.assert_allclose(commands[-1].position, target, atol=1e-4)
    # The MPC's command went out unchanged: nothing bound, so the WBC passed it through.
    assert cerebellum.wbc.fallback_count == 0
    beyond = np.array(ACTION_HIGH, dtype=float) + 1.0
    positions = np.array([cerebellum.tick(np.tile(beyond, (20, 1))).position for _ in range(600)])
    assert np.all(positions <= ACTION_HIGH + 1e-9) and np.all(positions >= ACTION_LOW - 1e-9)


def test_joint_cerebellum_stops_a_reference_that_drives_the_arms_together():
    model = build_model("")
    cerebellum = JointCerebellum(model)
    cerebellum.reset(HOME_POSE)
    # Both arms stretched toward the table centre at the same height: the grippers would meet.
    reach = np.array([0.0, 0.6, -0.5, 0.0, -0.1, 0.0, 1.0] * 2)
    limit = cerebellum.wbc.limits[-1]
    closest = np.inf
    for _ in range(800):
        command = cerebellum.tick(np.tile(reach, (20, 1)))
        cerebellum.wbc.kinematics.configure(command.position)
        closest = min(
            [closest]
            + [
                d
                for first, second, d, _ in limit.distances(cerebellum.wbc.kinematics)
                if model.geom_bodyid[second] != 0
            ]
        )
    assert closest >= cerebellum.config.arm_clearance_m - 1e-3
    cerebellum.wbc.kinematics.configure(reach)
    unguarded = min(
        d
        for _, second, d, _ in limit.distances(cerebellum.wbc.kinematics)
        if model.geom_bodyid[second] != 0
    )
    assert unguarded < 0.0  # the reference itself would have collided
