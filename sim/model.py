"""Builds the MuJoCo model of the bimanual ALOHA-style scene from this package's MJCF templates.

The scene (``assets/scene.xml``) holds the table, the room cameras and lights; ``assets/arm.xml``
is one ViperX-300-class arm, instantiated twice with the name prefixes ``left/`` and ``right/``.
The left arm stands at x = -0.469 m facing +x, the right arm at x = +0.469 m facing -x, both on
the table top (z = 0), as on ALOHA. Tasks add their objects as an MJCF fragment.

Example:
    >>> from kinema.sim.model import build_model
    >>> model = build_model(objects_xml="")
    >>> model.nu  # 6 joint servos and 2 finger servos per arm
    16
"""

from importlib import resources
from string import Template

import mujoco

from kinema.aloha import ARM_JOINTS, ARMS, Arm

ARM_BASE_X_M = 0.469
"""Distance of each arm's base from the table centre along x, in metres."""

# Base orientation quaternions (w, x, y, z): the right arm is turned 180° about z.
_ARM_BASE_QUAT = {"left": "1 0 0 0", "right": "0 0 0 1"}
FINGER_JOINTS = ("left_finger", "right_finger")


def _asset(name: str) -> Template:
    return Template(resources.files("kinema.sim").joinpath("assets", name).read_text())


def arm_prefix(arm: Arm) -> str:
    """The MJCF name prefix of an arm's elements, e.g. ``left/``."""
    return f"{arm}/"


def _arm_xml(arm: Arm) -> str:
    x = -ARM_BASE_X_M if arm == "left" else ARM_BASE_X_M
    return _asset("arm.xml").substitute(
        p=arm_prefix(arm), side=arm, pos=f"{x} 0 0", quat=_ARM_BASE_QUAT[arm]
    )


def _actuators_xml(arm: Arm) -> str:
    p = arm_prefix(arm)
    lines = [f'<position name="{p}{j}" joint="{p}{j}" class="{j}"/>' for j in ARM_JOINTS]
    lines += [f'<position name="{p}{f}" joint="{p}{f}" class="finger"/>' for f in FINGER_JOINTS]
    return "\n".join("    " + line for line in lines)


def build_scene_xml(objects_xml: str) -> str:
    """MJCF text of the whole scene with the task's ``objects_xml`` (may be empty) in the world
    body."""
    return _asset("scene.xml").substitute(
        arms="\n".join(_arm_xml(arm) for arm in ARMS),
        objects=objects_xml,
        actuators="\n".join(_actuators_xml(arm) for arm in ARMS),
    )


def build_model(objects_xml: str) -> mujoco.MjModel:
    """Compile the scene with the task's objects into an ``MjModel`` (see ``build_scene_xml``)."""
    return mujoco.MjModel.from_xml_string(build_scene_xml(objects_xml))
