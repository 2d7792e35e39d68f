"""The ``kinema`` command line. ``kinema --help`` lists the subcommands, ``kinema CMD --help``
explains each."""

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.policies.dit.shipped import DEFAULT_TASK

if TYPE_CHECKING:
    from kinema.policies.executor import ExecutorConfig


def _expert(args: argparse.Namespace) -> None:
    from kinema.expert import ExpertRunConfig, main

    main(
        ExpertRunConfig(
            task=args.task,
            episodes=args.episodes,
            first_seed=args.first_seed,
            workers=args.workers,
            video=args.video,
            image_size=tuple(args.image_size),
        )
    )


def _record(args: argparse.Namespace) -> None:
    from kinema.datasets.record import RecordConfig, main

    with _refused_options("record"):
        config = RecordConfig(
            task=args.task,
            episodes=args.episodes,
            out=args.out,
            teleop=args.teleop,
            cameras=tuple(args.cameras),
            image_size=tuple(args.image_size),
            resume=args.resume,
            first_seed=args.first_seed,
            keep_failures=args.keep_failures,
            mistake_rate=args.mistake_rate,
            leader_ports=tuple(args.leader_ports) if args.leader_ports else None,
            calibration=args.calibration,
        )
    main(config)


def _dataset_info(args: argparse.Namespace) -> None:
    import json

    from kinema.datasets.info import dataset_info, describe

    summary = dataset_info(args.root)
    print(describe(summary))
    print(json.dumps(summary))


def _dataset_visualize(args: argparse.Namespace) -> None:
    import json

    from kinema.datasets.visualize import visualize

    print(json.dumps({"videos": visualize(args.root, args.episodes, args.out)}))


def _dataset_check(args: argparse.Namespace) -> None:
    import json

    from kinema.datasets.check import check_dataset

    print(json.dumps(check_dataset(args.root)))


def _dataset_windows(args: argparse.Namespace) -> None:
    import json

    from kinema.datasets.augment import AugmentConfig
    from kinema.datasets.feature_map import FeatureMap
    from kinema.datasets.loader import WindowConfig, WindowLoader
    from kinema.datasets.throughput import measure_throughput

    config = WindowConfig(
        observation_steps=args.observation_steps,
        action_steps=args.action_steps,
        batch_size=args.batch_size,
        workers=args.workers,
        augment=AugmentConfig() if args.augment else None,
    )
    loader = WindowLoader(args.root, config, FeatureMap.parse(args.map))
    figures = measure_throughput(loader, args.batches, desc="windows")
    print(
        json.dumps(
            {"root": str(args.root.resolve()), "frames": loader.table.total_frames} | figures
        )
    )


