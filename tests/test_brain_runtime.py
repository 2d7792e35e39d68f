"""BrainRunner beside a 50 Hz loop, with a scripted planner: subtask switching, retries and
replans on failure and on spent time budgets, holding when the brain fails or gives up, the
trace on disk, and a slow brain that never delays the loop (measured)."""

import json
import random
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from kinema.policies.brain.audit import AuditedPlanner
from kinema.policies.brain.oracle import OraclePlanner
from kinema.policies.brain.planner import PlanHistory
from kinema.policies.brain.runtime import BrainRunner, BrainRunnerConfig
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask

FRAME_S = 0.02
IMAGE = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def pick(object: str, budget_s: float = 5.0) -> Subtask:
    return Subtask(
        f"pick up the {object} with the right arm", "pick", "right", object, None, budget_s
    )


A, B, C = pick("red cube"), pick("peg"), pick("socket")


class ScriptedPlanner:
    """Plans from a list (one per plan or replan call) and checks from per-subtask verdict
    scripts (the last status repeats); "raise" raises instead. Each call may sleep first."""

    def __init__(
        self,
        plans: list[list[Subtask] | str],
        verdicts: dict[str, list[str]],
        delay_s: Callable[[], float] = lambda: 0.0,
    ):
        self.plans = list(plans)
        self.verdicts = {text: list(script) for text, script in verdicts.items()}
        self.delay_s = delay_s
        self.calls: list[tuple[str, object]] = []

    def _next_plan(self) -> list[Subtask]:
        plan = self.plans.pop(0) if len(self.plans) > 1 else self.plans[0]
        if plan == "raise":
            raise RuntimeError("planner is down")
        return list(plan)

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        self.calls.append(("plan", instruction))
        time.sleep(self.delay_s())
        return self._next_plan()

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        self.calls.append(("check", subtask.text))
        time.sleep(self.delay_s())
        script = self.verdicts[subtask.text]
        status = script.pop(0) if len(script) > 1 else script[0]
        if status == "raise":
            raise RuntimeError("checker is down")
        return Verdict(status, 0.9, f"scripted {status}")

    def replan(self, history: PlanHistory, observation: BrainObservation) -> list[Subtask]:
        self.calls.append(("replan", history))
        time.sleep(self.delay_s())
        return self._next_plan()


def drive(
    runner: BrainRunner, until: Callable[[BrainRunner], bool], timeout_s: float = 4.0
) -> list[tuple[float, str | None, bool]]:
    """Play the control loop at 50 Hz, robot clock = wall clock since start, until ``until``
    holds; returns (time, current subtask text, hold) of every frame."""
    frames = []
    start = time.monotonic()
    while (now := time.monotonic() - start) < timeout_s:
        runner.update(BrainObservation({"cam_high": IMAGE}, time_s=now))
        subtask = runner.current_subtask()
        frames.append((now, subtask.text if subtask else None, runner.hold))
        if until(runner):
            break
        time.sleep(FRAME_S)
    return frames


def texts_in_order(frames: list[tuple[float, str | None, bool]]) -> list[str | None]:
    """The current subtask texts as they changed."""
    changes = [frames[0][1]]
    for _, text, _ in frames[1:]:
        if text != changes[-1]:
            changes.append(text)
    return changes


FAST = BrainRunnerConfig(check_period_s=0.05, poll_s=0.005, done_confirmations=1)


def test_subtasks_switch_when_done_and_the_episode_ends():
    planner = ScriptedPlanner([[A, B]], {A.text: ["not_yet", "done"], B.text: ["done"]})
    with BrainRunner(planner, "pick things", FAST) as runner:
        assert runner.hold and runner.current_subtask() is None  # nothing planned yet
        frames = drive(runner, lambda r: r.done)
    assert runner.done and runner.hold
    assert texts_in_order(frames) == [None, A.text, B.text, None]
    assert [(d.kind, d.outcome) for d in runner.decisions] == [
        ("plan", "run"),
        ("check", "continue"),
        ("check", "next"),
        ("check", "done"),
    ]
    assert not any(hold for _, text, hold in frames if text is not None)


def test_a_done_moves_on_only_when_the_next_checks_confirm_it():
    # A detector wrong on one frame must not end the subtask: "done" twice in a row does.
    planner = ScriptedPlanner(
        [[A, B]],
        {A.text: ["not_yet", "done", "not_yet", "done", "raise", "done", "done"], B.text: ["done"]},
    )
    config = replace(FAST, done_confirmations=2)
    with BrainRunner(planner, "pick things", config) as runner:
        frames = drive(runner, lambda r: r.done)
    assert texts_in_order(frames) == [None, A.text, B.text, None]
    assert [d.outcome for d in runner.decisions] == [
        "run",
        "continue",
        "confirm",
        "continue",
        "confirm",
        "continue",
        "confirm",
        "next",
        "confirm",
        "done",
    ]
    with pytest.raises(ValueError, match="done_confirmations"):
        BrainRunnerConfig(done_confirmations=0)


