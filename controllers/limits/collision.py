"""Collision avoidance: keep pairs of geoms at least a margin apart, as velocity dampers.

For a pair of geoms (g₁, g₂) at signed distance d (m, negative when they overlap), with witness
points p₁ ∈ g₁ and p₂ ∈ g₂ from ``mj_geomDistance`` and unit normal n = (p₂ − p₁)/d, the distance
changes at ḋ = nᵀ (J_p₂ − J_p₁) v, where J_p are the point Jacobians of the model. The velocity
damper lets the pair approach by at most a fraction γ of its remaining margin per period:

    −ḋ ≤ γ (d − d_min) / dt      ⇔      −nᵀ (J_p₂ − J_p₁) v ≤ γ (d − d_min) / dt.

Pairs farther apart than ``detection_distance_m`` add no row. A cheap broad phase on the geoms'
bounding spheres (and, against geoms fixed to the world such as the table, on bounding-box
heights) skips the exact distance query for pairs that are clearly far. Static geoms have zero
Jacobian, so a gripper is simply stopped above the table.

``aloha_collision_geoms`` names the geoms that matter on ALOHA: the links of each arm from the
upper arm to the gripper housing. The finger pads are left out by default: they must come close
to the table and to the other gripper to grasp and to hand over.

Example:
    >>> from kinema.sim.model import build_model
    >>> model = build_model("")
    >>> left, right = (aloha_collision_geoms(model, arm) for arm in ("left", "right"))
    >>> limit = CollisionAvoidanceLimit(model, [(left, right)], minimum_distance_m=0.02)
"""

import math
from collections.abc import Sequence

import mujoco
import numpy as np

from kinema.aloha import ACTION_DIM, Arm
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits.base import Constraint, Limit, LimitError
from kinema.sim.model import arm_prefix

GeomGroup = Sequence[int]

