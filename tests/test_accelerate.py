"""``kinema train`` under ``accelerate launch``: two CPU processes, two shards each, step together,
and one process playing all four shards reproduces their checkpoint.

The two ranks run for real: ``accelerate launch`` with the shipped 8-GPU config, told to start 2
processes, starts them through torchrun, and ``ACCELERATE_USE_CPU=true`` makes accelerate join
them with gloo on the CPU (its ``--cpu`` launch starts several processes only through MPI). The
reference runs without accelerate's launcher, in a fresh process too, so that it also trains on
the CPU whatever this process holds.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from kinema.policies.dit.train import TrainConfig, train

EIGHT_GPUS = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "1node_8gpu.yaml"
TINY = {
    "hidden_dim": 32,
    "layers": 1,
    "heads": 2,
    "mlp_ratio": 2.0,
    "dropout": 0.1,  # the dropout masks must not depend on the process either
    "text_layers": 1,
    "text_max_bytes": 16,
    "chunk_steps": 4,
    "executed_steps": 2,
}
STEPS = 6
EPISODE_LENGTHS = (18, 23, 20, 25)
TASKS = ("reach left", "reach right")


@pytest.fixture(scope="module")
def state_dataset(tmp_path_factory) -> Path:
    """Four episodes of a 14-joint state and action (no camera), two task texts."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("accelerate") / "dataset"
    vector = {"dtype": "float32", "shape": (14,), "names": None}
    features = {"observation.state": vector, "action": vector}
    dataset = LeRobotDataset.create("local/state", fps=50, root=root, features=features)
    rng = np.random.default_rng(0)
    for episode, length in enumerate(EPISODE_LENGTHS):
        phase = rng.uniform(0, np.pi, size=14)
        for frame in range(length):
            dataset.add_frame(
                {
                    "observation.state": np.sin(phase + 0.2 * frame).astype(np.float32),
                    "action": np.sin(phase + 0.2 * (frame + 1)).astype(np.float32),
                    "task": TASKS[episode % 2],
                }
            )
        dataset.save_episode()
    dataset.finalize()
    return root


def train_arguments(dataset: Path, output: Path, seed: int = 0) -> list[str]:
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    return [
        "-m", "kinema.cli", "train",
        "--dataset", str(dataset),
        "--output", str(output),
        "--steps", str(STEPS),
        "--batch-size", "8",
        "--workers", "0",
        "--action-steps", str(TINY["chunk_steps"]),
        "--lr", "3e-3",
        "--warmup-steps", "0",
        "--save-every", "3",
        "--mixed-precision", "no",
        "--seed", str(seed),
        "--step-log",
        *sets,
    ]  # fmt: skip


