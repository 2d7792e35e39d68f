"""Controller speed: the cerebellum's per-tick solvers against plain cvxpy, measured in one run.

Figures (milliseconds per 2 ms controller tick, all 14 joints):
  MPC    ``JointMpc.step`` (horizon 20 × 20 ms) in a closed loop that follows random smooth
         action chunks, a new one every 0.5 s, every third jumping far outside the joint limits;
         goal: median ≤ 1 ms, p99 ≤ 3 ms.
  peer   the same problem (the sum of the 14 per-joint cvxpy problems the MPC is built from)
         solved with cvxpy's ``problem.solve()``: OSQP at eps 1e-6 with polishing, warm-started,
         on the first ticks of the same loop; also the largest difference of its first
         acceleration from the MPC's, as a check that both solve the same problem.

Usage:  .venv/bin/python benchmarks/controllers.py [--ticks 2000] [--peer-ticks 200] [--skip-peer]
Ends with one JSON line of the figures.
"""

import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from kinema.aloha import ACTION_DIM, HOME_POSE
from kinema.controllers.mpc import (
    JointMpc,
    MpcConfig,
    MpcState,
    assign_parameters,
    build_joint_problem,
    sample_chunk,
)

CHUNK_LENGTH = 50  # actions per chunk, 20 ms apart (1 s)
CHUNK_EVERY_S = 0.5  # a new chunk replaces the old one this often


def chunk_references(ticks: int, config: MpcConfig, seed: int = 0) -> np.ndarray:
    """MPC references (ticks, N, 14) sampled from a stream of random chunks, one per tick.

    Each chunk eases from the last goal to a new one over its 1 s with a small wobble on top;
    every third goal lies far away, often beyond the joint limits.
    """
    rng = np.random.default_rng(seed)
    low, high = np.array(config.lower_rad), np.array(config.upper_rad)
    times = np.arange(CHUNK_LENGTH) * config.horizon_dt_s
    ease = (0.5 - 0.5 * np.cos(np.pi * times / times[-1]))[:, None]
    ticks_per_chunk = round(CHUNK_EVERY_S / config.tick_dt_s)
    references = np.empty((ticks, config.horizon_steps, ACTION_DIM))
    goal = HOME_POSE
    for k in range(ticks):
        if k % ticks_per_chunk == 0:
            spread = 1.5 if (k // ticks_per_chunk) % 3 == 2 else 0.2
            start, goal = goal, goal + spread * rng.normal(size=ACTION_DIM)
            wobble = 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0, ACTION_DIM) * times[:, None])
            chunk = start + ease * (goal - start) + wobble
            goal = np.clip(goal, low, high)
            start_s = k * config.tick_dt_s
        now_s = k * config.tick_dt_s
        references[k] = sample_chunk(chunk, start_s, config.horizon_dt_s, now_s, config)
    return references


def bench_mpc(references: np.ndarray, config: MpcConfig) -> dict[str, float]:
    """Median and p99 time of ``JointMpc.step`` over a closed loop through ``references``."""
    mpc = JointMpc(config)
    state = MpcState.at_rest(HOME_POSE)
    seconds = []
    for reference in tqdm(references, desc="MPC", leave=False):
        start = time.perf_counter()
        result = mpc.step(state, reference)
        seconds.append(time.perf_counter() - start)
        state = result.state
    ms = 1e3 * np.array(seconds[50:])  # after warming up
    return {
        "mpc_median_ms": float(np.median(ms)),
        "mpc_p99_ms": float(np.percentile(ms, 99)),
        "mpc_max_ms": float(ms.max()),
        "mpc_fallbacks": float(mpc.fallback_count),
    }


def bench_mpc_cvxpy(references: np.ndarray, config: MpcConfig) -> dict[str, float]:
    """The MPC's problem for all joints through cvxpy's ``solve()``, in the same closed loop."""
    mpc = JointMpc(config)
    joints = [build_joint_problem(config) for _ in range(ACTION_DIM)]
    problem = sum(joint.problem for joint in joints)  # one problem, the joints side by side
    state = MpcState.at_rest(HOME_POSE)
    seconds, difference = [], 0.0
    tau = config.tick_dt_s
    for reference in tqdm(references, desc="cvxpy", leave=False):
        ours = mpc.step(state, reference)
        start = time.perf_counter()
        for joint, theta in zip(joints, mpc.parameters(state, reference), strict=True):
            assign_parameters(joint, theta)
        problem.solve(solver="OSQP", eps_abs=1e-6, eps_rel=1e-6, polishing=True, warm_start=True)
        first = np.array([joint.acceleration.value[0] for joint in joints])
        seconds.append(time.perf_counter() - start)
        difference = max(difference, float(np.max(np.abs(first - ours.state.acceleration))))
        velocity = state.velocity + tau * first
        position = state.position + tau * state.velocity + tau**2 / 2 * first
        state = MpcState(position, velocity, first)
    ms = 1e3 * np.array(seconds[5:])
    return {
        "cvxpy_osqp_median_ms": float(np.median(ms)),
        "cvxpy_osqp_p99_ms": float(np.percentile(ms, 99)),
        "cvxpy_max_first_acceleration_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=2000, help="MPC ticks to time")
    parser.add_argument("--peer-ticks", type=int, default=200, help="ticks for the cvxpy peer")
    parser.add_argument("--skip-peer", action="store_true", help="do not measure cvxpy")
    args = parser.parse_args()

    config = MpcConfig()
    references = chunk_references(max(args.ticks, args.peer_ticks), config)
    figures = bench_mpc(references[: args.ticks], config)
    print(f"MPC: median {figures['mpc_median_ms']:.3f} ms, p99 {figures['mpc_p99_ms']:.3f} ms")
    if not args.skip_peer:
        figures |= bench_mpc_cvxpy(references[: args.peer_ticks], config)
        figures["cvxpy_over_mpc_median"] = (
            figures["cvxpy_osqp_median_ms"] / figures["mpc_median_ms"]
        )
        print(
            f"cvxpy + OSQP: median {figures['cvxpy_osqp_median_ms']:.2f} ms "
            f"({figures['cvxpy_over_mpc_median']:.0f}× the MPC)"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
