"""The values the brain reads and writes: what it sees (``BrainObservation``) and how it judges a
subtask (``Verdict``).

Example:
    >>> import numpy as np
    >>> seen = BrainObservation({"cam_high": np.zeros((48, 64, 3), np.uint8)}, time_s=1.5,
    ...                         objects=("red cube",))
    >>> Verdict("done", 0.9, "the cube is in the right gripper, off the table").status
    'done'
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

VerdictStatus = Literal["done", "not_yet", "failed"]
"""done: the subtask is accomplished; not_yet: still under way and may succeed; failed: it can no
longer succeed without starting over (the object fell, the grasp slipped)."""

VERDICT_STATUSES: tuple[VerdictStatus, ...] = get_args(VerdictStatus)


@dataclass(frozen=True)
class Verdict:
    """A planner's judgement of one subtask.

    Attributes:
        status: "done", "not_yet" or "failed" (see ``VerdictStatus``).
        confidence: how sure the planner is, in [0, 1].
        reason: a short explanation, for the trace and for replanning.
    """

    status: VerdictStatus
    confidence: float
    reason: str

    def __post_init__(self) -> None:
        if self.status not in VERDICT_STATUSES:
            raise ValueError(
                f"Verdict.status must be one of {VERDICT_STATUSES}, got {self.status!r}"
            )
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Verdict.confidence must be in [0, 1], got {self.confidence}")


@dataclass(frozen=True, eq=False)
class BrainObservation:
    """What the brain sees at one moment.

    Attributes:
        images: camera name → uint8 (H, W, 3) RGB image, in the order the cameras are shown.
        time_s: when the images were taken, seconds (the robot's clock).
        objects: the names of the objects in the scene ("red cube", "purple bin"), which a plan
            may name; None when unknown (a plan may then name any object).
    """

    images: Mapping[str, np.ndarray]
    time_s: float = 0.0
    objects: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for camera, image in self.images.items():
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"BrainObservation: image {camera!r} must be uint8 (H, W, 3), got "
                    f"{image.dtype} {image.shape}"
                )

    @classmethod
    def from_env(
        cls,
        observation: Mapping[str, np.ndarray],
        time_s: float = 0.0,
        objects: tuple[str, ...] | None = None,
    ) -> "BrainObservation":
        """The camera images of an ``AlohaEnv`` observation (keys ``observation.images.<cam>``)."""
        prefix = "observation.images."
        images = {k.removeprefix(prefix): v for k, v in observation.items() if k.startswith(prefix)}
        return cls(images, time_s, objects)