def start(command: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``command`` on the CPU with one thread per process."""
    env = {
        **os.environ,
        "PYTHONSAFEPATH": "1",  # the checkout's datasets/ must not shadow Hugging Face datasets
        "ACCELERATE_USE_CPU": "true",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, ended with it if the test fails
    )


def finish(processes: list[subprocess.Popen]) -> list[list[dict]]:
    """Wait for ``processes`` to succeed; the run summaries each printed. On a failure the
    others are stopped, with the processes they started."""
    try:
        summaries = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, (
                f"{process.args} failed:\n{stdout[-3000:]}\n{stderr[-5000:]}"
            )
            lines = stdout.splitlines()
            summaries.append([json.loads(line) for line in lines if line.startswith('{"output"')])
        return summaries
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def step_log(output: Path, process: int) -> list[dict]:
    lines = (output / "steps" / f"process-{process}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def assert_same_weights(first: Path, second: Path, atol: float) -> None:
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=atol, err_msg=name)


def largest_change(first: Path, second: Path) -> float:
    a, b = load_file(first), load_file(second)
    return max(float(np.abs(a[name] - b[name]).max()) for name in a)


def launch(arguments: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``accelerate launch`` of 2 processes with the 8-GPU config (on the CPU here)."""
    return start(
        [
            str(Path(sys.executable).with_name("accelerate")), "launch",
            "--config_file", str(EIGHT_GPUS),
            "--num_processes", "2", "--mixed_precision", "no",
            "--main_process_port", "0",  # a free port
            *arguments,
        ],
        cwd,
    )  # fmt: skip


def assert_in_lockstep(output: Path, shards: int) -> list[dict]:
    """Both ranks logged every step, with the same all-reduced and gathered values (each
    rank's record holds the other's shard losses); the records."""
    ranks = [step_log(output, process) for process in (0, 1)]
    assert ranks[0] == ranks[1]
    assert [record["step"] for record in ranks[0]] == list(range(1, STEPS + 1))
    assert all(len(record["shard_losses"]) == shards for record in ranks[0])
    assert not (output / "steps" / "process-2.jsonl").exists()
    return ranks[0]


def test_two_processes_step_together_and_one_process_playing_all_shards_matches_them(
    state_dataset, tmp_path
):
    launched, alone = tmp_path / "two", tmp_path / "one"
    # four shards: each rank accumulates the gradients of two, all-reduced only at the second
    shards = ["--shards", "4"]
    # the two runs are independent: they start together
    summaries, (summary,) = finish(
        [
            launch([*train_arguments(state_dataset, launched), *shards], tmp_path),
            start(
                [sys.executable, "-P", *train_arguments(state_dataset, alone), *shards], tmp_path
            ),
        ]
    )
    # the main process prints the run's summary
    assert [(s["processes"], s["shards"], s["steps"]) for s in summaries] == [(2, 4, STEPS)]

    # (a) lockstep
    records = assert_in_lockstep(launched, shards=4)

    # (b) one process playing the four shards: the same losses and the same weights
    assert (summary["processes"], summary["shards"]) == (1, 4)
    reference = step_log(alone, 0)
    assert [record["step"] for record in reference] == list(range(1, STEPS + 1))
    for key in ("loss", "shard_losses", "grad_norm", "learning_rate"):
        np.testing.assert_allclose(
            [record[key] for record in records],
            [record[key] for record in reference],
            rtol=0,
            atol=1e-6,
            err_msg=key,
        )
    for step in ("step-0000003", "step-0000006"):
        weights = Path("checkpoints") / step / "model.safetensors"
        assert_same_weights(launched / weights, alone / weights, atol=1e-5)
    policy = Path("policy") / "model.safetensors"
    assert_same_weights(launched / policy, alone / policy, atol=1e-5)

    # (c) not vacuous: the weights moved and the four shards differ
    checkpoints = launched / "checkpoints"
    moved = largest_change(
        checkpoints / "step-0000003" / "model.safetensors",
        checkpoints / "step-0000006" / "model.safetensors",
    )
    assert moved > 1e-3
    assert all(np.diff(np.sort(record["shard_losses"])).min() > 1e-4 for record in records)


def test_the_8_gpu_config_is_one_machine_of_8_data_parallel_processes():
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(EIGHT_GPUS))
    assert (config.distributed_type, config.num_machines, config.num_processes) == (
        "MULTI_GPU",
        1,
        8,
    )
    assert not config.use_cpu


def test_a_run_of_two_shards_in_one_process_resumes_onto_the_same_steps_and_only_so(
    state_dataset, tmp_path
):
    config = TrainConfig(
        dataset=state_dataset,
        output=tmp_path / "whole",
        steps=4,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0,
        save_every=2,
        workers=0,
        mixed_precision="no",
        shards=2,
        step_log=True,
    )
    summary = train(config, TINY)
    assert (summary["processes"], summary["shards"]) == (1, 2)

    interrupted = tmp_path / "interrupted"
    shutil.copytree(config.output, interrupted)
    # killed while writing step 4's checkpoint and a step log line
    checkpoints = interrupted / "checkpoints"
    (checkpoints / "step-0000004").rename(checkpoints / "step-0000004.tmp")
    (checkpoints / "latest").write_text("step-0000002")
    with (interrupted / "steps" / "process-0.jsonl").open("a") as log:
        log.write('{"step": 5, "lo')
    with pytest.raises(ValueError, match="trained with 2 shards, not 1"):
        train(replace(config, output=interrupted, resume=True, shards=None))
    train(replace(config, output=interrupted, resume=True))
    assert step_log(interrupted, 0) == step_log(config.output, 0)
    assert [record["step"] for record in step_log(interrupted, 0)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="shards must be ≥ 1"):
        replace(config, shards=0)
