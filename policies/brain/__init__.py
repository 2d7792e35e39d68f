"""kinema.policies.brain: the vision-language planner above the policy (see DESIGN.md).

It turns an instruction into subtasks the policy knows (``plan``), judges each from camera
images (``check``) and plans again after failures (``replan``); ``BrainRunner`` runs it beside
the 50 Hz control loop. Backends: ``HttpPlanner`` (OpenAI-compatible servers),
``TransformersPlanner`` (a local VLM; imported on first use, as it loads torch),
``EmbeddedPlanner`` (the compact model the project trains and ships; also imported on first use)
and ``OraclePlanner`` (the simulator's ground truth).

Example:
    from kinema.policies.brain import BrainRunner, HttpPlanner, HttpPlannerConfig
    planner = HttpPlanner(HttpPlannerConfig("http://127.0.0.1:8000/v1", "qwen2.5-vl"))
    with BrainRunner(planner, "sort the cubes into the bins") as brain:
        brain.update(observation)
        brain.current_subtask(), brain.hold
"""

from typing import Any

from kinema.policies.brain.http_backend import HttpPlanner, HttpPlannerConfig
from kinema.policies.brain.oracle import OraclePlanner, scene_objects
from kinema.policies.brain.planner import BrainError, PlanHistory, Planner
from kinema.policies.brain.runtime import BrainRunner, BrainRunnerConfig
from kinema.policies.brain.schema import (
    VERDICT_SCHEMA,
    PlanError,
    parse_plan,
    parse_verdict,
    plan_schema,
)
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.skills import SKILLS, subtask_text


def __getattr__(name: str) -> Any:
    if name in ("TransformersPlanner", "TransformersPlannerConfig"):
        from kinema.policies.brain import transformers_backend

        return getattr(transformers_backend, name)
    if name == "EmbeddedPlanner":
        from kinema.policies.brain import embedded

        return embedded.EmbeddedPlanner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SKILLS",
    "VERDICT_SCHEMA",
    "BrainError",
    "BrainObservation",
    "BrainRunner",
    "BrainRunnerConfig",
    "HttpPlanner",
    "HttpPlannerConfig",
    "OraclePlanner",
    "PlanError",
    "PlanHistory",
    "Planner",
    "TransformersPlanner",
    "TransformersPlannerConfig",
    "Verdict",
    "parse_plan",
    "parse_verdict",
    "plan_schema",
    "scene_objects",
    "subtask_text",
]