def _train(args: argparse.Namespace) -> None:
    import json

    from accelerate import PartialState

    from kinema.policies.dit.train import TrainConfig, train

    overrides = {
        "observation_steps": args.observation_steps,
        "chunk_steps": args.action_steps,
        "executed_steps": max(args.action_steps * 7 // 10, 1),  # 35 of 50, as measured best
    }
    for assignment in args.set or []:
        key, _, value = assignment.partition("=")
        overrides[key.strip()] = json.loads(value)
    config = TrainConfig(
        dataset=args.dataset,
        output=args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        save_every=args.save_every,
        workers=args.workers,
        augment=args.augment,
        feature_map=tuple(args.map or ()),
        use_environment_state=not args.no_environment_state,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        resume=args.resume,
        shards=args.shards,
        step_log=args.step_log,
        init_from=args.init_from,
    )
    summary = train(config, overrides)
    if PartialState().is_main_process:  # under accelerate, one summary for the whole run
        print(json.dumps(summary))


def _executor_config(args: argparse.Namespace) -> "ExecutorConfig":
    from kinema.policies.executor import ExecutorConfig

    return ExecutorConfig(
        mode=args.executor,
        executed_steps=args.executed_steps,
        latency_steps=args.latency_steps,
        blend_steps=args.blend_steps,
    )


def _add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    from kinema.policies.executor import ExecutorConfig

    defaults = ExecutorConfig()
    parser.add_argument("--executor", choices=["chunk", "ensemble", "rtc"], default=defaults.mode)
    parser.add_argument(
        "--executed-steps", type=int, help="chunk, rtc: actions of a chunk (default: the policy's)"
    )
    parser.add_argument(
        "--latency-steps", type=int, default=defaults.latency_steps, help="rtc: frames"
    )
    parser.add_argument("--blend-steps", type=int, default=defaults.blend_steps, help="rtc: frames")


def _eval(args: argparse.Namespace) -> None:
    import json

    from kinema.episode_pool import PoolConfig
    from kinema.evaluate import EvalConfig, evaluate

    if (args.policy is None) == (args.brain is None):
        raise SystemExit(
            "kinema eval: give --policy (the policy's success rate) or --brain (the brain's plans "
            "and checks); for the two together, the whole stack, use kinema run --episodes N"
        )
    if args.brain is not None:
        for task in args.task:
            _eval_brain(argparse.Namespace(**{**vars(args), "task": task}))
        return
    executor = _executor_config(args)
    pool = PoolConfig(workers=args.workers, ray_address=args.ray_address)
    for task in args.task:
        config = EvalConfig(
            policy=args.policy,
            task=task,
            episodes=args.episodes,
            first_seed=args.first_seed,
            pool=pool,
            executor=executor,
            inference_steps=args.inference_steps,
            videos=args.videos,
            out=args.out,
        )
        print(json.dumps(evaluate(config)))


def _train_brain(args: argparse.Namespace) -> None:
    import json

    from kinema.policies.brain.scenes import ScenesConfig
    from kinema.policies.brain.train_brain import TrainBrainConfig, train_brain

    config = TrainBrainConfig(
        scenes=args.scenes,
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        init=args.init,
        scenes_config=ScenesConfig(workers=args.workers),
    )
    print(json.dumps(train_brain(config)))


def _eval_brain(args: argparse.Namespace) -> None:
    import json

    from kinema.policies.brain.evaluate_brain import BrainEvalConfig, evaluate_brain

    weights = {} if args.weights is None else {"weights": args.weights}
    config = BrainEvalConfig(
        brain=args.brain,
        task=args.task,
        episodes=args.episodes,
        check_episodes=args.check_episodes,
        first_seed=args.first_seed,
        instructions=args.instructions,
        out=args.out,
        **weights,
    )
    print(json.dumps(evaluate_brain(config)))


def _add_robot_arguments(parser: argparse.ArgumentParser, seconds: float) -> None:
    """The robot a command drives (``kinema.deploy``): --robot and what real arms need."""
    parser.add_argument("--robot", choices=["sim", "emulated", "aloha"], default="sim")
    parser.add_argument("--ports", nargs=2, metavar=("LEFT", "RIGHT"), help="follower buses")
    parser.add_argument("--calibration", type=Path, help="the arms' calibration JSON")
    parser.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME=DEVICE",
        help="an OpenCV camera, e.g. cam_high=/dev/video0 or cam_high=0; repeatable",
    )
    parser.add_argument(
        "--seconds", type=float, default=seconds, help="longest episode on real arms"
    )


@contextlib.contextmanager
def _refused_options(command: str) -> Iterator[None]:
    """Turns the ``ValueError`` a command's config raises for options that do not go together
    into ``kinema <command>: <reason>`` on one line, instead of a traceback."""
    try:
        yield
    except ValueError as error:
        raise SystemExit(f"kinema {command}: {error}") from None


def _deploy(args: argparse.Namespace) -> None:
    import json

    from kinema.deploy import DeployConfig, deploy

    with _refused_options("deploy"):
        config = DeployConfig(
            policy=args.policy,
            robot=args.robot,
            task=args.task,
            first_seed=args.first_seed,
            episodes=args.episodes,
            ports=tuple(args.ports) if args.ports else None,
            calibration=args.calibration,
            cameras=dict(camera.split("=", 1) for camera in args.camera),
            instruction=args.instruction,
            seconds=args.seconds,
            executor=_executor_config(args),
        )
    print(json.dumps(deploy(config)))


def _calibrate(args: argparse.Namespace) -> None:
    import json

    from kinema.hardware.calibrate import calibrate_arms, summarize

    calibration = calibrate_arms(tuple(args.ports), args.arms)
    calibration.save(args.out)
    print(json.dumps({"calibration": str(args.out.resolve())} | summarize(calibration)))


