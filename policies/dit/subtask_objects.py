"""Which objects of the environment state the subtask text names: the object it acts on and
its target, so that the policy can mark their tokens.

The environment state's entries are named ``<object>.<field>`` (``cube_0.x`` … ``cube_0.red``
…; ``kinema.sim.tasks``). An object's *kind* is its name without a trailing slot number
(``cube_0`` → ``cube``). A phrase of the subtask text, "w₁ … wₙ kind" ("red cube"), names the
objects of that kind in which every word wᵢ is a field whose value exceeds 0.5 in this frame
(the colour one-hot ``cube_0.red`` = 1): which slot holds the red cube changes per episode,
so the match is made on each frame's values. The phrases come from the skill templates
(``kinema.skills.named_objects``); free text names nothing.

Roles: 0 for an object the subtask does not name, 1 for the object it acts on
(``Subtask.object``), 2 for its target (``Subtask.target``).

Example:
    >>> names = ("cube_0.x", "cube_0.red", "cube_0.blue", "cube_1.x", "cube_1.red", "cube_1.blue")
    >>> objects = SubtaskObjects(names)
    >>> state = torch.tensor([[0.1, 0.0, 1.0, 0.2, 1.0, 0.0]])  # cube_0 is blue, cube_1 red
    >>> objects.roles(["put the red cube on the blue cube"], state).tolist()
    [[2, 1]]
"""

import itertools
import re

import torch

from kinema.skills import named_objects

OTHER, ACTED_ON, TARGET = 0, 1, 2
ROLES = 3
"""How many roles there are (the size of the role embedding)."""

_ONE_HOT_THRESHOLD = 0.5


class SubtaskObjects:
    """Per object of an environment state named ``names``, its role in a subtask text."""

    def __init__(self, names: tuple[str, ...]):
        if not names or not all("." in name for name in names):
            raise ValueError(
                "SubtaskObjects: every environment-state name must be <object>.<field>, got "
                f"{list(names)[:4]}…"
            )
        objects = [name.split(".", 1)[0] for name in names]
        self.objects = [object for object, _ in itertools.groupby(objects)]
        if len(self.objects) != len(set(self.objects)):
            raise ValueError(f"SubtaskObjects: an object's entries are not consecutive: {names}")
        self.lengths = tuple(len(list(run)) for _, run in itertools.groupby(objects))
        self.kinds = [re.sub(r"_\d+$", "", object) for object in self.objects]
        # (object, field) → index of the entry in the environment state
        self._entries = {tuple(name.split(".", 1)): i for i, name in enumerate(names)}

    def roles(self, texts: list[str], states: torch.Tensor) -> torch.Tensor:
        """(B, K) int64 roles of the K objects for B subtask ``texts`` and raw (not normalised)
        environment ``states`` (B, E)."""
        roles = torch.full((len(texts), len(self.objects)), OTHER, dtype=torch.long)
        phrases = [named_objects(text) or (None, None) for text in texts]
        for role, column in ((ACTED_ON, 0), (TARGET, 1)):
            rows_of: dict[str, list[int]] = {}
            for row, named in enumerate(phrases):
                if named[column] is not None:
                    rows_of.setdefault(named[column], []).append(row)
            for phrase, rows in rows_of.items():
                named_here = self._named_by(phrase, states[rows])
                roles[rows] = torch.where(named_here, role, roles[rows])
        return roles.to(states.device)

    def _named_by(self, phrase: str, states: torch.Tensor) -> torch.Tensor:
        """(R, K) bool: whether each object is named by ``phrase`` in each of R states."""
        *words, kind = phrase.split()
        named = torch.zeros(states.shape[0], len(self.objects), dtype=torch.bool)
        for k, (object, object_kind) in enumerate(zip(self.objects, self.kinds, strict=True)):
            entries = [self._entries.get((object, word)) for word in words]
            if object_kind != kind or None in entries:
                continue
            values = states[:, entries].cpu()  # (R, words); no words: every object of the kind
            named[:, k] = (values > _ONE_HOT_THRESHOLD).all(dim=1)
        return named