_NO_ROWS = Constraint(np.zeros((0, ACTION_DIM)), np.zeros(0), np.zeros(0))

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
    """Keep every geom of group A at least ``minimum_distance_m`` from every geom of group B.

    ``minimum_distance_m`` is one margin for all group pairs, or one per group pair.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        group_pairs: Sequence[tuple[GeomGroup, GeomGroup]],
        minimum_distance_m: float | Sequence[float] = 0.02,
        detection_distance_m: float = 0.1,
        gain: float = 0.85,
    ):
        margins = np.broadcast_to(np.asarray(minimum_distance_m, float), (len(group_pairs),))
        if not np.all((margins >= 0.0) & (margins < detection_distance_m)):
            raise LimitError(
                "CollisionAvoidanceLimit: need 0 ≤ minimum_distance_m < detection_distance_m "
                f"(one margin, or one per group pair). Got {minimum_distance_m} and "
                f"{detection_distance_m}."
            )
        if not 0.0 < gain <= 1.0:
            raise LimitError(f"CollisionAvoidanceLimit: gain must be in (0, 1]. Got {gain}.")
        margin_of: dict[tuple[int, int], float] = {}
        for (first, second), margin in zip(group_pairs, margins, strict=True):
            for a in first:
                for b in second:
                    if a != b:
                        margin_of[(int(a), int(b))] = margin_of[(int(b), int(a))] = float(margin)
        pairs = list(dict.fromkeys(tuple(sorted(pair)) for pair in margin_of))
        if not pairs:
            raise LimitError("CollisionAvoidanceLimit: group_pairs name no pair of geoms.")
        self.model = model
        self.pairs = np.array(pairs, dtype=np.int64)
        self.detection_distance_m = detection_distance_m
        self.gain = gain
        # Put a static geom (fixed to the world) second in its pair, and pairs with one static
        # geom last; the rows depend on neither order. A static geom's top never moves.
        static = model.geom_bodyid[self.pairs] == 0
        swap = static[:, 0] & ~static[:, 1]
        self.pairs[swap] = self.pairs[swap][:, ::-1]
        self.pairs = self.pairs[np.argsort(model.geom_bodyid[self.pairs[:, 1]] == 0, kind="stable")]
        self.minimum_distance_m = np.array([margin_of[(int(a), int(b))] for a, b in self.pairs])
        self._moving_count = int(np.sum(model.geom_bodyid[self.pairs[:, 1]] != 0))
        moving, above_static = self.pairs[: self._moving_count], self.pairs[self._moving_count :]
        self._first, self._second = moving[:, 0].copy(), moving[:, 1].copy()
        self._radius_sum = model.geom_rbound[moving].sum(axis=1)
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        self._static_top_m = _extreme_heights(data, model, above_static[:, 1], highest=True)
        self._above_static = above_static[:, 0].copy()
        self._fromto = np.zeros(6)

    def distances(self, kinematics: Kinematics) -> list[tuple[int, int, float, np.ndarray]]:
        """(geom₁, geom₂, signed distance in m, fromto) of the pairs within detection range."""
        near = self._near(kinematics.data, self._lower_bounds(kinematics.data))
        return [(first, second, distance, fromto) for _, first, second, distance, fromto in near]

    def _near(self, data: mujoco.MjData, gaps: np.ndarray) -> list:
        """(pair index, geom₁, geom₂, distance, fromto) of the pairs within detection range."""
        near = []
        for index in np.flatnonzero(gaps < self.detection_distance_m):
            first, second = self.pairs[index]
            distance = mujoco.mj_geomDistance(
                self.model, data, first, second, self.detection_distance_m, self._fromto
            )
            if distance < self.detection_distance_m:
                near.append((index, int(first), int(second), distance, self._fromto.copy()))
        return near

    def _lower_bounds(self, data: mujoco.MjData) -> np.ndarray:
        """A cheap lower bound (m) on each pair's distance: for two moving geoms the gap between
        their bounding spheres; against a static geom (the table) the height of the moving geom's
        lowest point above the static geom's highest point."""
        offset = data.geom_xpos[self._first] - data.geom_xpos[self._second]
        spheres = np.sqrt((offset * offset).sum(axis=1)) - self._radius_sum
        if not self._above_static.size:
            return spheres
        lowest = _extreme_heights(data, self.model, self._above_static, highest=False)
        return np.concatenate([spheres, lowest - self._static_top_m])

    def compute_constraint(self, kinematics: Kinematics, dt_s: float) -> Constraint:
        near = self._near(kinematics.data, self._lower_bounds(kinematics.data))
        if not near:
            return _NO_ROWS
        rows = np.zeros((len(near), kinematics.configuration.shape[0]))
        upper = np.full(len(near), np.inf)  # rows left at zero constrain nothing
        body = self.model.geom_bodyid
        for i, (index, first, second, distance, fromto) in enumerate(near):
            segment = fromto[3:] - fromto[:3]
            length = math.hypot(*segment)
            if length < 1e-9:  # touching exactly: no direction to move apart along
                continue
            normal = segment / length if distance >= 0 else -segment / length
            relative = -kinematics.point_jacobian(fromto[:3], body[first])
            if body[second] != 0:  # geoms fixed to the world do not move
                relative += kinematics.point_jacobian(fromto[3:], body[second])
            rows[i] = -normal @ relative
            upper[i] = self.gain * (distance - self.minimum_distance_m[index]) / dt_s
        return Constraint(rows, np.full(len(near), -np.inf), upper)


def _extreme_heights(
    data: mujoco.MjData, model: mujoco.MjModel, geoms: np.ndarray, highest: bool
) -> np.ndarray:
    """World height (m) of the highest or lowest corner of each geom's bounding box: the box
    centre's height ± Σᵢ |R_zi| hᵢ over the box half-sizes hᵢ along the geom's axes."""
    rows = data.geom_xmat[geoms, 6:9]  # the z row of each rotation
    box = model.geom_aabb[geoms]
    centre = data.geom_xpos[geoms, 2] + (rows * box[:, :3]).sum(axis=1)
    reach = (np.abs(rows) * box[:, 3:]).sum(axis=1)
    return centre + reach if highest else centre - reach
