"""The brain's plan and verdict schemas, the parser, the canonical subtask texts (checked
against the simulated tasks' own ground-truth plans) and the prompts."""

import base64
import io
import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import kinema.sim  # noqa: F401  (registers the environments)
from kinema.policies.brain.planner import PlanHistory
from kinema.policies.brain.prompts import (
    check_messages,
    openai_messages,
    plan_messages,
    rejection_messages,
    replan_messages,
)
from kinema.policies.brain.schema import (
    VERDICT_SCHEMA,
    PlanError,
    extract_json,
    parse_plan,
    parse_verdict,
    plan_schema,
)
from kinema.policies.brain.schema_check import schema_errors
from kinema.policies.brain.types import BrainObservation, Verdict
from kinema.sim.tasks import TASKS
from kinema.skills import subtask_text

OBJECTS = ("red cube", "purple cube", "purple bin")


def entry(skill: str, arm: str, object: str, target: str | None) -> dict:
    return {"skill": skill, "arm": arm, "object": object, "target": target}


@pytest.fixture(scope="module")
def ground_truth_plans() -> dict[str, list]:
    """Each task's ground-truth plans for seeds 0–5, from the environments themselves."""
    plans = {}
    for name in TASKS:
        env = gym.make(f"kinema/{name}-v0")
        plans[name] = [env.reset(seed=seed)[1]["subtasks"] for seed in range(6)]
        env.close()
    return plans


def test_subtask_text_reproduces_every_tasks_phrasing(ground_truth_plans):
    for plans in ground_truth_plans.values():
        for plan in plans:
            for subtask in plan:
                text = subtask_text(subtask.skill, subtask.arm, subtask.object, subtask.target)
                assert text == subtask.text


def test_parse_plan_rebuilds_the_ground_truth_subtasks(ground_truth_plans):
    for plans in ground_truth_plans.values():
        for plan in plans:
            objects = {name for s in plan for name in (s.object, s.target) if name is not None}
            answer = {"subtasks": [entry(s.skill, s.arm, s.object, s.target) for s in plan]}
            # Equal Subtask values: same text, skill, arm, object, target and time budget.
            assert parse_plan(json.dumps(answer), sorted(objects)) == list(plan)


def test_subtask_text_rejects_an_arm_the_skill_does_not_take():
    with pytest.raises(ValueError, match=r"skill 'insert' is done by arm both, got 'left'"):
        subtask_text("insert", "left", "peg", "socket")


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (entry("pick", "right", "green cube", None), "'green cube' is not one of"),
        (entry("fly", "right", "red cube", None), "$.subtasks[0].skill: 'fly' is not one of"),
        (entry("pick", "middle", "red cube", None), "$.subtasks[0].arm: 'middle' is not one of"),
        (entry("put_in", "left", "red cube", "green bin"), "$.subtasks[0].target"),
        (entry("put_in", "both", "red cube", "purple bin"), "is done by arm left or right"),
        (entry("put_in", "left", "red cube", None), "skill 'put_in' needs a target"),
        (entry("pick", "left", "red cube", "purple bin"), "skill 'pick' takes no target"),
        (entry("put_in", "left", "purple bin", "purple bin"), "cannot be its own target"),
        ({**entry("pick", "left", "red cube", None), "speed": 2}, "unexpected key 'speed'"),
        ({"skill": "pick", "arm": "left", "object": "red cube"}, "missing 'target'"),
    ],
)
def test_parse_plan_rejects_with_the_reason(step, reason):
    with pytest.raises(PlanError) as error:
        parse_plan({"subtasks": [step]}, OBJECTS)
    assert reason in str(error.value)


def test_parse_plan_reports_every_bad_subtask_and_needs_one():
    steps = [entry("pick", "left", "green cube", None), entry("pick", "up", "red cube", None)]
    with pytest.raises(PlanError) as error:
        parse_plan({"subtasks": steps}, OBJECTS)
    assert "$.subtasks[0].object" in str(error.value)
    assert "$.subtasks[1].arm" in str(error.value)
    with pytest.raises(PlanError, match="at least 1 items"):
        parse_plan({"subtasks": []}, OBJECTS)


def test_parse_plan_rejects_texts_the_policy_does_not_know():
    known = {"pick up the red cube with the right arm"}
    assert parse_plan({"subtasks": [entry("pick", "right", "red cube", None)]}, OBJECTS, known)
    with pytest.raises(PlanError, match="does not know the subtask 'pick up the red cube with"):
        parse_plan({"subtasks": [entry("pick", "left", "red cube", None)]}, OBJECTS, known)


def test_parse_plan_accepts_any_object_when_the_scene_is_unknown():
    (subtask,) = parse_plan({"subtasks": [entry("pick", "left", "green cube", None)]}, None)
    assert subtask.text == "pick up the green cube with the left arm"
    assert subtask.time_budget_s == 4.0


