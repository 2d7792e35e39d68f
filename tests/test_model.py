"""The MJCF scene: structure, kinematics against the ViperX 300 specification, collision bits."""

import mujoco
import numpy as np
import pytest

from kinema.aloha import ARM_JOINTS, ARMS, JOINT_LIMITS_RAD
from kinema.sim.model import ARM_BASE_X_M, build_model
from kinema.sim.rendering import ALOHA_CAMERAS, model_cameras


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_model("")


def test_cameras_are_named_as_on_aloha(model):
    assert sorted(model_cameras(model)) == sorted(ALOHA_CAMERAS)


@pytest.mark.parametrize("arm", ARMS)
def test_joint_limits_match_the_viperx_specification(model, arm):
    for joint in ARM_JOINTS:
        low, high = model.joint(f"{arm}/{joint}").range
        assert (low, high) == pytest.approx(JOINT_LIMITS_RAD[joint])
        # the servo cannot be asked to go past the joint limit either
        assert tuple(model.actuator(f"{arm}/{joint}").ctrlrange) == pytest.approx((low, high))


def test_stretched_arm_reaches_as_the_specification_says(model):
    """With all joints at zero the arm points forward; the tool centre point lies at the sum of
    the ViperX link offsets (forward 0.05955 + 0.2 + 0.1 + 0.069744 + 0.11 m from the base;
    up 0.079 + 0.04805 + 0.3 m)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    forward = 0.05955 + 0.2 + 0.1 + 0.069744 + 0.11
    up = 0.079 + 0.04805 + 0.3
    np.testing.assert_allclose(
        data.site("left/tcp").xpos, [-ARM_BASE_X_M + forward, 0, up], atol=1e-9
    )
    np.testing.assert_allclose(
        data.site("right/tcp").xpos, [ARM_BASE_X_M - forward, 0, up], atol=1e-9
    )


def test_positive_shoulder_and_elbow_lean_the_arm_forward_and_down(model):
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    start = data.site("left/tcp").xpos.copy()
    data.qpos[model.joint("left/shoulder").qposadr[0]] = 0.3
    mujoco.mj_kinematics(model, data)
    moved = data.site("left/tcp").xpos
    assert moved[0] > start[0] and moved[2] < start[2]


def test_arms_collide_with_each_other_but_not_with_themselves(model):
    def bits(name: str) -> tuple[int, int]:
        geom = model.geom(name)
        return int(geom.contype[0]), int(geom.conaffinity[0])

    def collide(a: str, b: str) -> bool:
        (type_a, aff_a), (type_b, aff_b) = bits(a), bits(b)
        return bool(type_a & aff_b or type_b & aff_a)

    assert collide("left/left_pad", "right/gripper_housing")
    assert collide("left/gripper_housing", "table")
    assert not collide("left/left_pad", "left/right_pad")
    assert not collide("right/gripper_housing", "right/left_pad")


def test_physics_step_is_2_ms(model):
    assert model.opt.timestep == pytest.approx(0.002)
