"""The DiT policies the repository ships, each trained on one long-horizon task, and
``kinema run``'s default task.

Each is a small state-based policy (joint state, object poses and the subtask text in, 50-step
joint chunks out) trained on scripted demonstrations of its task; its model card
(``shipped_policies/<task>/README.md``) states the data, the training budget and the measured
success. Loaded like any other checkpoint: ``DiTPolicy.from_pretrained(shipped_policy(task))``.
Only ``SortCubes`` has one so far: on ``StackBlocks`` the best policy trained so far, on 240
demonstrations with end-effector actions, stacks the whole tower in 38 % of 50 held-out seeds
(2026-12-07; the README has the others), too few to ship.
"""

from pathlib import Path

_FOLDER = Path(__file__).parent / "shipped_policies"

SHIPPED_POLICIES: dict[str, Path] = {
    "SortCubes": _FOLDER / "sort_cubes",
}
"""Simulated task → the ``save_pretrained`` directory of the policy trained on it (package
data)."""

DEFAULT_TASK = "SortCubes"
"""The task ``kinema run`` runs when none is named."""


def shipped_policy(task: str) -> Path:
    """The shipped checkpoint trained on ``task``.

    Raises:
        ValueError: if no shipped policy was trained on ``task``.
    """
    if task not in SHIPPED_POLICIES:
        raise ValueError(
            f"no shipped policy was trained on {task!r} (shipped: {', '.join(SHIPPED_POLICIES)}): "
            "name a policy with --policy"
        )
    return SHIPPED_POLICIES[task]
