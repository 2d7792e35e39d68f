"""Controller speed: the cerebellum's per-tick solvers against plain cvxpy, measured in one run.

Figures (milliseconds per 2 ms controller tick, all 14 joints):
  MPC    ``JointMpc.step`` (horizon 20 × 20 ms) in a closed loop that follows random smooth
         action chunks, a new one every 0.5 s, every third jumping far outside the joint limits;
         goal: median ≤ 1 ms, p99 ≤ 3 ms.
  peer   the same problem (the sum of the 14 per-joint cvxpy problems the MPC is built from)
         solved with cvxpy's ``problem.solve()``: OSQP at eps 1e-6 with polishing, warm-started,
         on the first ticks of the same loop; also the largest difference of its first
         acceleration from the MPC's, as a check that both solve the same problem.

  WBC    ``WholeBodyController.step`` for both arms: frame tasks for the two grippers first,
         posture second; joint position and velocity limits, arm–arm and arm–table collision
         avoidance. Goal: median ≤ 1 ms, and no slower than mink at equal or better accuracy.
         Also in weighted mode (one QP, the formulation mink uses).
  mink   ``mink.solve_ik`` (DAQP) on the same model, from the same start, toward the same targets,
         with the same tasks and limits (its ``CollisionAvoidanceLimit`` on the same geom pairs,
         margins and detection distance); the same number of steps of the same dt. Both report
         the time per step and the final gripper position error.
  loop   a TransferCube expert episode: WBC + MPC + one physics step per 2 ms tick, as a
         real-time factor (simulated time / wall time).

Usage:  .venv/bin/python benchmarks/controllers.py [--ticks 2000] [--peer-ticks 200] [--skip-peer]
Ends with one JSON line of the figures.
"""

import argparse
import json
import time

import gymnasium as gym
import mink
import numpy as np
from tqdm import tqdm

import kinema.sim
from kinema.aloha import ACTION_DIM, ACTION_HIGH, ACTION_LOW, HOME_POSE, MAX_VELOCITY
from kinema.controllers.kinematics import Kinematics
from kinema.controllers.limits import (
    CollisionAvoidanceLimit,
    PositionLimit,
    VelocityLimit,
    aloha_collision_geoms,
)
from kinema.controllers.mpc import (
    JointMpc,
    MpcConfig,
    MpcState,
    assign_parameters,
    build_joint_problem,
    sample_chunk,
)
from kinema.controllers.tasks import FrameTask, PostureTask
from kinema.controllers.wbc import WbcConfig, WholeBodyController
from kinema.sim.experts import run_expert_episode
from kinema.sim.model import build_model

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


IK_DT_S = 0.002  # the controller period
IK_STEPS = 400  # steps per target pair (0.8 s of controller time)
ARM_CLEARANCE_M = 0.01
TABLE_CLEARANCE_M = 0.002
DETECTION_M = 0.1
SITES = ("left/tcp", "right/tcp")


def ik_targets(count: int, seed: int = 1) -> list[np.ndarray]:
    """Reachable target configurations: home plus a random offset of up to ±0.5 rad per joint."""
    rng = np.random.default_rng(seed)
    targets = []
    for _ in range(count):
        q = HOME_POSE + rng.uniform(-0.5, 0.5, size=ACTION_DIM)
        targets.append(np.clip(q, ACTION_LOW, ACTION_HIGH))
    return targets


def _position_error_mm(kinematics: Kinematics, goals: dict[str, np.ndarray]) -> float:
    return 1e3 * max(
        float(np.linalg.norm(kinematics.frame_pose(site).position - goals[site].position))
        for site in SITES
    )


def bench_wbc(targets: list[np.ndarray], mode: str = "hierarchical") -> dict[str, float]:
    """Our WBC toward each target's gripper poses: time per step and final position error.

    In "hierarchical" mode the frame tasks outrank the posture; in "weighted" mode all three
    share one QP, as in mink (keys then start with ``wbc_weighted_``).
    """
    model = build_model("")
    kinematics = Kinematics(model)
    frames = [FrameTask(site, 1.0, 1.0) for site in SITES]
    left, right = (aloha_collision_geoms(model, arm) for arm in ("left", "right"))
    limits = [
        PositionLimit(),
        VelocityLimit(),
        CollisionAvoidanceLimit(
            model,
            [(left, right), (left + right, [model.geom("table").id])],
            [ARM_CLEARANCE_M, TABLE_CLEARANCE_M],
            DETECTION_M,
        ),
    ]
    wbc = WholeBodyController(
        kinematics, [frames, [PostureTask(HOME_POSE, 1e-2)]], limits, WbcConfig(mode=mode)
    )
    seconds, errors = [], []
    for target in tqdm(targets, desc="WBC", leave=False):
        kinematics.configure(target)
        goals = {site: kinematics.frame_pose(site) for site in SITES}
        for task, site in zip(frames, SITES, strict=True):
            task.set_target(goals[site])
        q = HOME_POSE.copy()
        for _ in range(IK_STEPS):
            start = time.perf_counter()
            q = wbc.step(q).configuration
            seconds.append(time.perf_counter() - start)
        kinematics.configure(q)
        errors.append(_position_error_mm(kinematics, goals))
    ms = 1e3 * np.array(seconds)
    prefix = "wbc" if mode == "hierarchical" else f"wbc_{mode}"
    return {
        f"{prefix}_median_ms": float(np.median(ms)),
        f"{prefix}_p99_ms": float(np.percentile(ms, 99)),
        f"{prefix}_err_mm": float(np.mean(errors)),
        f"{prefix}_max_err_mm": float(np.max(errors)),
    }


