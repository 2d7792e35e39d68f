"""The conversations a chat model is asked: plan, check and replan, and the feedback after a
rejected answer; and their OpenAI chat-completions form, images as base64 PNG data URLs.

A ``Message`` holds text and images (uint8 H×W×3 arrays) in order; each backend turns it into
its own format (``openai_messages`` for HTTP servers, a chat template for transformers). Every
prompt states the answer's JSON schema, so that a backend without constrained decoding can still
be told what to write.

Example:
    >>> import numpy as np
    >>> seen = BrainObservation({"cam_high": np.zeros((48, 64, 3), np.uint8)}, objects=("peg",))
    >>> system, user = plan_messages("insert the peg into the socket", seen)
    >>> openai_messages([user])[0]["content"][1]["image_url"]["url"][:22]
    'data:image/png;base64,'
"""

import base64
import io
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from kinema.policies.brain.planner import PlanHistory
from kinema.policies.brain.schema import VERDICT_SCHEMA, plan_schema
from kinema.policies.brain.types import BrainObservation
from kinema.skills import ARMS, SKILLS
from kinema.types import Subtask

Part = str | np.ndarray
"""A piece of a message: text, or a uint8 (H, W, 3) RGB image."""


@dataclass(frozen=True, eq=False)
class Message:
    """One chat message: a role and its parts (text and images) in order."""

    role: Literal["system", "user", "assistant"]
    parts: tuple[Part, ...]

    def __post_init__(self) -> None:
        if self.role != "user" and self.images:
            raise ValueError(f"Message: only user messages carry images, got a {self.role} one")

    @property
    def text(self) -> str:
        """The message's text parts, joined by newlines (images left out)."""
        return "\n".join(part for part in self.parts if isinstance(part, str))

    @property
    def images(self) -> list[np.ndarray]:
        return [part for part in self.parts if isinstance(part, np.ndarray)]


def _skills_text() -> str:
    lines = []
    for skill, spec in SKILLS.items():
        arms = " or ".join(f'"{arm}"' for arm in spec.arms)
        lines.append(f'- "{skill}" (arm {arms}): {spec.description}')
    return "\n".join(lines)


def _objects_text(observation: BrainObservation) -> str:
    if observation.objects is None:
        return "Objects in the scene: name them as you see them."
    return "Objects in the scene (use these names exactly): " + ", ".join(observation.objects)


def _camera_parts(observation: BrainObservation) -> tuple[Part, ...]:
    parts: list[Part] = []
    for camera, image in observation.images.items():
        parts += [f"Camera {camera}:", image]
    return tuple(parts)


def _plan_system(objects: tuple[str, ...] | None) -> Message:
    schema = json.dumps(plan_schema(objects))
    return Message(
        "system",
        (
            "You plan for a robot with two arms (left and right), each with a gripper. Split the "
            "instruction into the shortest sequence of subtasks its policy can execute, in "
            f"order. The policy knows these skills, and arms {', '.join(ARMS)}:\n{_skills_text()}"
            "\nName only objects in the scene. Answer with JSON only, matching this schema:\n"
            + schema,
        ),
    )


def plan_messages(instruction: str, observation: BrainObservation) -> list[Message]:
    """The conversation asking for a plan of ``instruction`` from the scene seen now."""
    user = Message(
        "user",
        (
            *_camera_parts(observation),
            _objects_text(observation),
            f"Instruction: {instruction}",
        ),
    )
    return [_plan_system(observation.objects), user]


def replan_messages(history: PlanHistory, observation: BrainObservation) -> list[Message]:
    """The conversation asking for a plan that finishes ``history.instruction`` from the scene
    seen now, after the subtasks tried so far."""
    tried = [
        f"{i}. {subtask.text}: {verdict.status} ({verdict.confidence:.2f}) {verdict.reason}"
        for i, (subtask, verdict) in enumerate(history.attempts, start=1)
    ]
    user = Message(
        "user",
        (
            *_camera_parts(observation),
            _objects_text(observation),
            f"Instruction: {history.instruction}",
            "Subtasks tried so far, with their outcome:\n" + ("\n".join(tried) or "none"),
            "Plan the subtasks that remain to finish the instruction from the scene as it is now.",
        ),
    )
    return [_plan_system(observation.objects), user]


def check_messages(subtask: Subtask, observation: BrainObservation) -> list[Message]:
    """The conversation asking whether ``subtask`` is done, seen now."""
    system = Message(
        "system",
        (
            "You watch a robot with two arms through its cameras and judge one subtask. Answer "
            '"done" if it is accomplished, "not_yet" if it is under way and can still succeed, '
            '"failed" if it can no longer succeed without starting over (the object was dropped '
            "or knocked away). Give your confidence in [0, 1] and a short reason. Answer with "
            "JSON only, matching this schema:\n" + json.dumps(VERDICT_SCHEMA),
        ),
    )
    user = Message("user", (*_camera_parts(observation), f"Subtask: {subtask.text}"))
    return [system, user]


def rejection_messages(answer: str, reason: str) -> list[Message]:
    """The rejected ``answer`` and the feedback asking for a corrected one."""
    return [
        Message("assistant", (answer,)),
        Message(
            "user",
            (
                f"That answer was rejected: {reason}. Answer again with JSON only, matching the "
                "schema.",
            ),
        ),
    ]


def image_data_url(image: np.ndarray) -> str:
    """A uint8 (H, W, 3) RGB image as a ``data:image/png;base64,…`` URL."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The OpenAI chat-completions form of ``messages``: text parts as ``text`` content, images
    as ``image_url`` content with PNG data URLs; text-only system and assistant messages as
    plain strings, which every OpenAI-compatible server accepts."""
    converted = []
    for message in messages:
        if message.role != "user":
            converted.append({"role": message.role, "content": message.text})
            continue
        content = [
            {"type": "text", "text": part}
            if isinstance(part, str)
            else {"type": "image_url", "image_url": {"url": image_data_url(part)}}
            for part in message.parts
        ]
        converted.append({"role": "user", "content": content})
    return converted
