"""The JSON a planner answers with, and how an answer becomes ``Subtask`` values or a ``Verdict``.

A plan is ``{"subtasks": [{"skill", "arm", "object", "target"}, ...]}``: skills from
``SKILLS``, arms from ``ARMS``, objects (and targets, or null) from the names present in the
scene. A verdict is ``{"status", "confidence", "reason"}``. Both schemas are strict (every key
required, no others), as OpenAI-compatible servers' ``json_schema`` response formats want them.

``parse_plan`` validates an answer against the schema and the skills' rules (the arms a skill
allows, whether it has a target) and gives each subtask its canonical text and time budget; a
rejected plan raises ``PlanError`` with every reason, which backends feed back to the model.

Example:
    >>> step = '{"skill": "pick", "arm": "right", "object": "red cube", "target": null}'
    >>> answer = '{"subtasks": [' + step + ']}'
    >>> parse_plan(answer, objects=("red cube",))[0].text
    'pick up the red cube with the right arm'
    >>> parse_plan(answer, objects=("peg",))
    Traceback (most recent call last):
    kinema.policies.brain.schema.PlanError: $.subtasks[0].object: 'red cube' is not one of ['peg']
"""

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from kinema.policies.brain.schema_check import schema_errors
from kinema.policies.brain.types import VERDICT_STATUSES, Verdict
from kinema.skills import ARMS, SKILLS, subtask_text
from kinema.types import Subtask


class PlanError(ValueError):
    """An answer is not a valid plan (or verdict); the message gives every reason."""


def _name_schema(objects: Sequence[str] | None) -> dict[str, Any]:
    if objects is None:
        return {"type": "string"}
    if not objects:
        raise ValueError("objects must name at least one object in the scene (None: unknown)")
    return {"type": "string", "enum": list(objects)}


def plan_schema(objects: Sequence[str] | None) -> dict[str, Any]:
    """The JSON schema of a plan over the scene's ``objects`` (None: any object name)."""
    name = _name_schema(objects)
    step = {
        "type": "object",
        "properties": {
            "skill": {"type": "string", "enum": list(SKILLS)},
            "arm": {"type": "string", "enum": list(ARMS)},
            "object": name,
            "target": {"anyOf": [name, {"type": "null"}]},
        },
        "required": ["skill", "arm", "object", "target"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"subtasks": {"type": "array", "items": step, "minItems": 1}},
        "required": ["subtasks"],
        "additionalProperties": False,
    }


VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": list(VERDICT_STATUSES)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["status", "confidence", "reason"],
    "additionalProperties": False,
}
"""The JSON schema of a verdict."""


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``: the whole text, or one embedded in prose or a
    Markdown code fence, as small models often write it.

    Raises:
        PlanError: if ``text`` holds no JSON object.
    """
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise PlanError("the answer holds no JSON object")


def _as_json(answer: str | Mapping[str, Any]) -> dict[str, Any]:
    return extract_json(answer) if isinstance(answer, str) else dict(answer)


def parse_plan(
    answer: str | Mapping[str, Any],
    objects: Sequence[str] | None,
    known_texts: Collection[str] | None = None,
) -> list[Subtask]:
    """The subtasks of a plan answer (JSON text or the parsed object).

    Args:
        answer: the planner's answer, ``{"subtasks": [...]}``.
        objects: the names of the objects in the scene; None accepts any name.
        known_texts: the subtask texts the policy was trained on; when given, a subtask whose
            canonical text is not among them is rejected.

    Raises:
        PlanError: naming every reason the plan is rejected (not JSON, off the schema, an
            absent object, an unknown skill or arm, an arm or target the skill does not take,
            an object that is its own target, a text the policy does not know).
    """
    plan = _as_json(answer)
    errors = schema_errors(plan, plan_schema(objects))
    if errors:
        raise PlanError("; ".join(errors))
    subtasks = []
    for index, step in enumerate(plan["subtasks"]):
        where = f"$.subtasks[{index}]"
        if step["object"] == step["target"]:
            errors.append(f"{where}: the object {step['object']!r} cannot be its own target")
            continue
        try:
            text = subtask_text(step["skill"], step["arm"], step["object"], step["target"])
        except ValueError as error:
            errors.append(f"{where}: {str(error).removeprefix('subtask_text: ')}")
            continue
        if known_texts is not None and text not in known_texts:
            errors.append(f"{where}: the policy does not know the subtask {text!r}")
            continue
        budget = SKILLS[step["skill"]].time_budget_s
        subtasks.append(
            Subtask(text, step["skill"], step["arm"], step["object"], step["target"], budget)
        )
    if errors:
        raise PlanError("; ".join(errors))
    return subtasks


def parse_verdict(answer: str | Mapping[str, Any]) -> Verdict:
    """The verdict of a check answer (JSON text or the parsed object).

    Raises:
        PlanError: if the answer is not JSON or breaks ``VERDICT_SCHEMA``.
    """
    verdict = _as_json(answer)
    errors = schema_errors(verdict, VERDICT_SCHEMA)
    if errors:
        raise PlanError("; ".join(errors))
    return Verdict(verdict["status"], float(verdict["confidence"]), verdict["reason"])
