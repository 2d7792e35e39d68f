"""kinema: a brain / policy / cerebellum stack for ALOHA-style bimanual arms.

The folders of the repository map into this one import package: ``kinema.sim`` (MuJoCo scene,
tasks, gymnasium environments), ``kinema.controllers``, ``kinema.policies``, ``kinema.hardware``
and ``kinema.datasets``. See the README for the layer picture.

Importing any part of kinema selects headless EGL rendering when ``MUJOCO_GL`` is unset: it must
be set before mujoco is first imported, and the controllers import mujoco as well as the
simulation does.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
