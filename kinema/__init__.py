"""kinema: a brain / policy / cerebellum stack for ALOHA-style bimanual arms.

The folders of the repository map into this one import package: ``kinema.sim`` (MuJoCo scene,
tasks, gymnasium environments), ``kinema.controllers``, ``kinema.policies``, ``kinema.hardware``
and ``kinema.datasets``. See the README for the layer picture.
"""

__version__ = "0.1.0"
