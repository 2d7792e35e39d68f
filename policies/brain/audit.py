"""How often a brain's checks are right while it drives the stack, scored against the simulated
task's ground truth.

A check scored offline (``kinema eval-brain``: frames of the scripted expert) meets only scenes
the expert makes; in closed loop the brain also judges the policy's scenes (a cube held above
its bin, a cube dropped beside it), and a wrong "done" there ends a subtask the policy has not
finished. ``AuditedPlanner`` wraps any planner: each ``check`` also asks the task's predicate
(``OraclePlanner``) about the same subtask at the same moment and keeps both answers.
``BrainAudit.summary`` then scores them with the runner's decisions:

- ``checks``: checks answered (a check that raised is not scored), and of them
- ``false_done``: "done" while the predicate did not hold;
- ``missed_done``: not "done" while it held;
- ``accuracy``: the share of checks that agreed with the predicate;
- ``false_advances``: subtasks the runner ended ("next" or "done" after its confirmations)
  while the predicate did not hold: the errors that cost the episode a subtask.

The predicate is read from the control loop's latest frame when the check is called, so it may
be one or two frames (20–40 ms) newer than the images the brain judges. Subtasks the task's plan
does not hold (a brain's own plan may name others) are not scored.

Example:
    audited = AuditedPlanner(planner, OraclePlanner(lambda: latest["info"]))
    with BrainRunner(audited, instruction) as brain: ...
    audited.audit.summary(brain.decisions)   # {"checks": 61, "false_done": 2, ...}
"""

from dataclasses import dataclass, field
from typing import Any

from kinema.policies.brain.oracle import OraclePlanner
from kinema.policies.brain.planner import PlanHistory, Planner
from kinema.policies.brain.trace import Decision
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask

ADVANCES = ("next", "done")
"""The runner's check outcomes that end the checked subtask as done."""


@dataclass
class BrainAudit:
    """Per check, in call order: whether the task's predicate held (None: not scored) and
    whether the brain said "done" (None: its check raised)."""

    truth: list[bool | None] = field(default_factory=list)
    said_done: list[bool | None] = field(default_factory=list)

    def summary(self, decisions: list[Decision]) -> dict[str, Any]:
        """The figures of the module docstring; ``decisions`` are the runner's, whose "check"
        decisions come one per check, in the same order."""
        checks = [d for d in decisions if d.kind == "check"]
        if len(checks) > len(self.truth):
            raise ValueError(
                f"BrainAudit.summary: {len(checks)} check decisions for {len(self.truth)} "
                "audited checks; pass the decisions of the runner that used this planner"
            )
        # One more audited check than decisions: the episode ended while it was under way.
        answers = zip(self.truth, self.said_done, checks, strict=False)
        scored = [
            (truth, said, decision.outcome)
            for truth, said, decision in answers
            if truth is not None and said is not None
        ]
        return with_accuracy(
            {
                "checks": len(scored),
                "false_done": sum(said and not truth for truth, said, _ in scored),
                "missed_done": sum(truth and not said for truth, said, _ in scored),
                "false_advances": sum(
                    outcome in ADVANCES and not truth for truth, _, outcome in scored
                ),
            }
        )


COUNTS = ("checks", "false_done", "missed_done", "false_advances")
"""The summary's counts; ``accuracy`` is derived from them."""


def with_accuracy(counts: dict[str, int]) -> dict[str, Any]:
    """``counts`` (``COUNTS``) and the accuracy they give: 1 - (false_done + missed_done) /
    checks, None when nothing was scored."""
    wrong, checks = counts["false_done"] + counts["missed_done"], counts["checks"]
    return {**counts, "accuracy": round(1 - wrong / checks, 4) if checks else None}


def total_audit(summaries: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Several episodes' ``BrainAudit.summary`` added up; None when any is None (an episode
    with no ground truth, on real arms)."""
    if any(summary is None for summary in summaries):
        return None
    return with_accuracy({name: sum(summary[name] for summary in summaries) for name in COUNTS})


class AuditedPlanner:
    """``planner``, with each check scored against ``truth`` in ``audit`` (module docstring)."""

    def __init__(self, planner: Planner, truth: OraclePlanner):
        self.planner = planner
        self.truth = truth
        self.audit = BrainAudit()

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        return self.planner.plan(instruction, observation)

    def replan(self, history: PlanHistory, observation: BrainObservation) -> list[Subtask]:
        return self.planner.replan(history, observation)

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        try:
            truth: bool | None = self.truth.check(subtask, observation).status == "done"
        except ValueError:  # not a subtask of the task's plan: nothing to score it against
            truth = None
        self.audit.truth.append(truth)
        self.audit.said_done.append(None)  # until the brain answers
        verdict = self.planner.check(subtask, observation)
        self.audit.said_done[-1] = verdict.status == "done"
        return verdict