def _run(args: argparse.Namespace) -> None:
    import json
    import random

    from kinema.run import RunConfig, run, run_episodes

    with _refused_options("run"):
        config = RunConfig(
            policy=args.policy,
            instruction=args.instruction,
            task=args.task,
            seed=args.seed,
            brain=args.brain,
            executor=_executor_config(args),
            out=args.out,
            subtask_retries=args.retries,
            max_replans=args.max_replans,
            done_confirmations=args.done_confirmations,
            robot=args.robot,
            ports=tuple(args.ports) if args.ports else None,
            calibration=args.calibration,
            camera_devices=dict(camera.split("=", 1) for camera in args.camera),
            seconds=args.seconds,
        )
        config.policy_dir  # noqa: B018 (raises when --task has no shipped policy and none is named)
    if args.episodes == 1:
        print(json.dumps(run(config)))
        return
    if args.robot == "aloha":
        raise SystemExit("kinema run: --episodes > 1 draws simulated scenes; on real arms run one")
    first = args.seed if args.seed is not None else random.randrange(1_000_000, 2_000_000)
    print(json.dumps(run_episodes(config, list(range(first, first + args.episodes)))))


def _tasks(args: argparse.Namespace) -> None:
    import gymnasium as gym

    from kinema.sim import env_id
    from kinema.sim.tasks import TASKS

    for name, task in TASKS.items():
        env = gym.make(env_id(name))
        _, info = env.reset(seed=args.seed)
        print(f"{env_id(name)}  ({task.max_episode_steps} steps at 50 Hz)")
        print(f"  instruction: {info['instruction']}")
        for subtask in info["subtasks"]:
            print(f"  - [{subtask.arm:>5}] {subtask.text}  ({subtask.time_budget_s:g} s)")
        env.close()


def _add_brain_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """What scoring a brain takes beyond the task and seeds (``eval-brain``, ``eval --brain``)."""
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="embedded brain: save_pretrained folder (default: the shipped weights)",
    )
    parser.add_argument(
        "--check-episodes", type=int, default=None, help="checked episodes (default: --episodes)"
    )
    parser.add_argument(
        "--instructions", type=Path, default=None, help="JSON-lines file of users' wordings"
    )


def _add_image_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(240, 320),
        metavar=("H", "W"),
        help="size of each camera image in the video, in pixels",
    )


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """The training-window options (``kinema dataset windows``, ``kinema train``)."""
    parser.add_argument(
        "--map",
        action="append",
        default=None,
        metavar="TARGET=SOURCE[i:j,...]",
        help="serve dataset feature SOURCE (optionally only entries i:j,...) as TARGET, e.g. "
        "observation.images.cam_high=observation.images.top; repeatable",
    )
    parser.add_argument("--observation-steps", type=int, default=1, help="history length n")
    parser.add_argument("--action-steps", type=int, default=50, help="chunk length H")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="decoding worker processes")
    parser.add_argument(
        "--augment", action="store_true", help="random shift and colour jitter on images"
    )


