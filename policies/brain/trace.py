"""The record of every decision the brain makes in an episode, for reading after the fact.

A trace directory holds ``decisions.jsonl`` (one JSON object per decision, in order) and one
thumbnail PNG of the first camera per decision, named in the record's ``thumbnail`` field.

Example:
    trace = DecisionTrace(Path("outputs/brain/episode_0003"))
    trace.record(Decision(1.02, "check", "pick up the red cube with the right arm", {...},
                          None, 0.41, "next"), image)
    [json.loads(line) for line in open(trace.log_path)]
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

DecisionKind = Literal["plan", "check", "replan"]


@dataclass(frozen=True)
class Decision:
    """One planner call and what the runner did with its answer.

    Attributes:
        time_s: when the call began, on the robot's clock (the observation's time), seconds.
        kind: which planner call: "plan", "check" or "replan".
        prompt: what was asked, in short (the instruction, or the subtask checked).
        answer: the answer as JSON (the subtask texts, or the verdict); None when it raised.
        error: the error the call raised, or None.
        latency_s: how long the call took, wall-clock seconds.
        outcome: what the runner did next: "run" (a plan began), "continue", "confirm" (a
            "done" to be confirmed by the next check), "next", "retry", "replan", "done" (the
            plan is finished), "gave_up", or "hold" (the brain could not decide).
    """

    time_s: float
    kind: DecisionKind
    prompt: str
    answer: Any
    error: str | None
    latency_s: float
    outcome: str


class DecisionTrace:
    """Writes decisions and thumbnails to ``directory`` (created if missing).

    Args:
        directory: where this episode's trace goes.
        thumbnail_width_px: thumbnails are scaled to this width, keeping the aspect ratio.
    """

    def __init__(self, directory: Path, thumbnail_width_px: int = 160):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory / "decisions.jsonl"
        self.thumbnail_width_px = thumbnail_width_px
        self.count = 0

    def record(self, decision: Decision, image: np.ndarray | None) -> None:
        """Append ``decision``, with a thumbnail of ``image`` (uint8 H×W×3) when given."""
        self.count += 1
        entry = asdict(decision)
        entry["thumbnail"] = None
        if image is not None:
            name = f"{self.count:04d}_{decision.kind}.png"
            thumbnail = Image.fromarray(image)
            height = max(1, round(image.shape[0] * self.thumbnail_width_px / image.shape[1]))
            thumbnail.resize((self.thumbnail_width_px, height)).save(self.directory / name)
            entry["thumbnail"] = name
        with self.log_path.open("a") as log:
            log.write(json.dumps(entry) + "\n")