def test_the_audit_scores_each_answered_check_and_each_subtask_ended_early():
    # The task's plan is A then B; the brain plans A, C (not in the task's plan), B. A's
    # predicate holds from the fourth check on, B's always.
    planner = ScriptedPlanner(
        [[A, C, B]], {A.text: ["raise", "not_yet", "done"], C.text: ["done"], B.text: ["done"]}
    )

    def task_info() -> dict:
        return {"subtasks": [A, B], "subtasks_done": [len(audited.audit.truth) >= 3, True]}

    audited = AuditedPlanner(planner, OraclePlanner(task_info))
    with BrainRunner(audited, "pick things", FAST) as runner:
        drive(runner, lambda r: r.done)
    outcomes = [d.outcome for d in runner.decisions if d.kind == "check"]
    assert outcomes == ["continue", "continue", "next", "next", "done"]
    assert audited.audit.truth == [False, False, False, None, True]
    assert audited.audit.said_done == [None, False, True, True, True]
    # Scored: A's not_yet (right), A's done (wrong, and it ended A), B's done (right).
    assert audited.audit.summary(runner.decisions) == {
        "checks": 3,
        "false_done": 1,
        "missed_done": 0,
        "accuracy": 0.6667,
        "false_advances": 1,
    }
    with pytest.raises(ValueError, match="check decisions"):
        audited.audit.summary(runner.decisions * 2)


def test_a_failed_subtask_is_retried_then_replanned():
    planner = ScriptedPlanner([[A, B], [C]], {A.text: ["failed"], C.text: ["done"]})
    config = replace(FAST, subtask_retries=1)
    with BrainRunner(planner, "pick things", config) as runner:
        frames = drive(runner, lambda r: r.done)
    assert runner.done
    assert [text for text in texts_in_order(frames) if text] == [A.text, C.text]
    assert [d.outcome for d in runner.decisions] == ["run", "retry", "replan", "run", "done"]
    ((_, history),) = [call for call in planner.calls if call[0] == "replan"]
    assert history.instruction == "pick things"
    assert [(s, v.status) for s, v in history.attempts] == [(A, "failed"), (A, "failed")]


def test_a_subtask_a_replan_gives_again_counts_once_as_done():
    # A is done, B fails twice, the replan lists A again (a brain's plan from the scene may).
    planner = ScriptedPlanner(
        [[A, B], [A, C]], {A.text: ["done"], B.text: ["failed"], C.text: ["done"]}
    )
    with BrainRunner(planner, "pick things", replace(FAST, subtask_retries=1)) as runner:
        drive(runner, lambda r: r.done)
    assert [d.outcome for d in runner.decisions] == [
        "run",
        "next",
        "retry",
        "replan",
        "run",
        "next",
        "done",
    ]
    assert runner.subtasks_done == 2  # A (twice) and C


def test_a_spent_time_budget_counts_as_a_failure_at_once():
    short = pick("red cube", budget_s=0.3)
    planner = ScriptedPlanner([[short], [C]], {short.text: ["not_yet"], C.text: ["done"]})
    config = BrainRunnerConfig(check_period_s=10.0, poll_s=0.005, subtask_retries=1)
    with BrainRunner(planner, "pick things", config) as runner:
        drive(runner, lambda r: r.current_subtask() == C)
    planned = runner.decisions[0]
    retry, replan = [d for d in runner.decisions if d.outcome in ("retry", "replan")]
    # Checked as soon as each 0.3 s budget was spent, not after the 10 s check period.
    assert 0.3 <= retry.time_s - planned.time_s < 0.5
    assert 0.3 <= replan.time_s - retry.time_s < 0.5
    (_, history) = next(call for call in planner.calls if call[0] == "replan")
    assert [v.reason for _, v in history.attempts] == [
        "time budget of 0.3 s spent; scripted not_yet"
    ] * 2


def test_hold_after_retries_and_replans_are_exhausted():
    planner = ScriptedPlanner([[A]], {A.text: ["failed"]})
    config = replace(FAST, subtask_retries=1, max_replans=1)
    with BrainRunner(planner, "pick things", config) as runner:
        drive(runner, lambda r: r.phase == "gave_up")
        assert runner.wait(1.0)  # the brain's thread has ended
    assert runner.phase == "gave_up" and runner.hold and runner.current_subtask() is None
    assert [kind for kind, _ in planner.calls] == [
        "plan",
        "check",
        "check",
        "replan",
        "check",
        "check",
    ]
    assert [d.outcome for d in runner.decisions][-1] == "replan"


