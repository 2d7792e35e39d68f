"""JointMpc: limits in closed loop, agreement with cvxpy, fallback, tracking and bad inputs."""

import cvxpy as cp
import daqp
import numpy as np
import pytest

from kinema.aloha import ACTION_DIM, HOME_POSE
from kinema.controllers.mpc import (
    PARAMETER_NAMES,
    JointMpc,
    MpcConfig,
    MpcError,
    MpcState,
    assign_parameters,
    recoverable_bounds,
    sample_chunk,
)

CONFIG = MpcConfig()
N, H, TAU = CONFIG.horizon_steps, CONFIG.horizon_dt_s, CONFIG.tick_dt_s
LOWER, UPPER = np.array(CONFIG.lower_rad), np.array(CONFIG.upper_rad)
V_MAX = np.array(CONFIG.max_velocity_rad_s)
A_MAX = np.array(CONFIG.max_acceleration_rad_s2)
TOL = 1e-6
PRECISE = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-12}


@pytest.fixture(scope="module")
def mpc() -> JointMpc:
    return JointMpc(CONFIG)


def run(mpc: JointMpc, state: MpcState, references: np.ndarray) -> list[MpcState]:
    """Closed loop over ``references`` (ticks, N, 14); the commanded states, first one included."""
    states = [state]
    for reference in references:
        result = mpc.step(states[-1], reference)
        assert result.status == "optimal", result.reason
        np.testing.assert_array_equal(result.command.position, result.state.position)
        np.testing.assert_array_equal(result.command.velocity, result.state.velocity)
        states.append(result.state)
    return states


def assert_within_limits_and_consistent(states: list[MpcState]) -> None:
    position = np.array([s.position for s in states])
    velocity = np.array([s.velocity for s in states])
    acceleration = np.array([s.acceleration for s in states])
    assert np.all(position >= LOWER - TOL) and np.all(position <= UPPER + TOL)
    assert np.all(np.abs(velocity) <= V_MAX + TOL)
    assert np.all(np.abs(acceleration) <= A_MAX + TOL)
    # Each tick follows the double integrator with the acceleration it reports.
    a = acceleration[1:]
    np.testing.assert_allclose(velocity[1:], velocity[:-1] + TAU * a, atol=1e-9)
    np.testing.assert_allclose(
        position[1:], position[:-1] + TAU * velocity[:-1] + TAU**2 / 2 * a, atol=1e-9
    )


def held_references(targets: np.ndarray, ticks_each: int) -> np.ndarray:
    """Each target (14,) held as the whole reference for ``ticks_each`` ticks."""
    return np.repeat(targets[:, None, :], N, axis=1).repeat(ticks_each, axis=0)


@pytest.mark.parametrize(
    "kind", ["steps far outside the limits", "fast jumps inside", "huge values", "noise"]
)
def test_closed_loop_keeps_every_command_within_limits(mpc, kind):
    rng = np.random.default_rng(len(kind))
    span = UPPER - LOWER
    if kind == "steps far outside the limits":
        references = held_references(LOWER + span * rng.uniform(-1.0, 2.0, (8, ACTION_DIM)), 40)
    elif kind == "fast jumps inside":
        references = held_references(LOWER + span * rng.uniform(0, 1, (32, ACTION_DIM)), 10)
    elif kind == "huge values":
        references = held_references(rng.choice([-1e9, 1e9], (6, ACTION_DIM)), 50)
    else:
        references = HOME_POSE + rng.normal(0, 2.0, (300, N, ACTION_DIM))
    states = run(mpc, MpcState.at_rest(HOME_POSE), references)
    assert_within_limits_and_consistent(states)


def random_recoverable_state(rng: np.random.Generator) -> MpcState:
    """A state the MPC can reach: within the limits and able to brake inside them."""
    while True:
        position = rng.uniform(LOWER, UPPER)
        velocity = rng.uniform(-V_MAX, V_MAX)
        low, high = recoverable_bounds(position, velocity, CONFIG)
        if np.all(low <= high) and np.all(high >= -A_MAX) and np.all(low <= A_MAX):
            return MpcState(position, velocity, rng.uniform(-A_MAX, A_MAX))


