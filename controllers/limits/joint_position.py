"""Joint position limit: the next configuration q + v·dt stays within [q_min, q_max].

Bounds on v, with a gain γ ∈ (0, 1] that lets each step close only part of the remaining margin
(so a joint slows down as it nears its limit instead of hitting it):

    γ (q_min − q) / dt  ≤  v  ≤  γ (q_max − q) / dt.

q is first clamped into the limits, so the bounds always admit v = 0 (a configuration that has
drifted out is held, never pushed further out). Defaults: the ViperX limits and gripper [0, 1].

Example:
    >>> limit = PositionLimit(gain=0.95)
"""

import numpy as np

from kinema.aloha import ACTION_DIM, ACTION_HIGH, ACTION_LOW
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits.base import Constraint, Limit, LimitError


class PositionLimit(Limit):
    """Keep every entry of the 14-vector within its position range (see module docstring)."""

    def __init__(
        self,
        lower: np.ndarray = ACTION_LOW,
        upper: np.ndarray = ACTION_HIGH,
        gain: float = 0.95,
    ):
        lower = np.asarray(lower, dtype=np.float64)
        upper = np.asarray(upper, dtype=np.float64)
        if lower.shape != (ACTION_DIM,) or upper.shape != (ACTION_DIM,):
            raise LimitError(
                f"PositionLimit: lower and upper must have shape ({ACTION_DIM},). "
                f"Got {lower.shape} and {upper.shape}."
            )
        if np.isnan(lower).any() or np.isnan(upper).any():
            raise LimitError("PositionLimit: lower and upper must not contain NaN.")
        if np.any(lower > upper):
            raise LimitError(
                f"PositionLimit: lower exceeds upper at {np.flatnonzero(lower > upper)}"
            )
        if not 0.0 < gain <= 1.0:
            raise LimitError(f"PositionLimit: gain must be in (0, 1]. Got {gain}.")
        self.lower = lower
        self.upper = upper
        self.gain = gain

    def compute_constraint(self, kinematics: Kinematics, dt_s: float) -> Constraint:
        q = np.clip(kinematics.configuration, self.lower, self.upper)
        scale = self.gain / dt_s
        return Constraint(None, scale * (self.lower - q), scale * (self.upper - q))
