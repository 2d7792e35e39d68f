"""Ways a person may word each task's instruction, split into the wordings the embedded brain is
trained on and held-out wordings it is only evaluated on.

For every task the plan is the task's ground truth for the episode; the wording only has to name
the same goal. StackBlocks templates take the tower's colours bottom to top as ``{0}`` … ``{3}``
(some templates name them top down, or pair by pair); the other tasks' templates take none.
``TRAINING`` includes the instructions the simulated tasks themselves draw (``kinema.sim.tasks``),
so an episode's own instruction is always a trained wording. For StackBlocks it adds wordings
composed from parts (``tower_wordings``): a lead-in, a list of the colours in either direction with
words saying which, or the pairs of blocks in any order ("{2} on {1}", "{0} under {1}"). Direction
words stand both before and after lists of either direction ("lowest first: …", "…, lowest
first", "highest first: …"), so that a model has to read what they say rather than where they
stand. ``HELD_OUT`` shares no template with ``TRAINING``.

Example:
    >>> import numpy as np
    >>> from kinema.types import Subtask
    >>> tower = [Subtask("", "stack_on", "left", f"{u} block", f"{l} block", 6.0)
    ...          for l, u in (("purple", "yellow"), ("yellow", "green"), ("green", "blue"))]
    >>> phrase("StackBlocks", HELD_OUT["StackBlocks"][0], tower)
    'build a tower: purple, then yellow, green, blue on top'
"""

import re
from collections.abc import Sequence
from itertools import product
from typing import Literal

import numpy as np

from kinema.types import Subtask

Split = Literal["training", "held_out"]

_TOWER_LEADS = ("stack the blocks", "build the tower", "make a stack", "pile them up")
_UPWARD_BEFORE = ("from the bottom up", "lowest first", "starting at the base", "going up")
_DOWNWARD_BEFORE = ("top to bottom", "highest first", "starting at the top", "going down")
_UPWARD_AFTER = ("from bottom to top", "lowest first", "from the base upwards", "bottom first")
_DOWNWARD_AFTER = ("from top to bottom", "highest first", "top first", "going downwards")
_PAIR_ORDERS = ((0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1))


def _colour_lists(order: Sequence[int]) -> tuple[str, ...]:
    a, b, c, d = (f"{{{i}}}" for i in order)
    return (
        f"{a}, {b}, {c}, {d}",
        f"{a}, {b}, {c} and {d}",
        f"{a} then {b} then {c} then {d}",
        f"the {a}, {b}, {c} and {d} blocks",
    )


def _pair(lower: int, relation: str) -> str:
    upper = f"{{{lower + 1}}}"
    if relation in ("under", "below"):
        return f"{{{lower}}} {relation} {upper}"
    return f"{upper} {relation} {{{lower}}}"


def tower_wordings() -> tuple[str, ...]:
    """StackBlocks training templates composed from parts (colours ``{0}`` … ``{3}`` bottom to
    top): "<lead>, <direction>: <list>", "<lead>: <list>, <direction>" with the list in the
    direction named, and "<lead> <pairs>" with the three (upper, lower) pairs in several orders
    and relations ("on", "onto", "on top of", "under", "below")."""
    wordings = []
    for order, before, after in (
        ((0, 1, 2, 3), _UPWARD_BEFORE, _UPWARD_AFTER),
        ((3, 2, 1, 0), _DOWNWARD_BEFORE, _DOWNWARD_AFTER),
    ):
        lists = _colour_lists(order)
        for lead, (marker, items) in product(_TOWER_LEADS, zip(before, lists, strict=True)):
            wordings.append(f"{lead}, {marker}: {items}")
        for lead, (marker, items) in product(_TOWER_LEADS, zip(after, lists[::-1], strict=True)):
            wordings.append(f"{lead}: {items}, {marker}")
    for lead, order, relation in product(
        ("stack", "put", "tower:"), _PAIR_ORDERS, ("on", "onto", "on top of", "under", "below")
    ):
        a, b, c = (_pair(i, relation) for i in order)
        wordings.append(f"{lead} {a}, {b} and {c}")
    return tuple(wordings)


