"""The simulated tasks, by name. Each is registered as gymnasium ``kinema/<name>-v0``."""

from kinema.sim.tasks.base import Episode, Task
from kinema.sim.tasks.insertion import Insertion
from kinema.sim.tasks.sort_cubes import SortCubes
from kinema.sim.tasks.stack_blocks import StackBlocks
from kinema.sim.tasks.transfer_cube import TransferCube

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (TransferCube, Insertion, SortCubes, StackBlocks)
}
"""Every task class, keyed by its name."""


def make_task(name: str) -> Task:
    """A new instance of the task called ``name`` (one of ``TASKS``)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]()


__all__ = ["TASKS", "Episode", "Insertion", "SortCubes", "StackBlocks", "Task", "TransferCube"]
