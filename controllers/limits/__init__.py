"""Limits of the whole-body controller: each contributes rows lower ≤ G v ≤ upper.

``PositionLimit`` (joint ranges), ``VelocityLimit`` (joint speeds) and
``CollisionAvoidanceLimit`` (arm–arm and arm–table distances, as velocity dampers).
"""

from kinema.controllers.limits.base import Constraint, Limit, LimitError
from kinema.controllers.limits.collision import CollisionAvoidanceLimit, aloha_collision_geoms
from kinema.controllers.limits.joint_position import PositionLimit
from kinema.controllers.limits.joint_velocity import VelocityLimit

__all__ = [
    "CollisionAvoidanceLimit",
    "Constraint",
    "Limit",
    "LimitError",
    "PositionLimit",
    "VelocityLimit",
    "aloha_collision_geoms",
]
