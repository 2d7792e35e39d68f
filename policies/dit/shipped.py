"""The DiT policy the repository ships, ``kinema run``'s default, and the task it was trained on.

A small state-based policy (joint state, object poses and the subtask text in, 50-step joint
chunks out) trained on scripted demonstrations of the long-horizon ``SortCubes`` task; its model
card (``shipped_policy/README.md``) states the data, the training budget and the measured
success. Loaded like any other checkpoint: ``DiTPolicy.from_pretrained(SHIPPED_POLICY)``.
"""

from pathlib import Path

SHIPPED_POLICY = Path(__file__).parent / "shipped_policy"
"""The shipped checkpoint's ``save_pretrained`` directory (package data)."""

SHIPPED_POLICY_TASK = "SortCubes"
"""The simulated task the shipped policy was trained on."""
