"""The brain beside the control loop: a ``Planner`` run on its own thread, checking the current
subtask every 0.2 s (planning when needed), while the loop runs at 50 Hz and never waits for it.

The control loop calls only ``update(observation)`` (stores the latest observation) and
``current_subtask()`` / ``hold`` (read the latest decision); each is an attribute read or write,
so a slow, failing or hung planner never delays a frame. The brain's thread:

1. plans from the instruction once the first observation arrives;
2. about every ``check_period_s`` (and once as soon as the subtask's time budget is spent)
   checks the current subtask on the latest observation:
   done on ``done_confirmations`` checks in a row → the next subtask (none left: the episode
   is done);
   failed, or not done when the budget ``Subtask.time_budget_s`` is spent → the same subtask
   again, up to ``subtask_retries`` times, then a replan from the history of attempts;
3. gives up when a plan is needed and no planning call is left (``max_replans``).

Budgets run on the robot's clock (``BrainObservation.time_s``), so a simulation slower than real
time gets the same budgets as the real robot. ``hold`` tells the loop to hold the arms still:
before the first plan, while replanning, after the episode is done or given up, and whenever the
current subtask is past its budget without a decision (the planner raised or is late; the
subtask runs on until then).

Every planner call is traced (``trace.DecisionTrace``) when ``trace_dir`` is set.

The brain's thread computes with ``torch_threads`` intra-op threads (one by default). PyTorch's
OpenMP thread count belongs to the thread that sets it, so the control loop's thread keeps its
own for the policy; were the brain's thread to start a second team of workers as large as the
machine, the two teams would fight over the same cores: on 2 cores that made the policy's chunks
4× slower (p50 77 ms instead of 20 ms) and 46 of them late in a SortCubes episode.

Example:
    with BrainRunner(planner, "put every cube in its bin", BrainRunnerConfig()) as brain:
        for frame in range(max_frames):
            brain.update(BrainObservation.from_env(observation, time_s=frame * 0.02))
            subtask = brain.current_subtask()
            if brain.done:
                break
            action = hold_action if brain.hold else policy_action(observation, subtask.text)
            observation, *_ = env.step(action)
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from kinema.policies.brain.planner import PlanHistory, Planner
from kinema.policies.brain.trace import Decision, DecisionKind, DecisionTrace
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask

logger = logging.getLogger(__name__)
Result = TypeVar("Result")

Phase = Literal["waiting", "planning", "running", "done", "gave_up"]
"""waiting: for the first observation; planning: a plan or replan call is under way; running: a
subtask is current; done: every subtask of the plan is done; gave_up: no planning call left."""


@dataclass(frozen=True)
class BrainRunnerConfig:
    """How the runner paces and persists.

    Attributes:
        check_period_s: wall-clock seconds between the starts of two checks (5 Hz; a planner
            slower than that checks as fast as it answers). Until a check sees a subtask done,
            the policy goes on with it in a scene it never saw in training (the cube already in
            its bin): SortCubes with the task's own checks succeeded on 45 % of 20 seeds
            checking every 1.0 s and on 95 % every 0.2 s (2026-12-07).
        plan_retry_s: wall-clock seconds before a planning call that raised is tried again (a
            failing server is not asked five times a second).
        done_confirmations: consecutive checks that must answer "done" before the next subtask
            starts (any other answer, or a failed call, starts the count again). A detector
            that is wrong on a fraction p of frames, checked N times while a subtask runs,
            ends it early with probability 1 - (1 - p)^N when one "done" suffices: at 0.2 s
            checks an 8 s subtask is checked 40 times, so p = 0.8 % ends a quarter of them
            early. Each confirmation delays the next subtask by a check period, while the
            policy goes on with a finished subtask. SortCubes, 50 held-out seeds, the policy
            of 80 demonstrations (2026-12-07): the embedded brain succeeded on 34 % with 1,
            54 % with 2 and 60–66 % with 3 (two runs); the ground truth (never wrong, only
            later) on 95 % of 20 with 1 and 70 % with 3. Holding the arms still while
            confirming undid the gain (42 % with 3): a still scene shows the brain the same
            frame it was wrong about. With the policy of 160 demonstrations, 3 gave 98 %.
        subtask_retries: k, how often a failed subtask is started again before replanning.
        max_replans: planning calls allowed after the first: replans after a subtask failed
            k + 1 times, and new tries after a planning call raised.
        poll_s: how often the thread looks at the clock between checks, wall-clock seconds.
        trace_dir: where this episode's decisions are written; None writes none.
        thumbnail_width_px: width of the traced first-camera thumbnails, pixels.
        torch_threads: intra-op threads of the planner's PyTorch work on the brain's thread
            (module docstring).
    """

    check_period_s: float = 0.2
    plan_retry_s: float = 1.0
    done_confirmations: int = 3
    subtask_retries: int = 1
    max_replans: int = 2
    poll_s: float = 0.02
    trace_dir: Path | None = None
    thumbnail_width_px: int = 160
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.torch_threads < 1:
            raise ValueError(
                f"BrainRunnerConfig.torch_threads must be >= 1, got {self.torch_threads}"
            )
        if min(self.check_period_s, self.plan_retry_s, self.poll_s) <= 0:
            raise ValueError(
                f"BrainRunnerConfig: check_period_s, plan_retry_s and poll_s must be > 0, got "
                f"{self.check_period_s}, {self.plan_retry_s} and {self.poll_s}"
            )
        if self.done_confirmations < 1:
            raise ValueError(
                f"BrainRunnerConfig.done_confirmations must be >= 1, got {self.done_confirmations}"
            )
        if self.subtask_retries < 0 or self.max_replans < 0:
            raise ValueError(
                f"BrainRunnerConfig: subtask_retries and max_replans must be >= 0, got "
                f"{self.subtask_retries} and {self.max_replans}"
            )


@dataclass(frozen=True)
class _Published:
    """What the control loop may read; replaced whole (one atomic attribute write)."""

    phase: Phase
    subtask: Subtask | None = None
    deadline_s: float = float("inf")  # robot clock


class BrainRunner:
    """Runs ``planner`` for one episode of ``instruction`` (see the module docstring)."""

    def __init__(
        self, planner: Planner, instruction: str, config: BrainRunnerConfig = BrainRunnerConfig()
    ):
        self.planner = planner
        self.instruction = instruction
        self.config = config
        self.decisions: list[Decision] = []
        self._published = _Published("waiting")
        self._latest: BrainObservation | None = None
        self._observed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="brain", daemon=True)
        self._trace = (
            DecisionTrace(config.trace_dir, config.thumbnail_width_px)
            if config.trace_dir is not None
            else None
        )
        # Owned by the brain's thread.
        self._plan: list[Subtask] = []
        self._attempts: list[tuple[Subtask, Verdict]] = []
        self._failures = 0
        self._dones_in_a_row = 0
        self._planning_calls_left = 1 + config.max_replans
        self._next_check_s = 0.0
        self._budget_checked = False

    # ---- the control loop's side: never blocks ----

    def update(self, observation: BrainObservation) -> None:
        """Store the latest observation for the brain's next call."""
        self._latest = observation
        if not self._observed.is_set():
            self._observed.set()

    def current_subtask(self) -> Subtask | None:
        """The subtask to execute now; None when there is none (see ``phase``)."""
        published = self._published
        return published.subtask if published.phase == "running" else None

    @property
    def hold(self) -> bool:
        """Whether the arms should stand still now (see the module docstring)."""
        published, latest = self._published, self._latest
        if published.phase != "running" or latest is None:
            return True
        return latest.time_s > published.deadline_s

    @property
    def phase(self) -> Phase:
        return self._published.phase

    @property
    def subtasks_done(self) -> int:
        """How many different subtasks the brain has judged done so far (one a replan gives
        again and that is judged done again counts once)."""
        return len(
            {subtask for subtask, verdict in list(self._attempts) if verdict.status == "done"}
        )

    @property
    def done(self) -> bool:
        """Whether every subtask of the plan is done: the episode is over."""
        return self._published.phase == "done"

    # ---- life cycle ----

    def start(self) -> "BrainRunner":
        """Start the brain's thread; it plans once ``update`` gives the first observation."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 1.0) -> None:
        """Ask the thread to end and wait up to ``timeout_s`` for it (a planner call under way
        is not interrupted; the daemon thread ends after it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the episode is done or given up (or the runner stopped); True if so
        within ``timeout_s``. For scripts and tests, not for the control loop."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def __enter__(self) -> "BrainRunner":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- the brain's thread ----

    def _run(self) -> None:
        torch.set_num_threads(self.config.torch_threads)  # this thread's own (module docstring)
        while not self._observed.wait(self.config.poll_s):
            if self._stop.is_set():
                return
        self._new_plan("plan")
        while self._published.phase == "running" and not self._stop.is_set():
            published, latest = self._published, self._latest
            budget_spent = latest.time_s >= published.deadline_s
            due = time.monotonic() >= self._next_check_s
            if not due and (not budget_spent or self._budget_checked):
                self._stop.wait(self.config.poll_s)
                continue
            self._budget_checked |= budget_spent
            self._next_check_s = time.monotonic() + self.config.check_period_s
            self._check(published.subtask)

    def _new_plan(self, kind: Literal["plan", "replan"]) -> None:
        """Plan (or replan) until a call succeeds or no planning call is left."""
        self._published = _Published("planning")
        while not self._stop.is_set():
            if self._planning_calls_left == 0:
                self._published = _Published("gave_up")
                return
            self._planning_calls_left -= 1
            observation = self._latest
            prompt, plan, error, latency_s = self._planning_call(kind, observation)
            if error is None:
                outcome = "run" if plan else "done"
                answer = [subtask.text for subtask in plan]
            else:
                outcome = "hold" if self._planning_calls_left else "gave_up"
                answer = None
            self._record(kind, observation, prompt, answer, error, latency_s, outcome)
            if error is None:
                self._plan = list(plan)
                self._failures = 0
                self._start_next()
                return
            self._stop.wait(self.config.plan_retry_s)

    def _planning_call(
        self, kind: Literal["plan", "replan"], observation: BrainObservation
    ) -> tuple[str, list[Subtask] | None, str | None, float]:
        """(prompt summary, plan, error, seconds) of one plan or replan call."""
        if kind == "plan":
            plan, error, latency_s = self._call(
                lambda: self.planner.plan(self.instruction, observation)
            )
            return self.instruction, plan, error, latency_s
        history = PlanHistory(self.instruction, tuple(self._attempts))
        plan, error, latency_s = self._call(lambda: self.planner.replan(history, observation))
        prompt = f"{self.instruction} (after {len(history.attempts)} attempts)"
        return prompt, plan, error, latency_s

    def _check(self, subtask: Subtask) -> None:
        observation = self._latest
        verdict, error, latency_s = self._call(lambda: self.planner.check(subtask, observation))
        budget_spent = self._latest.time_s >= self._published.deadline_s
        says_done = verdict is not None and verdict.status == "done"
        self._dones_in_a_row = self._dones_in_a_row + 1 if says_done else 0
        if verdict is None:
            outcome = "hold" if budget_spent else "continue"
        elif says_done and self._dones_in_a_row < self.config.done_confirmations:
            outcome = "confirm"
        elif says_done:
            outcome = "next" if len(self._plan) > 1 else "done"
        elif verdict.status == "failed" or budget_spent:
            outcome = "retry" if self._failures < self.config.subtask_retries else "replan"
        else:
            outcome = "continue"
        answer = asdict(verdict) if verdict is not None else None
        self._record("check", observation, subtask.text, answer, error, latency_s, outcome)
        if outcome in ("next", "done"):
            self._attempts.append((subtask, verdict))
            self._plan.pop(0)
            self._failures = 0
            self._start_next()
        elif outcome in ("retry", "replan"):
            if verdict.status != "failed":
                spent = f"time budget of {subtask.time_budget_s:g} s spent"
                verdict = Verdict("failed", 1.0, f"{spent}; {verdict.reason}")
            self._attempts.append((subtask, verdict))
            self._failures += 1
            if outcome == "retry":
                self._start(subtask)
            else:
                self._new_plan("replan")

    def _start_next(self) -> None:
        """Start the plan's first subtask, or end the episode when the plan is empty."""
        if self._plan:
            self._start(self._plan[0])
        else:
            self._published = _Published("done")

    def _start(self, subtask: Subtask) -> None:
        deadline_s = self._latest.time_s + subtask.time_budget_s
        self._next_check_s = time.monotonic() + self.config.check_period_s
        self._budget_checked = False
        self._dones_in_a_row = 0
        self._published = _Published("running", subtask, deadline_s)

    def _call(self, call: Callable[[], Result]) -> tuple[Result | None, str | None, float]:
        """(result, None, seconds) of a planner call, or (None, the error, seconds) if it
        raised: a failing brain is recorded, never allowed to end the thread."""
        start = time.monotonic()
        try:
            result, error = call(), None
        except Exception as exception:
            result, error = None, f"{type(exception).__name__}: {exception}"
            logger.warning("brain: planner call failed: %s", error)
        return result, error, time.monotonic() - start

    def _record(
        self,
        kind: DecisionKind,
        observation: BrainObservation,
        prompt: str,
        answer: Any,
        error: str | None,
        latency_s: float,
        outcome: str,
    ) -> None:
        decision = Decision(observation.time_s, kind, prompt, answer, error, latency_s, outcome)
        self.decisions.append(decision)
        if self._trace is not None:
            image = next(iter(observation.images.values()), None)
            self._trace.record(decision, image)