def test_first_command_matches_a_precise_cvxpy_solve(mpc):
    rng = np.random.default_rng(0)
    joint = mpc.joint_problem
    for _ in range(12):
        state = random_recoverable_state(rng)
        reference = rng.uniform(LOWER - 1.0, UPPER + 1.0, (N, ACTION_DIM))
        result = mpc.step(state, reference)
        assert result.status == "optimal", result.reason
        for j, theta in enumerate(mpc.parameters(state, reference)):
            assign_parameters(joint, theta)
            joint.problem.solve(solver="CLARABEL", **PRECISE)
            assert joint.problem.status == cp.OPTIMAL
            # The canonical data reproduce cvxpy's whole plan ...
            theta1 = np.append(theta, 1.0)
            plan, _, exitflag, _ = daqp.solve(
                mpc.qp.hessian, mpc.qp.cost_map @ theta1, mpc.qp.rows, mpc.qp.bound_map @ theta1
            )
            assert exitflag == 1
            np.testing.assert_allclose(plan, joint.acceleration.value, atol=1e-3)
            # ... and the MPC's command is the plan's first tick.
            a0 = joint.acceleration.value[0]
            expected = (
                state.position[j] + TAU * state.velocity[j] + TAU**2 / 2 * a0,
                state.velocity[j] + TAU * a0,
                a0,
            )
            got = (result.state.position[j], result.state.velocity[j], result.state.acceleration[j])
            np.testing.assert_allclose(got, expected, atol=1e-3)


def test_parameter_layout_and_cost_follow_the_documented_math(mpc):
    """θ columns are the named parameters, and the cvxpy cost equals the written-out sums."""
    rng = np.random.default_rng(1)
    state = random_recoverable_state(rng)
    reference = rng.uniform(LOWER, UPPER, (N, ACTION_DIM))
    theta = mpc.parameters(state, reference)[3]
    joint = mpc.joint_problem
    assign_parameters(joint, theta)
    named = {parameter.name(): parameter.value for parameter in joint.parameters}
    assert list(named) == list(PARAMETER_NAMES)
    assert named["position"] == state.position[3] and named["velocity"] == state.velocity[3]
    np.testing.assert_array_equal(named["reference"], reference[:, 3])

    def written_out(a: np.ndarray) -> float:
        p, v = named["position"], named["velocity"]
        velocity = v + H * np.cumsum(a)
        position = p + H * np.cumsum(np.concatenate([[v], velocity[:-1]])) + H**2 / 2 * np.cumsum(a)
        jerk = np.diff(np.concatenate([[named["acceleration"]], a])) / H
        return (
            CONFIG.tracking_weight * np.sum((position - named["reference"]) ** 2)
            + CONFIG.jerk_weight * np.sum(jerk**2)
            + CONFIG.effort_weight * np.sum(a**2)
        )

    def modelled(a: np.ndarray) -> float:
        joint.acceleration.value = a
        return joint.problem.objective.value

    a1, a2 = rng.uniform(-20, 20, (2, N))
    # Equal up to the dropped parameter-only constant.
    np.testing.assert_allclose(
        modelled(a1) - modelled(a2), written_out(a1) - written_out(a2), rtol=1e-9
    )


def test_solver_failure_falls_back_to_braking_within_limits():
    mpc = JointMpc(MpcConfig(iteration_limit=1))
    velocity = np.full(ACTION_DIM, 0.5)
    velocity[[6, 13]] = -0.5  # open grippers close
    state = MpcState(HOME_POSE, velocity, np.zeros(ACTION_DIM))
    result = mpc.step(state, np.tile(UPPER + 1.0, (N, 1)))
    assert result.status == "fallback" and "iteration limit" in result.reason
    assert mpc.fallback_count == 1
    assert_within_limits_and_consistent([state, result.state])
    assert np.all(np.abs(result.state.velocity) < np.abs(state.velocity))


def test_inconsistent_state_falls_back_and_recovers(mpc):
    before = mpc.fallback_count
    position = HOME_POSE.copy()
    position[2] = UPPER[2] + 0.1  # beyond the elbow limit, still moving outward
    velocity = np.zeros(ACTION_DIM)
    velocity[2] = 1.0
    state = MpcState(position, velocity, np.zeros(ACTION_DIM))
    reference = np.tile(HOME_POSE, (N, 1))
    result = mpc.step(state, reference)
    assert result.status == "fallback" and "joint 2: DAQP infeasible" in result.reason
    assert mpc.fallback_count == before + 1
    assert result.state.position[2] == UPPER[2] and result.state.velocity[2] < 1.0
    for _ in range(100):  # braking brings it back to a state the MPC can plan from
        result = mpc.step(result.state, reference)
    assert result.status == "optimal"


