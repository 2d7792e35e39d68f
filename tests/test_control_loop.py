"""The control loop with a brain: the brain's subtasks drive the policy, its holds stop the
arms, and its verdicts end the episode."""

import gc
import time

from replay import ReplayPolicy, expert_actions

from kinema.control_loop import run_episode
from kinema.hardware.sim_robot import SimRobot, SimRobotConfig
from kinema.policies.brain import BrainRunner, BrainRunnerConfig, OraclePlanner, scene_objects
from kinema.policies.executor import ExecutorConfig

REPLAY = ExecutorConfig(mode="chunk", executed_steps=25)


class SubtaskRecorder(ReplayPolicy):
    """The replay policy, noting the subtask text of every chunk it is asked for."""

    def __init__(self, actions):
        super().__init__(actions)
        self.texts: list[str] = []

    def predict_chunk(self, observation, subtask, time_s=0.0, generator=None, prefix=None):
        self.texts.append(subtask)
        return super().predict_chunk(observation, subtask, time_s, generator, prefix)


class SlowPlanner(OraclePlanner):
    """The ground truth, answering only after ``delay_s`` of wall time."""

    def __init__(self, task_info, delay_s: float):
        super().__init__(task_info)
        self.delay_s = delay_s

    def plan(self, instruction, observation):
        time.sleep(self.delay_s)
        return super().plan(instruction, observation)


def run_with_brain(planner_for, seed: int = 0):
    policy = SubtaskRecorder(expert_actions("TransferCube", seed))
    config = SimRobotConfig(
        task="TransferCube", seed=seed, cameras=("cam_high",), image_size=(48, 64)
    )
    with SimRobot(config) as robot:
        latest = {"info": robot.task_info()}  # what the loop saw last, for the brain's thread
        subtasks = latest["info"]["subtasks"]
        runner = BrainRunner(
            planner_for(lambda: latest["info"]),
            latest["info"]["instruction"],
            BrainRunnerConfig(check_period_s=0.02),
        )
        with runner:
            result = run_episode(
                robot,
                policy,
                REPLAY,
                max_frames=800,
                task_info=robot.task_info,
                on_frame=lambda observation, info: latest.update(info=info),
                brain=runner,
                scene_objects=scene_objects(subtasks),
            )
        return result, policy.texts, subtasks, robot.task_info()


def test_the_brains_subtasks_condition_the_policy_and_its_verdicts_end_the_episode():
    result, texts, subtasks, info = run_with_brain(OraclePlanner)
    assert info["is_success"] and result.success
    assert result.subtasks_done == len(subtasks) == 2
    assert texts[0] == subtasks[0].text and texts[-1] == subtasks[1].text
    assert set(texts) == {subtask.text for subtask in subtasks}


def test_the_arms_hold_while_the_brain_plans_and_the_episode_still_succeeds():
    result, _, _, info = run_with_brain(lambda task_info: SlowPlanner(task_info, 0.3))
    assert result.held_frames >= 3  # 0.3 s of planning: the arms held still meanwhile
    assert info["is_success"] and result.subtasks_done == 2


class SlowPolicy(ReplayPolicy):
    """The replay policy, taking ``delay_s`` of wall time for every chunk after the first."""

    def __init__(self, actions, delay_s: float):
        super().__init__(actions)
        self.delay_s = delay_s

    def predict_chunk(self, observation, subtask, time_s=0.0, generator=None, prefix=None):
        if self.calls:
            time.sleep(self.delay_s)
        return super().predict_chunk(observation, subtask, time_s, generator, prefix)


def late_chunks(delay_s: float, executor: ExecutorConfig) -> tuple[int, int, list[float]]:
    policy = SlowPolicy(expert_actions("TransferCube", 0), delay_s)
    with SimRobot(SimRobotConfig(task="TransferCube", seed=0)) as robot:
        result = run_episode(robot, policy, executor, max_frames=120)
    return result.late_chunks, result.predictions, result.cerebellum_ms


def test_chunks_that_miss_their_deadline_are_counted_and_the_cerebellum_is_timed():
    rtc = ExecutorConfig(mode="rtc", executed_steps=25, latency_steps=3)  # 60 ms to predict
    late, predictions, cerebellum_ms = late_chunks(0.15, rtc)
    assert predictions >= 4 and late == predictions - 1  # all but the first, which has none
    assert len(cerebellum_ms) == 120 and all(ms > 0 for ms in cerebellum_ms)
    late, predictions, _ = late_chunks(0.005, rtc)  # well within the 60 ms that rtc allows
    assert predictions >= 4 and late == 0
    late, predictions, _ = late_chunks(0.05, REPLAY)  # the loop waits: one 20 ms frame
    assert predictions >= 4 and late == predictions - 1


def test_full_garbage_collections_skip_the_heap_alive_when_the_episode_began():
    frozen: list[int] = []  # objects left out of the collector's passes, at each frame

    def record(*_: object) -> None:
        frozen.append(gc.get_freeze_count())

    with SimRobot(SimRobotConfig(task="TransferCube", seed=0)) as robot:
        policy = ReplayPolicy(expert_actions("TransferCube", 0))
        run_episode(robot, policy, REPLAY, max_frames=30, on_frame=record)
    assert len(frozen) == 30 and min(frozen) > 10_000  # torch, MuJoCo, … frozen throughout
    assert gc.get_freeze_count() == 0  # and collectable again afterwards