TRAINING: dict[str, tuple[str, ...]] = {
    "TransferCube": (
        "pick up the red cube with the right arm and hand it to the left arm",
        "transfer the red cube from the right gripper to the left gripper",
        "grab the cube with the right arm, then pass it over to the left arm",
        "move the red cube from the right hand to the left hand",
        "use the right arm to pick the cube up and give it to the left arm",
        "take the red cube with the right gripper and hand it over to the left one",
        "pass the cube from right to left",
    ),
    "Insertion": (
        "insert the peg into the socket",
        "pick up the peg and the socket and put the peg into the socket in mid-air",
        "grab the socket with the left arm and the peg with the right arm, then insert the peg",
        "put the peg in the socket",
        "lift the socket with the left arm and the peg with the right one and fit them together",
        "assemble the peg and the socket in the air",
        "plug the red peg into the blue socket",
    ),
    "SortCubes": (
        "sort the cubes into the bins of the same colour",
        "put every cube in the bin that matches its colour",
        "place each coloured cube into its matching bin",
        "put each cube into the bin with the same colour",
        "sort the coloured cubes by colour into the bins",
        "drop every cube into its matching coloured bin",
        "clean up: each cube goes in the bin of its colour",
    ),
    "StackBlocks": (
        "stack the blocks with {0} at the bottom, then {1}, then {2}, and {3} on top",
        "build a tower: {0} first, {1} on it, then {2}, then {3}",
        "put the {1} block on the {0} block, the {2} block on the {1} one and the {3} block on top",
        "make a tower with the {0} block at the base, the {1} block next, then {2} and finally {3}",
        "stack {0}, {1}, {2}, {3} from bottom to top",
        "stack the blocks from top to bottom: {3}, {2}, {1}, {0}",
        "{0} at the bottom, {1} on it, {2} on that and {3} at the very top",
        "starting from the top, the tower should be {3}, {2}, {1}, {0}",
        "place {1} on {0}, {2} on {1} and {3} on {2}",
        *tower_wordings(),
    ),
}
"""Templates the embedded brain is trained on, per task."""

HELD_OUT: dict[str, tuple[str, ...]] = {
    "TransferCube": (
        "hand the red cube from the right arm to the left",
        "have the right arm grab the red cube and give it to the left arm",
        "right arm: pick up the cube; left arm: take it over",
        "transfer the cube to the left arm after picking it up with the right one",
    ),
    "Insertion": (
        "insert the red peg into the blue socket while holding both in the air",
        "pick up both parts and push the peg into the socket",
        "fit the peg into the socket using both arms",
    ),
    "SortCubes": (
        "sort the cubes into the bins of their colour",
        "place every cube in the bin whose colour matches it",
        "match the cubes to the bins by colour and put them in",
    ),
    "StackBlocks": (
        "build a tower: {0}, then {1}, {2}, {3} on top",
        "place the blocks in a tower, bottom to top: {0}, {1}, {2}, {3}",
        "stack the {1} block on {0}, then {2} on {1}, then {3} on {2}",
        "from the top down the stack is {3}, {2}, {1}, {0}",
    ),
}
"""Templates kept out of training, per task, for evaluation."""

SPLITS: dict[Split, dict[str, tuple[str, ...]]] = {"training": TRAINING, "held_out": HELD_OUT}


def tower_colors(subtasks: Sequence[Subtask]) -> list[str]:
    """The colours of a StackBlocks plan's tower, bottom to top."""
    if not subtasks or subtasks[0].target is None:
        raise ValueError("tower_colors: expected the stack_on subtasks of a StackBlocks plan")
    return [subtasks[0].target.removesuffix(" block")] + [
        s.object.removesuffix(" block") for s in subtasks
    ]


def phrase(task: str, template: str, subtasks: Sequence[Subtask]) -> str:
    """``template`` filled in for the episode whose ground-truth plan is ``subtasks``."""
    if task == "StackBlocks":
        return template.format(*tower_colors(subtasks))
    return template


def templates(task: str, split: Split) -> tuple[str, ...]:
    """The templates of ``task`` in ``split``.

    Raises:
        KeyError: for a task without phrasings.
    """
    table = SPLITS[split]
    if task not in table:
        raise KeyError(f"no phrasings for task {task!r}; tasks: {', '.join(table)}")
    return table[task]


CONNECTIVES = re.compile(r"\b(first|then|next|finally|and|on it|on that),? ")
"""Connecting words a terse person leaves out ("red, then blue and green" → "red, blue green")."""


def vary(text: str, rng: np.random.Generator) -> str:
    """Small surface changes a person makes, for training, each with probability 1/4: connecting
    words left out (``CONNECTIVES``), "please", a capital letter, a full stop."""
    if rng.random() < 0.25:
        text = CONNECTIVES.sub("", text)
    if rng.random() < 0.25:
        text = "please " + text
    if rng.random() < 0.25:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.25:
        text = text + "."
    return text