def test_tracks_a_smooth_reference_closely(mpc):
    duration_s, amplitude, frequency = 3.0, 0.3, 0.5
    times = np.arange(0, duration_s + 1.0, H)
    phase = np.linspace(0, np.pi, ACTION_DIM)
    center = HOME_POSE.copy()
    center[[6, 13]] = 0.5  # grippers half open
    chunk = center + amplitude * np.sin(2 * np.pi * frequency * times[:, None] + phase)
    ticks = int(duration_s / TAU)
    references = np.array([sample_chunk(chunk, 0.0, H, k * TAU, CONFIG) for k in range(ticks)])
    states = run(mpc, MpcState.at_rest(chunk[0]), references)
    assert_within_limits_and_consistent(states)
    # The commanded state k is at time k·τ; compare it with the chunk signal at that time.
    truth = np.array([np.interp(np.arange(ticks + 1) * TAU, times, c) for c in chunk.T]).T
    error = np.abs(np.array([s.position for s in states]) - truth)
    assert np.max(error[ticks // 3 :]) < 1e-2


def test_step_reference_is_approached_within_limits(mpc):
    target = HOME_POSE.copy()
    target[[0, 2, 6, 7]] = [1.5, 3.0, 0.0, -2.5]  # elbow beyond its limit, gripper closing
    states = run(mpc, MpcState.at_rest(HOME_POSE), held_references(target[None], 1000))
    assert_within_limits_and_consistent(states)
    np.testing.assert_allclose(states[-1].position, np.clip(target, LOWER, UPPER), atol=1e-4)
    speeds = np.abs(np.array([s.velocity for s in states]))
    assert speeds[:, 0].max() > 0.99 * V_MAX[0]  # a long move uses the full velocity


def test_sample_chunk_interpolates_and_holds_the_last_action():
    chunk = np.arange(5.0)[:, None] * np.ones(ACTION_DIM)  # action i = i, at 1.0 + 0.02 i
    reference = sample_chunk(chunk, 1.0, 0.02, now_s=1.005, config=CONFIG)
    assert reference.shape == (N, ACTION_DIM)
    np.testing.assert_allclose(reference[:3, 0], [1.25, 2.25, 3.25])
    np.testing.assert_allclose(reference[4:, 0], 4.0)
    before = sample_chunk(chunk, 1.0, 0.02, now_s=0.5, config=CONFIG)
    np.testing.assert_allclose(before[0], chunk[0])
    single = sample_chunk(chunk[:1], 1.0, 0.02, now_s=1.0, config=CONFIG)
    np.testing.assert_allclose(single, np.tile(chunk[0], (N, 1)))


def test_bad_shapes_and_values_raise_clear_errors(mpc):
    state = MpcState.at_rest(HOME_POSE)
    with pytest.raises(MpcError, match=r"reference must have shape \(20, 14\)\. Got \(5, 14\)\."):
        mpc.step(state, np.zeros((5, ACTION_DIM)))
    reference = np.tile(HOME_POSE, (N, 1))
    reference[3, 4] = np.nan
    with pytest.raises(MpcError, match=r"reference must be finite.*\[\[3, 4\]\]"):
        mpc.step(state, reference)
    with pytest.raises(MpcError, match=r"state.velocity must have shape \(14,\)\. Got \(7,\)\."):
        mpc.step(state._replace(velocity=np.zeros(7)), np.tile(HOME_POSE, (N, 1)))
    with pytest.raises(MpcError, match=r"state.position must be finite"):
        mpc.step(state._replace(position=np.full(ACTION_DIM, np.inf)), np.tile(HOME_POSE, (N, 1)))
    with pytest.raises(MpcError, match=r"chunk must have shape \(H, 14\)\. Got \(14,\)\."):
        sample_chunk(HOME_POSE, 0.0, 0.02, 0.0, CONFIG)
    with pytest.raises(MpcError, match=r"max_velocity_rad_s must have 14 entries\. Got 3\."):
        MpcConfig(max_velocity_rad_s=(1.0, 1.0, 1.0))
