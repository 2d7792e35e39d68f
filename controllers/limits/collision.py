"""Collision avoidance: keep pairs of geoms at least a margin apart, as velocity dampers.

For a pair of geoms (g₁, g₂) at signed distance d (m, negative when they overlap), with witness
points p₁ ∈ g₁ and p₂ ∈ g₂ from ``mj_geomDistance`` and unit normal n = (p₂ − p₁)/d, the distance
changes at ḋ = nᵀ (J_p₂ − J_p₁) v, where J_p are the point Jacobians of the model. The velocity
damper lets the pair approach by at most a fraction γ of its remaining margin per period:

    −ḋ ≤ γ (d − d_min) / dt      ⇔      −nᵀ (J_p₂ − J_p₁) v ≤ γ (d − d_min) / dt.

Pairs farther apart than ``detection_distance_m`` add no row. A cheap broad phase on the geoms'
bounding spheres skips the exact distance query for pairs that are clearly far; static geoms (the
table) have zero Jacobian, so a gripper is simply stopped above them.

``aloha_collision_geoms`` names the geoms that matter on ALOHA: the links of each arm from the
upper arm to the gripper housing. The finger pads are left out by default: they must come close
to the table and to the other gripper to grasp and to hand over.

Example:
    >>> from kinema.sim.model import build_model
    >>> model = build_model("")
    >>> left, right = (aloha_collision_geoms(model, arm) for arm in ("left", "right"))
    >>> limit = CollisionAvoidanceLimit(model, [(left, right)], minimum_distance_m=0.02)
"""

from collections.abc import Sequence

import mujoco
import numpy as np

from kinema.aloha import Arm
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits.base import Constraint, Limit, LimitError
from kinema.sim.model import arm_prefix

GeomGroup = Sequence[int]

_ARM_COLLISION_BODIES = (
    "upper_arm_link",
    "upper_forearm_link",
    "lower_forearm_link",
    "wrist_link",
    "gripper_link",
)


def aloha_collision_geoms(
    model: mujoco.MjModel, arm: Arm, bodies: Sequence[str] = _ARM_COLLISION_BODIES
) -> list[int]:
    """Ids of the colliding geoms (contype ≠ 0) of ``arm`` on the named link bodies."""
    body_ids = {model.body(arm_prefix(arm) + body).id for body in bodies}
    return [
        g
        for g in range(model.ngeom)
        if model.geom_bodyid[g] in body_ids and model.geom_contype[g] != 0
    ]


class CollisionAvoidanceLimit(Limit):
    """Keep every geom of group A at least ``minimum_distance_m`` from every geom of group B."""

    def __init__(
        self,
        model: mujoco.MjModel,
        group_pairs: Sequence[tuple[GeomGroup, GeomGroup]],
        minimum_distance_m: float = 0.02,
        detection_distance_m: float = 0.1,
        gain: float = 0.85,
    ):
        if not 0.0 <= minimum_distance_m < detection_distance_m:
            raise LimitError(
                "CollisionAvoidanceLimit: need 0 ≤ minimum_distance_m < detection_distance_m. "
                f"Got {minimum_distance_m} and {detection_distance_m}."
            )
        if not 0.0 < gain <= 1.0:
            raise LimitError(f"CollisionAvoidanceLimit: gain must be in (0, 1]. Got {gain}.")
        pairs = [(a, b) for first, second in group_pairs for a in first for b in second if a != b]
        if not pairs:
            raise LimitError("CollisionAvoidanceLimit: group_pairs name no pair of geoms.")
        self.model = model
        self.pairs = np.array(pairs, dtype=np.int64)
        self.minimum_distance_m = minimum_distance_m
        self.detection_distance_m = detection_distance_m
        self.gain = gain
        self._bound_radius = model.geom_rbound[self.pairs].sum(axis=1)
        self._fromto = np.zeros(6)

    def distances(self, kinematics: Kinematics) -> list[tuple[int, int, float, np.ndarray]]:
        """(geom₁, geom₂, signed distance in m, fromto) of the pairs within detection range."""
        data = kinematics.data
        centres = data.geom_xpos[self.pairs]
        gaps = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=1) - self._bound_radius
        near = []
        for first, second in self.pairs[gaps < self.detection_distance_m]:
            distance = mujoco.mj_geomDistance(
                self.model, data, first, second, self.detection_distance_m, self._fromto
            )
            if distance < self.detection_distance_m:
                near.append((int(first), int(second), distance, self._fromto.copy()))
        return near

    def compute_constraint(self, kinematics: Kinematics, dt_s: float) -> Constraint:
        near = self.distances(kinematics)
        rows = np.zeros((len(near), kinematics.configuration.shape[0]))
        upper = np.empty(len(near))
        body = self.model.geom_bodyid
        for i, (first, second, distance, fromto) in enumerate(near):
            segment = fromto[3:] - fromto[:3]
            length = np.linalg.norm(segment)
            if length < 1e-9:  # touching exactly: no direction to move apart along
                continue
            normal = segment / length if distance >= 0 else -segment / length
            relative = kinematics.point_jacobian(fromto[3:], body[second]) - (
                kinematics.point_jacobian(fromto[:3], body[first])
            )
            rows[i] = -normal @ relative
            upper[i] = self.gain * (distance - self.minimum_distance_m) / dt_s
        upper[~np.any(rows, axis=1)] = np.inf
        return Constraint(rows, np.full(len(near), -np.inf), upper)
