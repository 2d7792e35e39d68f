"""Feature mapping: read a dataset whose feature names or sizes differ from kinema's.

A dataset written by another lerobot user may call its cameras ``observation.images.top`` and
``observation.images.wrist_left`` and hold a 16-value state; kinema's policy wants
``observation.images.cam_high`` and a 14-value ``observation.state``. A mapping rule says which
dataset feature (and which of its entries) each feature the loader serves comes from:

    TARGET=SOURCE                     rename: the loader's TARGET is the dataset's SOURCE
    TARGET=SOURCE[0:6,8:14]           select entries (Python slices or single indices, in order)

Features no rule mentions are served under their own names; a feature used as a SOURCE is only
served under its TARGET name.

Example:
    >>> mapping = FeatureMap.parse(["observation.images.cam_high=observation.images.top",
    ...                             "observation.state=observation.state[0:7,8:15]"])
    >>> mapping.source_of("observation.images.cam_high")
    'observation.images.top'
    >>> mapping.indices_of("observation.state")
    [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
"""

import re
from dataclasses import dataclass, field

_RULE = re.compile(r"^\s*([\w.\-]+)\s*=\s*([\w.\-]+)\s*(?:\[([0-9:,\s]+)\])?\s*$")


def _parse_indices(text: str, rule: str) -> list[int]:
    """``"0:6,8"`` → [0, 1, 2, 3, 4, 5, 8]; slices need both ends (the size is not known yet)."""
    indices: list[int] = []
    for part in (piece.strip() for piece in text.split(",")):
        if ":" in part:
            bounds = part.split(":")
            if len(bounds) != 2 or not all(bound.strip() for bound in bounds):
                raise ValueError(f"feature map rule {rule!r}: slice {part!r} needs START:STOP")
            start, stop = int(bounds[0]), int(bounds[1])
            if stop <= start:
                raise ValueError(f"feature map rule {rule!r}: empty slice {part!r}")
            indices.extend(range(start, stop))
        elif part:
            indices.append(int(part))
    if not indices:
        raise ValueError(f"feature map rule {rule!r}: no entries selected")
    return indices


@dataclass(frozen=True)
class MappedFeature:
    """One served feature: the dataset feature it comes from and the entries it takes (None:
    all of them)."""

    source: str
    indices: tuple[int, ...] | None = None


@dataclass(frozen=True)
class FeatureMap:
    """Target feature name → where it comes from in the dataset (see the module docstring)."""

    rules: dict[str, MappedFeature] = field(default_factory=dict)

    @classmethod
    def parse(cls, rules: list[str] | None) -> "FeatureMap":
        """Rules as given on the command line (``--map TARGET=SOURCE[indices]``)."""
        parsed: dict[str, MappedFeature] = {}
        for rule in rules or []:
            match = _RULE.match(rule)
            if match is None:
                raise ValueError(
                    f"feature map rule {rule!r}: expected TARGET=SOURCE or TARGET=SOURCE[0:6,8:14]"
                )
            target, source, indices = match.groups()
            if target in parsed:
                raise ValueError(f"feature map: {target!r} is mapped twice")
            chosen = tuple(_parse_indices(indices, rule)) if indices else None
            parsed[target] = MappedFeature(source, chosen)
        return cls(parsed)

    def source_of(self, target: str) -> str:
        """The dataset feature that ``target`` is read from."""
        return self.rules[target].source if target in self.rules else target

    def indices_of(self, target: str) -> list[int] | None:
        """The entries of the source that ``target`` takes, in order; None for all."""
        rule = self.rules.get(target)
        return list(rule.indices) if rule is not None and rule.indices is not None else None

    def served_names(self, dataset_features: list[str]) -> list[str]:
        """The names the loader serves for a dataset with ``dataset_features``."""
        sources = {rule.source for rule in self.rules.values()}
        kept = [name for name in dataset_features if name not in sources]
        return kept + [target for target in self.rules if target not in kept]
