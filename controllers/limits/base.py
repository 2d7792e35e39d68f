"""The base of every WBC limit: inequality rows on the joint velocity v of the 14-vector.

A limit contributes ``Constraint(G, lower, upper)``: lower ≤ G v ≤ upper, or, when ``G`` is None,
bounds on v itself (lower ≤ v ≤ upper), which the solver treats as cheap simple bounds. Bounds
may be ±inf. Units follow v: rad/s for joints, opening per second for grippers.

Example:
    >>> from kinema.controllers.limits import VelocityLimit
    >>> limit = VelocityLimit()
"""

import abc
from typing import NamedTuple

import numpy as np

from kinema.controllers.kinematics import Kinematics


class LimitError(ValueError):
    """A limit built with arguments of the wrong shape or range."""


class Constraint(NamedTuple):
    """lower ≤ G v ≤ upper, or lower ≤ v ≤ upper when ``G`` is None."""

    G: np.ndarray | None
    lower: np.ndarray
    upper: np.ndarray


class Limit(abc.ABC):
    """Something the joint velocity must respect at the configured configuration."""

    @abc.abstractmethod
    def compute_constraint(self, kinematics: Kinematics, dt_s: float) -> Constraint:
        """The rows this limit adds for one control period of ``dt_s`` seconds."""
