"""``kinema eval-brain``: how well a brain plans and checks on held-out simulated episodes.

Plan: for each episode seed ``first_seed`` … (held out: training renders seeds from 0), the scene
at reset is shown with an instruction worded from a held-out template (``phrasings.HELD_OUT``,
cycled over the episodes so each is used), or with the wordings of an ``--instructions`` file
(JSON lines ``{"task", "seed", "instruction"}``; the lines of the evaluated task are scored). A
plan counts when it equals the task's ground-truth plan for that seed, subtask for subtask
(``plan_exact_match``). The brain is told the scene's objects as the stack tells it
(``scene_objects``); ``plan_exact_match_without_objects`` is the same with ``objects=None``.

Check: the first ``check_episodes`` seeds run the scripted expert (``scenes.scene_episode``),
disturbed as in training with probability ``perturbed_fraction``; on a frame every
``frame_every_s`` every subtask of the plan is checked against the task's predicate
(``check_accuracy`` over all (frame, subtask) pairs; done and not-yet recall too).

Rates come with 95 % Wilson intervals; latencies are the wall-clock time of each ``plan`` and
``check`` call (p50 / p95, ms) in this process's torch threads.

Example:
    report = evaluate_brain(BrainEvalConfig(brain="embedded", task="SortCubes", episodes=50))
    report["plan_exact_match"], report["check_accuracy"], report["latency_p50_ms"]
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from kinema.evaluate import wilson_interval
from kinema.policies.brain.embedded import DEFAULT_WEIGHTS, EmbeddedPlanner
from kinema.policies.brain.oracle import OraclePlanner, scene_objects
from kinema.policies.brain.phrasings import Split, phrase, templates
from kinema.policies.brain.planner import BrainError, Planner
from kinema.policies.brain.scenes import CAMERAS, IMAGE_SIZE, draw_perturbation, scene_episode
from kinema.policies.brain.types import BrainObservation
from kinema.sim.env import AlohaEnv
from kinema.sim.rendering import CameraRenderer


@dataclass(frozen=True)
class BrainEvalConfig:
    """What ``evaluate_brain`` measures.

    Attributes:
        brain: "embedded" (the model in ``weights``) or "oracle" (the simulator's ground truth,
            a check of the harness: it scores 1.0).
        weights: the embedded brain's ``save_pretrained`` directory.
        task: the simulated task.
        episodes: plan episodes, seeds ``first_seed`` onwards (ignored with ``instructions``).
        check_episodes: expert episodes whose frames are checked (None: ``episodes``).
        first_seed: the first seed.
        instructions: a JSON-lines file of {"task", "seed", "instruction"} to plan instead.
        phrasings: the templates the plan instructions are worded from.
        perturbed_fraction: the share of check episodes that are disturbed.
        frame_every_s: seconds between checked frames.
        out: where the report and the per-episode results are written as JSON; None: nowhere.
    """

    brain: Literal["embedded", "oracle"] = "embedded"
    weights: Path = DEFAULT_WEIGHTS
    task: str = "TransferCube"
    episodes: int = 50
    check_episodes: int | None = None
    first_seed: int = 100_000
    instructions: Path | None = None
    phrasings: Split = "held_out"
    perturbed_fraction: float = 0.5
    frame_every_s: float = 0.3
    out: Path | None = None


def read_instructions(path: Path, task: str) -> list[tuple[int, str]]:
    """(seed, instruction) of the lines of ``task`` in the JSON-lines file ``path``.

    Raises:
        ValueError: if a line is not {"task", "seed", "instruction"}, or no line is of ``task``.
    """
    cases, tasks = [], set()
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if not isinstance(entry, dict) or set(entry) != {"task", "seed", "instruction"}:
            raise ValueError(
                f"{path}:{number}: expected {{'task', 'seed', 'instruction'}}, got {line!r}"
            )
        tasks.add(entry["task"])
        if entry["task"] == task:
            cases.append((int(entry["seed"]), str(entry["instruction"])))
    if not cases:
        raise ValueError(f"{path}: no instruction of task {task!r}; its tasks: {sorted(tasks)}")
    return cases


class _Brain:
    """The planner under test, and for the oracle the info it answers from."""

    def __init__(self, config: BrainEvalConfig):
        self.info: dict[str, Any] = {}
        self.planner: Planner = (
            EmbeddedPlanner.from_pretrained(config.weights)
            if config.brain == "embedded"
            else OraclePlanner(lambda: self.info)
        )
        self.latencies_ms: dict[str, list[float]] = {"plan": [], "check": []}

    def timed(self, kind: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.latencies_ms[kind].append(1000 * (time.perf_counter() - start))


def _plan_cases(config: BrainEvalConfig, brain: _Brain) -> list[dict[str, Any]]:
    if config.instructions is not None:
        cases = [
            (seed, text, False)
            for seed, text in read_instructions(config.instructions, config.task)
        ]
    else:
        wordings = templates(config.task, config.phrasings)
        seeds = range(config.first_seed, config.first_seed + config.episodes)
        cases = [(seed, wordings[i % len(wordings)], True) for i, seed in enumerate(seeds)]
    env = AlohaEnv(config.task, cameras=CAMERAS, image_size=IMAGE_SIZE)
    results = []
    try:
        for seed, wording, template in tqdm(cases, desc=f"plan {config.task}", unit="episode"):
            observation, info = env.reset(seed=seed)
            brain.info = info
            truth = list(info["subtasks"])
            instruction = phrase(config.task, wording, truth) if template else wording
            result: dict[str, Any] = {"seed": seed, "instruction": instruction}
            for key, objects in (("plan", scene_objects(truth)), ("plan_without_objects", None)):
                seen = BrainObservation.from_env(observation, objects=objects)
                try:
                    plan = brain.timed(
                        "plan", lambda i=instruction, o=seen: brain.planner.plan(i, o)
                    )
                    result[key] = [s.text for s in plan]
                    result[f"{key}_correct"] = plan == truth
                except BrainError as error:
                    result[key], result[f"{key}_correct"] = str(error), False
            if not result["plan_correct"]:
                result["truth"] = [s.text for s in truth]
            results.append(result)
    finally:
        env.close()
    return results


def _check_cases(config: BrainEvalConfig, brain: _Brain) -> list[dict[str, Any]]:
    count = config.episodes if config.check_episodes is None else config.check_episodes
    env = AlohaEnv(config.task, terminate_on_success=False)
    renderer = CameraRenderer(env.sim.model, CAMERAS, IMAGE_SIZE)
    results = []
    try:
        seeds = range(config.first_seed, config.first_seed + count)
        for seed in tqdm(seeds, desc=f"check {config.task}", unit="episode"):
            perturbation = draw_perturbation(config.task, seed, config.perturbed_fraction)
            frames = scene_episode(
                env, renderer, config.task, seed, perturbation, config.frame_every_s
            )
            assert env.episode is not None
            plan = env.episode.subtasks
            objects = scene_objects(plan)
            for frame in frames:
                brain.info = {"subtasks": plan, "subtasks_done": frame.subtasks_done}
                seen = BrainObservation(frame.images, frame.time_s, objects)
                for subtask, done in zip(plan, frame.subtasks_done, strict=True):
                    verdict = brain.timed(
                        "check", lambda s=subtask, o=seen: brain.planner.check(s, o)
                    )
                    results.append(
                        {
                            "seed": seed,
                            "time_s": round(frame.time_s, 2),
                            "subtask": subtask.text,
                            "done": done,
                            "verdict": verdict.status,
                            "correct": (verdict.status == "done") == done,
                        }
                    )
    finally:
        renderer.close()
        env.close()
    return results


def _rate(flags: list[bool]) -> tuple[float | None, list[float] | None]:
    """The share of True flags and its 95 % Wilson interval; None for no flags."""
    if not flags:
        return None, None
    low, high = wilson_interval(sum(flags), len(flags))
    return round(sum(flags) / len(flags), 4), [round(low, 4), round(high, 4)]


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def evaluate_brain(config: BrainEvalConfig) -> dict[str, Any]:
    """Run the evaluation of ``config`` and return its report (see the module docstring)."""
    start = time.perf_counter()
    brain = _Brain(config)
    plans = _plan_cases(config, brain)
    checks = _check_cases(config, brain)
    plan_rate, plan_ci = _rate([p["plan_correct"] for p in plans])
    check_rate, check_ci = _rate([c["correct"] for c in checks])
    latencies = brain.latencies_ms["plan"] + brain.latencies_ms["check"]
    report = {
        "task": config.task,
        "brain": config.brain,
        "episodes": len(plans),
        "phrasings": "file" if config.instructions is not None else config.phrasings,
        "plan_exact_match": plan_rate,
        "plan_ci95": plan_ci,
        "plan_exact_match_without_objects": _rate(
            [p["plan_without_objects_correct"] for p in plans]
        )[0],
        "check_episodes": len({c["seed"] for c in checks}),
        "check_pairs": len(checks),
        "check_accuracy": check_rate,
        "check_ci95": check_ci,
        "check_done_recall": _rate([c["correct"] for c in checks if c["done"]])[0],
        "check_not_yet_recall": _rate([c["correct"] for c in checks if not c["done"]])[0],
        "latency_p50_ms": _percentile(latencies, 50),
        "plan_latency_p50_ms": _percentile(brain.latencies_ms["plan"], 50),
        "check_latency_p50_ms": _percentile(brain.latencies_ms["check"], 50),
        "latency_p95_ms": _percentile(latencies, 95),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if config.out is not None:
        config.out.mkdir(parents=True, exist_ok=True)
        details = {"report": report, "plans": plans, "checks": checks}
        path = config.out / f"{config.task}_{config.brain}.json"
        path.write_text(json.dumps(details, indent=1))
    return report