def bench_mink(targets: list[np.ndarray]) -> dict[str, float]:
    """mink's ``solve_ik`` (DAQP) on the same model, tasks, limits, targets and steps."""
    model = build_model("")
    kinematics = Kinematics(model)  # only to set up identical targets and measure errors
    configuration = mink.Configuration(model)
    frames = [
        mink.FrameTask(site, "site", position_cost=1.0, orientation_cost=1.0) for site in SITES
    ]
    posture = mink.PostureTask(model, cost=1e-2)
    left, right = (aloha_collision_geoms(model, arm) for arm in ("left", "right"))
    joint_names = [model.joint(j).name for j in range(model.njnt)]
    velocity = MAX_VELOCITY
    limits = [
        mink.ConfigurationLimit(model),
        mink.VelocityLimit(model, {name: float(velocity[0]) for name in joint_names}),
        mink.CollisionAvoidanceLimit(model, [(left, right)], 0.85, ARM_CLEARANCE_M, DETECTION_M),
        mink.CollisionAvoidanceLimit(
            model, [(left + right, [model.geom("table").id])], 0.85, TABLE_CLEARANCE_M, DETECTION_M
        ),
    ]
    seconds, errors = [], []
    for target in tqdm(targets, desc="mink", leave=False):
        kinematics.configure(target)
        goals = {site: kinematics.frame_pose(site) for site in SITES}
        for task, site in zip(frames, SITES, strict=True):
            goal = goals[site]
            task.set_target(
                mink.SE3.from_rotation_and_translation(
                    mink.SO3.from_matrix(goal.rotation), goal.position
                )
            )
        kinematics.configure(HOME_POSE)
        configuration.update(kinematics.data.qpos.copy())
        posture.set_target(configuration.q.copy())
        for _ in range(IK_STEPS):
            start = time.perf_counter()
            v = mink.solve_ik(configuration, [*frames, posture], IK_DT_S, "daqp", limits=limits)
            configuration.integrate_inplace(v, IK_DT_S)
            seconds.append(time.perf_counter() - start)
        errors.append(
            1e3
            * max(
                float(
                    np.linalg.norm(
                        configuration.get_transform_frame_to_world(site, "site").translation()
                        - goals[site].position
                    )
                )
                for site in SITES
            )
        )
    ms = 1e3 * np.array(seconds)
    return {
        "mink_median_ms": float(np.median(ms)),
        "mink_p99_ms": float(np.percentile(ms, 99)),
        "mink_err_mm": float(np.mean(errors)),
        "mink_max_err_mm": float(np.max(errors)),
    }


def bench_control_loop(seed: int = 0) -> dict[str, float]:
    """Real-time factor of a TransferCube expert episode at 500 Hz (WBC + MPC + physics)."""
    env = gym.make(kinema.sim.env_id("TransferCube")).unwrapped
    start = time.perf_counter()
    episode = run_expert_episode(env, "TransferCube", seed)
    wall_s = time.perf_counter() - start
    simulated_s = episode.frames * 0.02
    return {
        "loop_tick_ms": 1e3 * wall_s / (episode.frames * 10),
        "loop_realtime_factor": simulated_s / wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=2000, help="MPC ticks to time")
    parser.add_argument("--peer-ticks", type=int, default=200, help="ticks for the cvxpy peer")
    parser.add_argument("--skip-peer", action="store_true", help="do not measure cvxpy")
    parser.add_argument("--ik-targets", type=int, default=10, help="target pairs for WBC/mink")
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
    targets = ik_targets(args.ik_targets)
    figures |= bench_wbc(targets)
    figures |= bench_wbc(targets, mode="weighted")
    figures |= bench_mink(targets)
    figures["mink_over_wbc_median"] = figures["mink_median_ms"] / figures["wbc_median_ms"]
    figures["mink_over_wbc_weighted_median"] = (
        figures["mink_median_ms"] / figures["wbc_weighted_median_ms"]
    )
    for name, key in (("WBC", "wbc"), ("WBC weighted", "wbc_weighted"), ("mink", "mink")):
        print(
            f"{name}: median {figures[key + '_median_ms']:.3f} ms per step, final error "
            f"{figures[key + '_err_mm']:.3f} mm (worst {figures[key + '_max_err_mm']:.3f} mm)"
        )
    figures |= bench_control_loop()
    print(
        f"control loop: {figures['loop_tick_ms']:.3f} ms per 2 ms tick, "
        f"{figures['loop_realtime_factor']:.2f}× real time"
    )
    print(json.dumps({key: round(value, 4) for key, value in figures.items()}))


if __name__ == "__main__":
    main()
