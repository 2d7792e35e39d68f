"""Tasks of the whole-body controller: each computes an error and its Jacobian over the 14-vector.

``FrameTask`` (a gripper's world pose), ``RelativeFrameTask`` (one gripper's pose seen from the
other), ``PostureTask`` (joint-space regularisation) and ``GripperTask`` (gripper openings).
"""

from kinema.controllers.tasks.base import Objective, Task, TaskError
from kinema.controllers.tasks.frame import FrameTask
from kinema.controllers.tasks.gripper import GripperTask
from kinema.controllers.tasks.posture import PostureTask
from kinema.controllers.tasks.relative_frame import RelativeFrameTask

__all__ = [
    "FrameTask",
    "GripperTask",
    "Objective",
    "PostureTask",
    "RelativeFrameTask",
    "Task",
    "TaskError",
]
