"""kinema.episode_pool: the same seeded episodes inline, in local worker processes and on a
(local) Ray cluster: results in seed order, one setup per worker, errors naming the seed, and
``evaluate`` giving the same per-seed results locally and over Ray."""

import json
import os
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from kinema.episode_pool import (
    EpisodeError,
    PoolConfig,
    PortableFolder,
    connect_ray,
    map_episodes,
)

# The worker processes import this module to find its episode functions: Ray, torch and the
# policy are imported in the tests that use them, so that starting a worker stays quick.

SEEDS = [7, 3, 11, 5]


def start_worker() -> dict[str, object]:
    """A worker's state: which process built it, and a token unique to this setup call."""
    return {"pid": os.getpid(), "setup": uuid.uuid4().hex}


def square(state: dict[str, object], seed: int) -> dict[str, object]:
    time.sleep(0.5 if seed == SEEDS[0] else 0.0)  # the first seed finishes after the others
    return {"seed": seed, "square": seed * seed, **state}


def slip_on_eleven(state: dict[str, object], seed: int) -> dict[str, object]:
    if seed == 11:
        raise ValueError("the gripper slipped")
    return {"seed": seed}


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-CPU Ray cluster on this machine, started once for the module's tests."""
    import ray
    from ray import cloudpickle

    # Ray workers cannot import this test module: send its functions by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    connect_ray("local", num_cpus=2, include_dashboard=False)
    yield "local"
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(params=["inline", "processes", "ray"])
def pool(request: pytest.FixtureRequest) -> PoolConfig:
    if request.param == "ray":
        return PoolConfig(workers=2, ray_address=request.getfixturevalue("ray_cluster"))
    return PoolConfig(workers=1 if request.param == "inline" else 2)


def test_results_come_in_seed_order_with_one_setup_per_worker(pool):
    results = map_episodes(start_worker, square, SEEDS, pool)
    assert [result["seed"] for result in results] == SEEDS
    assert [result["square"] for result in results] == [seed * seed for seed in SEEDS]
    setups_by_process = defaultdict(set)
    for result in results:
        setups_by_process[result["pid"]].add(result["setup"])
    assert all(len(setups) == 1 for setups in setups_by_process.values())
    assert 1 <= len(setups_by_process) <= pool.workers
    ran_here = set(setups_by_process) == {os.getpid()}
    assert ran_here == (pool.workers == 1 and pool.ray_address is None)


def test_an_episode_error_names_its_seed(pool):
    with pytest.raises(EpisodeError, match="seed 11") as raised:
        map_episodes(start_worker, slip_on_eleven, SEEDS, pool)
    assert raised.value.seed == 11
    assert "the gripper slipped" in str(raised.value)


def test_a_ray_address_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'kinema\[ray\]'"):
        map_episodes(start_worker, square, SEEDS, PoolConfig(ray_address="auto"))


def test_a_folder_for_ray_travels_with_its_files(tmp_path):
    (tmp_path / "policy" / "sub").mkdir(parents=True)
    (tmp_path / "policy" / "config.json").write_text("{}")
    (tmp_path / "policy" / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    assert PoolConfig().portable(tmp_path / "policy") == PortableFolder(tmp_path / "policy")
    packed = PoolConfig(ray_address="auto").portable(tmp_path / "policy")
    with packed.opened() as copy:
        assert copy != tmp_path / "policy"
        assert (copy / "config.json").read_text() == "{}"
        assert (copy / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    assert not copy.exists()


def saved_episodes(out: Path) -> list[tuple[int, bool, int, float]]:
    """Seed, success, frames and stage reached of each episode ``evaluate`` saved in ``out``."""
    saved = json.loads((out / "TransferCube_rtc.json").read_text())
    return [
        (episode["seed"], episode["success"], episode["frames"], episode["stage_fraction"])
        for episode in saved["episodes"]
    ]


def test_evaluate_gives_the_same_episodes_locally_and_on_ray(
    recorded_dataset, ray_cluster, tmp_path: Path
):
    from test_dit_policy import TINY

    from kinema.datasets.loader import WindowConfig, WindowLoader
    from kinema.evaluate import EvalConfig, evaluate
    from kinema.policies.dit.policy import DiTPolicy
    from kinema.policies.executor import ExecutorConfig

    root, _ = recorded_dataset
    config = replace(TINY, cameras=())  # state only: the quickest episodes
    loader = WindowLoader(root, WindowConfig(workers=0), expected=config.input_shapes())
    DiTPolicy(config, loader.stats).save_pretrained(tmp_path / "policy")
    local = EvalConfig(
        policy=tmp_path / "policy",
        episodes=2,
        pool=PoolConfig(workers=1),  # in this process: worker processes are test_evaluate's
        executor=ExecutorConfig(executed_steps=4, latency_steps=1, blend_steps=2),
        videos=0,
        out=tmp_path / "local",
    )
    on_ray = replace(
        local, pool=PoolConfig(workers=2, ray_address=ray_cluster), videos=1, out=tmp_path / "ray"
    )
    local_report, ray_report = evaluate(local), evaluate(on_ray)
    assert saved_episodes(local.out) == saved_episodes(on_ray.out)
    assert [seed for seed, *_ in saved_episodes(on_ray.out)] == [100_000, 100_001]
    assert local_report["success_rate"] == ray_report["success_rate"]
    # the film made on a Ray worker lands in the driver's out folder
    assert ray_report["videos"] == [str(tmp_path / "ray" / "TransferCube_seed100000.mp4")]
    assert Path(ray_report["videos"][0]).stat().st_size > 1000