def test_answers_are_found_in_prose_and_code_fences():
    text = 'Sure! Here is the plan:\n```json\n{"subtasks": [{"skill": "pick", "arm": "right", '
    text += '"object": "red cube", "target": null}]}\n```\nGood luck {not json}'
    assert parse_plan(text, OBJECTS)[0].arm == "right"
    assert extract_json('{bad} then {"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(PlanError, match="holds no JSON object"):
        parse_plan('["pick", "red cube"]', OBJECTS)


def test_parse_verdict():
    verdict = parse_verdict('{"status": "failed", "confidence": 0.8, "reason": "dropped"}')
    assert verdict == Verdict("failed", 0.8, "dropped")
    with pytest.raises(PlanError, match=r"\$.confidence: 1.5 is more than the maximum 1"):
        parse_verdict({"status": "done", "confidence": 1.5, "reason": ""})
    with pytest.raises(PlanError, match=r"\$.status: 'maybe' is not one of"):
        parse_verdict({"status": "maybe", "confidence": 0.5, "reason": ""})


def test_schemas_are_strict_and_list_the_scene():
    schema = plan_schema(OBJECTS)
    step = schema["properties"]["subtasks"]["items"]
    for node in (schema, step, VERDICT_SCHEMA):  # strict mode: every key required, no others
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])
    assert step["properties"]["object"]["enum"] == list(OBJECTS)
    assert step["properties"]["skill"]["enum"] == [
        "pick",
        "handover",
        "insert",
        "put_in",
        "stack_on",
    ]
    with pytest.raises(ValueError, match="at least one object"):
        plan_schema(())


def test_schema_errors_type_rules():
    assert schema_errors(True, {"type": "number"}) == ["$: expected number, got True"]
    assert schema_errors(3, {"type": "integer", "maximum": 2}) == [
        "$: 3 is more than the maximum 2"
    ]
    assert schema_errors(None, {"anyOf": [{"type": "string"}, {"type": "null"}]}) == []
    with pytest.raises(ValueError, match="unsupported schema keywords \\['pattern'\\]"):
        schema_errors("a", {"type": "string", "pattern": "a+"})


def observation() -> BrainObservation:
    rng = np.random.default_rng(0)
    images = {
        "cam_high": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
        "cam_left_wrist": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
    }
    return BrainObservation(images, time_s=2.0, objects=OBJECTS)


def decode_data_url(url: str) -> np.ndarray:
    header, data = url.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def test_plan_prompt_carries_instruction_objects_skills_schema_and_images():
    seen = observation()
    system, user = openai_messages(plan_messages("put the cube in the bin", seen))
    assert json.dumps(plan_schema(OBJECTS)) in system["content"]
    assert '"stack_on" (arm "left" or "right")' in system["content"]
    texts = [part["text"] for part in user["content"] if part["type"] == "text"]
    urls = [part["image_url"]["url"] for part in user["content"] if part["type"] == "image_url"]
    assert texts[:2] == ["Camera cam_high:", "Camera cam_left_wrist:"]
    assert "red cube, purple cube, purple bin" in texts[2]
    assert texts[3] == "Instruction: put the cube in the bin"
    for url, image in zip(urls, seen.images.values(), strict=True):
        np.testing.assert_array_equal(decode_data_url(url), image)


def test_check_and_replan_prompts():
    seen = observation()
    subtask = parse_plan({"subtasks": [entry("pick", "right", "red cube", None)]}, OBJECTS)[0]
    system, user = check_messages(subtask, seen)
    assert json.dumps(VERDICT_SCHEMA) in system.text
    assert user.text.endswith("Subtask: pick up the red cube with the right arm")
    assert len(user.images) == 2
    history = PlanHistory("tidy up", ((subtask, Verdict("failed", 0.7, "it slipped")),))
    _, user = replan_messages(history, seen)
    assert "1. pick up the red cube with the right arm: failed (0.70) it slipped" in user.text
    answer, feedback = rejection_messages("{}", "$: missing 'subtasks'")
    assert (answer.role, answer.text) == ("assistant", "{}")
    assert "rejected: $: missing 'subtasks'" in feedback.text


def test_observation_and_verdict_validate():
    with pytest.raises(ValueError, match=r"image 'cam' must be uint8 \(H, W, 3\), got float64"):
        BrainObservation({"cam": np.zeros((4, 4, 3))})
    with pytest.raises(ValueError, match="confidence must be in \\[0, 1\\], got 2"):
        Verdict("done", 2, "")
    seen = BrainObservation.from_env(
        {
            "observation.images.cam_high": np.zeros((4, 4, 3), np.uint8),
            "observation.state": np.zeros(14),
        }
    )
    assert list(seen.images) == ["cam_high"]
