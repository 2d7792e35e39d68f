"""``kinema record``: demonstrations from a teleop source into a LeRobotDataset v3 directory.

Each episode: the source starts it, then every frame the environment is stepped with the
source's servo commands, and the frame (the observation the commands were chosen from, the
last command as the action, the current subtask's text as the task) goes to the
``EpisodeRecorder``. An episode that does not end in success is discarded and re-recorded with
the next seed (``keep_failures`` keeps it). With a person in the loop the frames are paced at
50 Hz and a frame that misses its slot is reported, as on ALOHA. Progress (episodes, frames,
frame rate) shows while recording; the summary is one JSON line.
"""

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
from tqdm import tqdm

from kinema.controllers.kinematics import Kinematics
from kinema.datasets.features import environment_features, frame_values
from kinema.datasets.keyboard import KeyboardTeleop, TerminalKeys
from kinema.datasets.leader import LeaderTeleop
from kinema.datasets.recorder import EpisodeRecorder
from kinema.datasets.teleop import ExpertTeleop, TeleopSource
from kinema.hardware.calibration import RobotCalibration
from kinema.hardware.leader_arms import LeaderArms
from kinema.sim import env_id
from kinema.sim.env import subtask_in_progress
from kinema.sim.experts.base import ExpertTiming
from kinema.sim.experts.runner import check_timing
from kinema.sim.simulation import CONTROL_DT_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordConfig:
    """What ``kinema record`` records.

    Attributes:
        task: task name, e.g. "TransferCube".
        episodes: successful episodes to record (in this run).
        out: the dataset directory.
        teleop: the demonstrator: "expert", "keyboard" (a person at this terminal) or "leader"
            (a person moving ALOHA's leader arms).
        cameras: cameras recorded as videos.
        image_size: (height, width) of each camera image, in pixels.
        resume: append to an existing dataset at ``out`` instead of creating one.
        first_seed: seed of the first episode; None continues after the episodes in ``out``.
        keep_failures: keep episodes that do not end in success.
        repo_id: the dataset's name in its metadata.
        leader_ports: serial ports of the left and right leader arms (teleop "leader").
        calibration: the leader arms' calibration JSON (``kinema.hardware.calibration``).
        mistake_rate: teleop "expert": the chance that a subtask's first attempt goes wrong on
            purpose and is recovered from (``ExpertTiming.mistake_rate``); the dataset then
            flags the erring frames in ``action.is_mistake``.
    """

    task: str = "TransferCube"
    episodes: int = 10
    out: Path = Path("outputs/dataset")
    teleop: str = "expert"
    cameras: tuple[str, ...] = ("cam_high", "cam_left_wrist", "cam_right_wrist")
    image_size: tuple[int, int] = (240, 320)
    resume: bool = False
    first_seed: int | None = None
    keep_failures: bool = False
    repo_id: str = "local/kinema"
    leader_ports: tuple[str, str] | None = None
    calibration: Path | None = None
    mistake_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.mistake_rate > 0:
            if self.teleop != "expert":
                raise ValueError("only the scripted expert makes deliberate mistakes")
            check_timing(self.task, ExpertTiming(mistake_rate=self.mistake_rate))


def make_teleop(config: RecordConfig) -> TeleopSource:
    """The demonstrator named by ``config.teleop``."""
    if config.teleop == "expert":
        return ExpertTeleop(config.task, config.mistake_rate)
    if config.teleop == "keyboard":
        return KeyboardTeleop(TerminalKeys())
    if config.teleop == "leader":
        if config.leader_ports is None or config.calibration is None:
            raise ValueError("teleop leader needs the leader arms' ports and their calibration")
        leaders = LeaderArms(config.leader_ports, RobotCalibration.load(config.calibration))
        leaders.connect()
        return LeaderTeleop(leaders)
    raise ValueError(
        f"unknown teleop source {config.teleop!r}; expected expert, keyboard or leader"
    )


def subtask_text(info: dict) -> str:
    """The language of the frame: the first subtask not done yet (the last one once all are)."""
    return (subtask_in_progress(info) or info["subtasks"][-1]).text


def record(config: RecordConfig) -> dict[str, object]:
    """Record ``config.episodes`` successful episodes; return the summary."""
    env = gym.make(
        env_id(config.task),
        cameras=list(config.cameras),
        image_size=config.image_size,
        terminate_on_success=False,  # record the whole demonstration
    ).unwrapped
    kinematics = Kinematics(env.sim.model)
    source = make_teleop(config)  # first: a demonstrator that cannot start leaves no dataset
    features = environment_features(env, mistakes=source.makes_mistakes)
    try:
        recorder = (
            EpisodeRecorder.resume(config.out, config.repo_id, features)
            if config.resume
            else EpisodeRecorder.create(config.out, config.repo_id, 50, features)
        )
    except Exception:
        source.close()
        raise
    seed = recorder.episodes if config.first_seed is None else config.first_seed
    saved = discarded = late = frames = 0
    start = time.perf_counter()
    progress = tqdm(total=config.episodes, desc=f"record {config.task}", unit="episode")
    try:
        while saved < config.episodes:
            observation, info = source.start(env, seed)
            deadline = time.perf_counter()
            for _ in range(env.task.max_episode_steps):
                commands = source.next_frame(observation)
                # The frame: the observation, the subtask in progress then, the action taken.
                task_text = subtask_text(info)
                following, _, _, _, info = env.step_ticks(commands)
                mistake = source.frame_is_mistake if source.makes_mistakes else None
                values = frame_values(observation, commands[-1], kinematics, mistake)
                recorder.add_frame(values, task_text)
                observation = following
                frames += 1
                if source.realtime:
                    deadline += CONTROL_DT_S
                    lag = time.perf_counter() - deadline
                    if lag > 0:
                        late += 1
                        log.warning(
                            "frame %d is %.1f ms late", recorder.frames_in_episode, lag * 1e3
                        )
                    else:
                        time.sleep(-lag)
                if source.finished:
                    break
            keep = info["is_success"] or config.keep_failures
            if keep and not source.discard_requested:
                recorder.save_episode()
                saved += 1
                progress.update()
            else:
                recorder.discard_episode()
                discarded += 1
            elapsed = time.perf_counter() - start
            progress.set_postfix(frames=frames, fps=f"{frames / elapsed:.0f}", discarded=discarded)
            seed += 1
    finally:
        progress.close()
        recorder.close()
        source.close()
        env.close()
    return {
        "task": config.task,
        "dataset": str(config.out.resolve()),
        "episodes_saved": saved,
        "episodes_total": recorder.episodes,
        "episodes_discarded": discarded,
        "frames": frames,
        "record_fps": round(frames / (time.perf_counter() - start), 1),
        "late_frames": late,
    }


def main(config: RecordConfig) -> None:
    print(json.dumps(record(config)))
