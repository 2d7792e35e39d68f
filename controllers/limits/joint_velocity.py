"""Joint velocity limit: |v_i| ≤ v_max,i for every entry of the 14-vector.

Default: ``kinema.aloha.MAX_VELOCITY``, π rad/s for the arm joints (the ViperX servos' velocity
limit) and 5 openings per second for the grippers (full stroke in 0.2 s).

Example:
    >>> limit = VelocityLimit()
    >>> float(limit.max_velocity[0])
    3.14159...
"""

import numpy as np

from kinema.aloha import ACTION_DIM, MAX_VELOCITY
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits.base import Constraint, Limit, LimitError


class VelocityLimit(Limit):
    """Box limit on the joint velocity (see module docstring)."""

    def __init__(self, max_velocity: np.ndarray | None = None):
        limits = MAX_VELOCITY if max_velocity is None else np.asarray(max_velocity)
        if limits.shape != (ACTION_DIM,) or np.any(limits <= 0) or not np.all(np.isfinite(limits)):
            raise LimitError(
                f"VelocityLimit: max_velocity must be ({ACTION_DIM},) finite and positive. "
                f"Got {limits}."
            )
        self.max_velocity = limits.astype(np.float64)

    def compute_constraint(self, kinematics: Kinematics, dt_s: float) -> Constraint:
        return Constraint(None, -self.max_velocity, self.max_velocity)
