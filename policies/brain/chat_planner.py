"""The part every chat-model backend shares: build the conversation (``prompts``), ask the
model, parse the answer (``schema``), and retry on failure.

A backend implements one method, ``complete(messages, schema, name) -> str``, and raises
``Unanswered`` when the model could not answer this time (a timeout, a server error, a malformed
response). ``ChatPlanner`` tries ``1 + retries`` times: after ``Unanswered`` it asks again the
same; after an answer ``parse_plan`` or ``parse_verdict`` rejects, it asks again with the answer
and the reason for the rejection appended to the conversation. When every attempt fails it
raises ``BrainError`` listing what failed each time.

Example:
    class EchoPlanner(ChatPlanner):
        def complete(self, messages, schema, name):
            return '{"status": "done", "confidence": 1.0, "reason": "always"}'

    EchoPlanner(retries=1).check(subtask, observation).status   # "done"
"""

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from kinema.policies.brain.planner import BrainError, PlanHistory
from kinema.policies.brain.prompts import (
    Message,
    check_messages,
    plan_messages,
    rejection_messages,
    replan_messages,
)
from kinema.policies.brain.schema import (
    VERDICT_SCHEMA,
    PlanError,
    parse_plan,
    parse_verdict,
    plan_schema,
)
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.types import Subtask

Answer = TypeVar("Answer")


class Unanswered(Exception):
    """The model gave no answer this time (timeout, server error, malformed response); another
    attempt may succeed. The message says what happened."""


def _quoted(text: str, limit: int = 300) -> str:
    """``text`` as a JSON string (escaped, double-quoted), cut after ``limit`` characters."""
    return json.dumps(text[:limit]) + ("…" if len(text) > limit else "")


class ChatPlanner(ABC):
    """A ``Planner`` over a chat model (see the module docstring).

    Args:
        retries: attempts after the first, for each plan, check or replan.
        retry_delay_s: pause before an attempt that follows an ``Unanswered``, seconds.
        known_texts: the subtask texts the policy was trained on; plans with others are
            rejected (None accepts every text the skills can phrase).
    """

    def __init__(
        self,
        retries: int = 2,
        retry_delay_s: float = 0.0,
        known_texts: Collection[str] | None = None,
    ):
        if retries < 0:
            raise ValueError(f"{type(self).__name__}: retries must be >= 0, got {retries}")
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.known_texts = known_texts

    @abstractmethod
    def complete(self, messages: list[Message], schema: dict[str, Any], name: str) -> str:
        """The model's answer to ``messages``, constrained to ``schema`` where the backend can
        (``name``: "plan" or "verdict"). Raises ``Unanswered`` for a failure worth retrying,
        ``BrainError`` for one that is not (a request the server refuses)."""

    def plan(self, instruction: str, observation: BrainObservation) -> list[Subtask]:
        return self._ask(
            "plan",
            plan_messages(instruction, observation),
            plan_schema(observation.objects),
            lambda answer: parse_plan(answer, observation.objects, self.known_texts),
        )

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        return self._ask(
            "check", check_messages(subtask, observation), VERDICT_SCHEMA, parse_verdict
        )

    def replan(self, history: PlanHistory, observation: BrainObservation) -> list[Subtask]:
        return self._ask(
            "replan",
            replan_messages(history, observation),
            plan_schema(observation.objects),
            lambda answer: parse_plan(answer, observation.objects, self.known_texts),
        )

    def _ask(
        self,
        what: str,
        messages: list[Message],
        schema: dict[str, Any],
        parse: Callable[[str], Answer],
    ) -> Answer:
        schema_name = "verdict" if what == "check" else "plan"
        failures: list[str] = []
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                answer = self.complete(messages, schema, schema_name)
            except Unanswered as error:
                failures.append(f"attempt {attempt}: {error}")
                if attempt < attempts:
                    time.sleep(self.retry_delay_s)
                continue
            try:
                return parse(answer)
            except PlanError as error:
                failures.append(f"attempt {attempt}: answer {_quoted(answer)} rejected: {error}")
                messages = [*messages, *rejection_messages(answer, str(error))]
        plural = "s" if attempts > 1 else ""
        raise BrainError(
            f"{type(self).__name__}.{what} failed after {attempts} attempt{plural}: "
            + "; ".join(failures)
        )