def test_a_failing_brain_lets_the_subtask_run_out_its_budget_then_holds():
    short = pick("red cube", budget_s=0.4)
    planner = ScriptedPlanner([[short]], {short.text: ["raise"]})
    with BrainRunner(planner, "pick things", FAST) as runner:
        frames = drive(runner, lambda r: False, timeout_s=0.8)
    spent_s = runner.decisions[0].time_s + 0.4  # planned at once: the budget ends 0.4 s later
    running = [(t, hold) for t, text, hold in frames if text == short.text]
    before = [hold for t, hold in running if t < spent_s]
    after = [hold for t, hold in running if t > spent_s + 0.05]
    assert before and not any(before)  # the subtask runs on while every check fails
    assert after and all(after)  # then the arms hold
    assert {d.outcome for d in runner.decisions[1:]} == {"continue", "hold"}
    assert "RuntimeError: checker is down" in runner.decisions[-1].error
    assert not [call for call in planner.calls if call[0] == "replan"]


def test_failed_planning_calls_are_tried_again_then_given_up():
    planner = ScriptedPlanner(["raise", [A]], {A.text: ["done"]})
    with BrainRunner(planner, "pick things", FAST) as runner:
        drive(runner, lambda r: r.done)
    assert [(d.kind, d.outcome) for d in runner.decisions] == [
        ("plan", "hold"),
        ("plan", "run"),
        ("check", "done"),
    ]
    planner = ScriptedPlanner(["raise"], {})
    config = replace(FAST, max_replans=1)
    with BrainRunner(planner, "pick things", config) as runner:
        drive(runner, lambda r: r.phase == "gave_up")
    assert [d.outcome for d in runner.decisions] == ["hold", "gave_up"]


def test_the_trace_holds_every_decision_with_a_thumbnail(tmp_path):
    planner = ScriptedPlanner([[A, B]], {A.text: ["not_yet", "done"], B.text: ["done"]})
    config = replace(FAST, trace_dir=tmp_path / "ep0")
    with BrainRunner(planner, "pick things", config) as runner:
        drive(runner, lambda r: r.done)
    lines = (tmp_path / "ep0" / "decisions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["kind"] for r in records] == ["plan", "check", "check", "check"]
    assert records[0]["prompt"] == "pick things"
    assert records[0]["answer"] == [A.text, B.text]
    assert records[2] | {"time_s": 0, "latency_s": 0} == {
        "time_s": 0,
        "kind": "check",
        "prompt": A.text,
        "answer": {"status": "done", "confidence": 0.9, "reason": "scripted done"},
        "error": None,
        "latency_s": 0,
        "outcome": "next",
        "thumbnail": "0003_check.png",
    }
    assert all(r["latency_s"] >= 0 and r["time_s"] >= 0 for r in records)
    for record in records:
        with Image.open(tmp_path / "ep0" / record["thumbnail"]) as thumbnail:
            assert thumbnail.size == (160, 120)


def test_a_slow_brain_never_delays_the_control_loop():
    rng = random.Random(0)
    planner = ScriptedPlanner([[A]], {A.text: ["not_yet"]}, delay_s=lambda: rng.uniform(0.5, 1.0))
    config = BrainRunnerConfig(check_period_s=0.2, poll_s=0.005)
    call_s, frames, loop_s = [], 0, 2.5
    with BrainRunner(planner, "pick things", config) as runner:
        start = next_frame = time.monotonic()
        while time.monotonic() - start < loop_s:
            seen = BrainObservation({"cam_high": IMAGE}, time_s=time.monotonic() - start)
            before = time.perf_counter()
            runner.update(seen)
            runner.current_subtask()
            _ = runner.hold
            call_s.append(time.perf_counter() - before)
            frames += 1
            next_frame += FRAME_S
            time.sleep(max(0.0, next_frame - time.monotonic()))
        calls_made = len(planner.calls)
    assert calls_made >= 3  # the brain was busy all along (a plan, then checks)
    assert max(call_s) < 2e-3, f"slowest update + current_subtask: {max(call_s) * 1e3:.2f} ms"
    assert frames >= 0.95 * loop_s / FRAME_S


class ThreadCountingPlanner(ScriptedPlanner):
    """A ScriptedPlanner that notes PyTorch's intra-op thread count on every call."""

    def __init__(self, *args: object):
        super().__init__(*args)
        self.torch_threads: list[int] = []

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        self.torch_threads.append(torch.get_num_threads())
        return super().plan(instruction, observation)

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        self.torch_threads.append(torch.get_num_threads())
        return super().check(subtask, observation)


def test_the_brain_computes_on_its_own_threads_and_leaves_the_policys_alone():
    policy_threads = torch.get_num_threads()
    planner = ThreadCountingPlanner([[A]], {A.text: ["done"]})
    with BrainRunner(planner, "pick things", FAST) as runner:
        drive(runner, lambda r: r.done)
    assert runner.done
    assert planner.torch_threads == [1, 1]  # the plan and the check
    assert torch.get_num_threads() == policy_threads  # the control loop's thread: unchanged
    with pytest.raises(ValueError, match="torch_threads"):
        BrainRunnerConfig(torch_threads=0)