def build_parser() -> argparse.ArgumentParser:
    from kinema.sim.tasks import TASKS

    parser = argparse.ArgumentParser(
        prog="kinema",
        description="kinema: a brain / policy / cerebellum stack for ALOHA-style bimanual arms.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    expert = commands.add_parser(
        "expert",
        help="run a task's scripted expert over many seeds and report its success rate",
        description="Run the scripted expert (planned gripper waypoints executed through the "
        "WBC and MPC at 500 Hz) for N seeded episodes; print one JSON line with the success rate.",
    )
    expert.add_argument("--task", choices=list(TASKS), default="TransferCube")
    expert.add_argument("--episodes", type=int, default=10, help="number of episodes (seeds)")
    expert.add_argument("--first-seed", type=int, default=0, help="seed of the first episode")
    expert.add_argument(
        "--workers", type=int, default=0, help="worker processes (0: one per CPU core)"
    )
    expert.add_argument("--video", type=Path, default=None, help="MP4 of the first episode")
    _add_image_size(expert)
    expert.set_defaults(run=_expert)

    record = commands.add_parser(
        "record",
        help="record demonstrations into a LeRobotDataset v3 directory",
        description="Record demonstrations (a teleop source driving the simulated arms) into a "
        "LeRobotDataset v3 directory through lerobot's own writer; a killed recording loses at "
        "most the episode in progress. Prints one JSON line at the end.",
    )
    record.add_argument("--task", choices=list(TASKS), default="TransferCube")
    record.add_argument("--episodes", type=int, default=10, help="successful episodes to record")
    record.add_argument("--out", type=Path, required=True, help="dataset directory")
    record.add_argument(
        "--teleop",
        choices=["expert", "keyboard", "leader"],
        default="expert",
        help="demonstrator: the scripted expert, you at the keyboard (keys: see "
        "kinema.datasets.keyboard), or you moving the leader arms",
    )
    record.add_argument(
        "--leader-ports",
        nargs=2,
        metavar=("LEFT", "RIGHT"),
        default=None,
        help="serial ports of the leader arms (--teleop leader)",
    )
    record.add_argument(
        "--calibration", type=Path, default=None, help="the leader arms' calibration JSON"
    )
    record.add_argument(
        "--cameras",
        nargs="*",
        default=["cam_high", "cam_left_wrist", "cam_right_wrist"],
        help="cameras recorded as videos (none: `--cameras` alone, for state-based policies)",
    )
    _add_image_size(record)
    record.add_argument("--resume", action="store_true", help="append to the dataset at --out")
    record.add_argument(
        "--first-seed", type=int, default=None, help="first seed (default: after the last)"
    )
    record.add_argument(
        "--keep-failures", action="store_true", help="keep episodes that do not succeed"
    )
    record.add_argument(
        "--mistake-rate",
        type=float,
        default=0.0,
        help="expert: chance that a subtask's first attempt goes wrong on purpose and is "
        "recovered from (StackBlocks); the erring frames are flagged and not trained on",
    )
    record.set_defaults(run=_record)

    dataset = commands.add_parser(
        "dataset", help="inspect a LeRobotDataset v3 directory", description="Dataset tools."
    )
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    info = dataset_commands.add_parser(
        "info",
        help="episodes, frames, fps, features and tasks of a dataset",
        description="Summarise a LeRobotDataset v3 directory from its metadata; the last line "
        "is the summary as JSON.",
    )
    info.add_argument("root", type=Path, help="the dataset directory")
    info.set_defaults(run=_dataset_info)
    visualize = dataset_commands.add_parser(
        "visualize",
        help="an MP4 per episode: cameras side by side, joint trajectories underneath",
        description="Write one MP4 per episode with the cameras side by side and the joint "
        "trajectories (state thick, action thin) plotted underneath with a moving cursor.",
    )
    visualize.add_argument("root", type=Path, help="the dataset directory")
    visualize.add_argument("--episodes", type=int, nargs="+", default=None, help="default: all")
    visualize.add_argument(
        "--out", type=Path, default=Path("outputs/visualize"), help="folder for the MP4s"
    )
    visualize.set_defaults(run=_dataset_visualize)
    check = dataset_commands.add_parser(
        "check",
        help="read every file of a dataset and name the first bad one",
        description="Read every metadata, data and video file; report the first problem "
        "(unreadable or truncated file, NaN in a feature, missing video frames) with the file "
        "and the episode. Writes nothing.",
    )
    check.add_argument("root", type=Path, help="the dataset directory")
    check.set_defaults(run=_dataset_check)
    windows = dataset_commands.add_parser(
        "windows",
        help="serve training windows from a dataset and report their shapes and speed",
        description="Load a LeRobotDataset v3 directory (ours or any lerobot one) as training "
        "windows: observation history, action chunk with padding flags, task text. --map "
        "renames or slices features of datasets with other camera names or state sizes.",
    )
    windows.add_argument("root", type=Path, help="the dataset directory")
    add_window_arguments(windows)
    windows.add_argument("--batches", type=int, default=None, help="default: one epoch")
    windows.set_defaults(run=_dataset_windows)

    train = commands.add_parser(
        "train",
        help="train a DiT policy on a LeRobotDataset v3 directory",
        description="Train the DiT policy (AdamW, warm-up + cosine, EMA, gradient clipping; "
        "bf16 on a GPU) with atomic, resumable checkpoints, TensorBoard scalars and a loss "
        "plot. Several GPUs or machines: PYTHONSAFEPATH=1 accelerate launch -m kinema.cli train",
    )
    train.add_argument("--dataset", type=Path, required=True, help="the dataset directory")
    train.add_argument("--output", type=Path, required=True, help="the run directory")
    train.add_argument("--steps", type=int, default=20_000)
    train.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    train.add_argument("--warmup-steps", type=int, default=500)
    train.add_argument("--save-every", type=int, default=1000, help="steps between checkpoints")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"], default="auto")
    train.add_argument(
        "--no-environment-state",
        action="store_true",
        help="do not condition on observation.environment_state (what a real robot lacks)",
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="FIELD=JSON",
        help="a DiTConfig field, e.g. --set hidden_dim=128 --set objective='\"flow\"'",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --output")
    train.add_argument(
        "--shards",
        type=int,
        default=None,
        help="split each step's global batch into this many shards of --batch-size windows, "
        "each process accumulating the gradients of shards/processes of them (default: one per "
        "process); the same --shards on 1 GPU reproduces a run on several",
    )
    train.add_argument(
        "--step-log",
        action="store_true",
        help="every process writes OUTPUT/steps/process-N.jsonl: each step's losses, gradient "
        "norm and learning rate",
    )
    train.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="POLICY",
        help="fine-tune: start from the weights of this saved policy (same --set options), "
        "with this dataset's normalisation statistics",
    )
    add_window_arguments(train)
    train.set_defaults(run=_train)

    evaluation = commands.add_parser(
        "eval",
        help="success rate of a trained policy in simulation",
        description="Run seeded episodes of a policy through the cerebellum in parallel worker "
        "processes, or on a Ray cluster; one JSON line per task with success_rate and its 95 % "
        "interval (ci95), the mean stage reached, chunk hand-over jumps, and MP4s of the first "
        "episodes.",
    )
    evaluation.add_argument(
        "--policy",
        type=Path,
        help="save_pretrained folder, or a lerobot-train checkpoint (pretrained_model)",
    )
    evaluation.add_argument(
        "--brain",
        choices=["embedded", "oracle"],
        help="evaluate this brain instead of a policy (as kinema eval-brain: plan_exact_match, "
        "check_accuracy)",
    )
    evaluation.add_argument("--task", nargs="+", default=["TransferCube"])
    evaluation.add_argument("--episodes", type=int, default=50)
    evaluation.add_argument("--first-seed", type=int, default=100_000)
    evaluation.add_argument(
        "--workers", type=int, default=2, help="episodes in parallel (processes or Ray actors)"
    )
    evaluation.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="run the episodes on this Ray cluster (`auto`, `ray://host:10001`, or `local` to "
        "start one here)",
    )
    _add_executor_arguments(evaluation)
    evaluation.add_argument("--inference-steps", type=int, default=None)
    evaluation.add_argument("--videos", type=int, default=2, help="episodes to film")
    evaluation.add_argument("--out", type=Path, default=Path("outputs/eval"))
    _add_brain_scoring_arguments(evaluation)
    evaluation.set_defaults(run=_eval)

    train_brain = commands.add_parser(
        "train-brain",
        help="train the embedded brain (plan and success checks) on rendered simulated scenes",
        description="Render scenes of the four tasks (reset scenes, scripted-expert episodes, "
        "some disturbed) unless --scenes exists, train the embedded vision-language brain on "
        "them (AdamW, cosine schedule) and save it to --out. Prints one JSON line.",
    )
    train_brain.add_argument(
        "--scenes", type=Path, default=Path("outputs/brain/scenes.npz"), help="scenes .npz"
    )
    train_brain.add_argument("--out", type=Path, default=Path("outputs/brain/embedded"))
    train_brain.add_argument("--steps", type=int, default=3000)
    train_brain.add_argument("--batch-size", type=int, default=32, help="plan examples a step")
    train_brain.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    train_brain.add_argument("--seed", type=int, default=0)
    train_brain.add_argument("--init", type=Path, default=None, help="weights to start from")
    train_brain.add_argument("--workers", type=int, default=0, help="rendering processes")
    train_brain.set_defaults(run=_train_brain)

    eval_brain = commands.add_parser(
        "eval-brain",
        help="plan exact-match and success-check accuracy of a brain on held-out episodes",
        description="Plan held-out seeds from held-out instruction wordings (or the JSON lines "
        '{"task", "seed", "instruction"} of --instructions) against the ground-truth plan, and '
        "check every subtask on frames of scripted-expert episodes (some disturbed) against the "
        "task's predicates. One JSON line: plan_exact_match, check_accuracy, latency_p50_ms.",
    )
    eval_brain.add_argument("--brain", choices=["embedded", "oracle"], default="embedded")
    _add_brain_scoring_arguments(eval_brain)
    eval_brain.add_argument("--task", choices=list(TASKS), default="TransferCube")
    eval_brain.add_argument("--episodes", type=int, default=50, help="plan episodes")
    eval_brain.add_argument("--first-seed", type=int, default=100_000)
    eval_brain.add_argument("--out", type=Path, default=None, help="folder for the JSON details")
    eval_brain.set_defaults(run=_eval_brain)

    deployment = commands.add_parser(
        "deploy",
        help="run a policy on a robot: simulated, emulated ALOHA buses, or real arms",
        description="policy → cerebellum → safety layer → robot. --robot sim: the MuJoCo robot; "
        "--robot emulated: the ALOHA driver stack on emulated Dynamixel buses moved by MuJoCo; "
        "--robot aloha: real follower arms (space on the terminal stops them). Prints one JSON "
        "line: success_rate (simulation), safety interventions, inference time.",
    )
    deployment.add_argument("--policy", type=Path, required=True, help="save_pretrained folder")
    deployment.add_argument("--task", default="TransferCube", help="simulated task")
    deployment.add_argument("--first-seed", type=int, default=100_000)
    deployment.add_argument("--episodes", type=int, default=1, help="simulated episodes")
    _add_robot_arguments(deployment, seconds=30.0)
    deployment.add_argument("--instruction", default="", help="subtask text on real arms")
    _add_executor_arguments(deployment)
    deployment.set_defaults(run=_deploy)

    calibrate = commands.add_parser(
        "calibrate",
        help="calibrate the follower or leader arms interactively into a JSON file",
        description="With the torque off, you move both arms through the simulation's zero "
        "pose, a small positive move of every joint, closed and open grippers; the servo "
        "readings become the calibration JSON that --calibration of deploy and record takes. "
        "Writes nothing to the servos but torque off. Prints one JSON line with a summary.",
    )
    calibrate.add_argument(
        "--ports", nargs=2, required=True, metavar=("LEFT", "RIGHT"), help="the arms' buses"
    )
    calibrate.add_argument("--arms", choices=["follower", "leader"], required=True)
    calibrate.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
    calibrate.set_defaults(run=_calibrate)

    running = commands.add_parser(
        "run",
        help="the whole stack on an instruction: brain → policy → cerebellum → robot",
        description="The brain plans the instruction into subtasks and checks them 5 times a "
        "second, the DiT policy executes each through the cerebellum and the safety layer. Films "
        "the run, traces the brain's decisions, and prints one JSON line: success, "
        "subtasks_done, video, and each layer's timing.",
    )
    running.add_argument("instruction", nargs="?", help="default: the task's own for the seed")
    running.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="save_pretrained folder (default: the state-based policy shipped for --task)",
    )
    running.add_argument("--task", default=DEFAULT_TASK, help="the simulated scene")
    running.add_argument(
        "--seed", type=int, default=None, help="default: a random one (the first of --episodes)"
    )
    running.add_argument(
        "--episodes",
        type=int,
        default=1,
        help="run this many seeds in turn and print their summary (success rate, deadlines)",
    )
    running.add_argument(
        "--brain",
        default="embedded",
        help="embedded (shipped weights), embedded:<dir>, oracle, transformers:<dir> or "
        "http:<base_url>#<model>",
    )
    running.add_argument(
        "--retries", type=int, default=1, help="new starts of a failed subtask before replanning"
    )
    running.add_argument(
        "--max-replans", type=int, default=2, help="plans after a failure (0: no replanning)"
    )
    running.add_argument(
        "--done-confirmations",
        type=int,
        default=3,
        help='checks in a row that must say "done" before the next subtask starts',
    )
    running.add_argument("--out", type=Path, default=Path("outputs/run"))
    _add_robot_arguments(running, seconds=60.0)
    _add_executor_arguments(running)
    running.set_defaults(run=_run)

    tasks = commands.add_parser(
        "tasks",
        help="list the simulated tasks with an example instruction and its plan",
        description="For every registered task, draw an episode and print its instruction and "
        "the ground-truth subtasks (arm, text, time budget).",
    )
    tasks.add_argument("--seed", type=int, default=0, help="episode seed")
    tasks.set_defaults(run=_tasks)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
