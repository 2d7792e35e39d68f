"""Control-loop rate of the ALOHA followers over the Dynamixel bus, through the emulator.

One tick = ``AlohaRobot.observe()`` (one sync read of seven Present_Positions per arm) and
``AlohaRobot.command()`` (one sync write of nine Goal_Positions per arm): the full driver stack,
lerobot's ``DynamixelMotorsBus`` → dynamixel_sdk → pyserial, against ``EmulatedAloha``'s two
emulated buses on ptys with its lockstep physics running (10 MuJoCo steps of 2 ms per tick). The
arms follow a slow sine around the home pose, as fast as the loop goes, for ``--seconds`` after
``--warmup`` ticks.

Goal: ≥ 200 ticks/s (real buses at 1 Mbps top out around 250–400 Hz, see REFERENCE.md).

Usage:  .venv/bin/python benchmarks/bus_rate.py [--seconds 3] [--warmup 100]
Ends with one JSON line: loop_hz, tick_p50_ms, tick_p99_ms, ticks, and the physics' share.
"""

import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from kinema.aloha import HOME_POSE
from kinema.hardware.aloha_robot import AlohaConfig, AlohaRobot
from kinema.hardware.emulated_aloha import EmulatedAloha
from kinema.types import JointCommand


def pose(tick: int) -> np.ndarray:
    """The 14 targets at ``tick``: every joint 0.1 rad · sin at 0.5 cycles per 50 ticks."""
    return HOME_POSE + 0.1 * np.sin(2 * np.pi * 0.01 * tick)


def measure(seconds: float, warmup: int) -> dict[str, float]:
    """Tick times of observe() + command() on the emulated followers; the figures."""
    with EmulatedAloha(task="TransferCube", seed=0) as world:
        config = AlohaConfig(ports=world.ports, calibration=world.calibration)
        with AlohaRobot(config) as robot:
            for tick in range(warmup):
                robot.observe()
                robot.command(JointCommand(pose(tick)))
            sim_start_s = world.sim_time_s
            tick_s: list[float] = []
            start = time.perf_counter()
            with tqdm(desc="ticks", unit="tick", leave=False) as progress:
                while time.perf_counter() - start < seconds:
                    tick_start = time.perf_counter()
                    robot.observe()
                    robot.command(JointCommand(pose(warmup + len(tick_s))))
                    tick_s.append(time.perf_counter() - tick_start)
                    progress.update()
            elapsed_s = time.perf_counter() - start
            simulated_s = world.sim_time_s - sim_start_s
    ms = np.array(tick_s) * 1e3
    return {
        "loop_hz": len(tick_s) / elapsed_s,
        "tick_p50_ms": float(np.percentile(ms, 50)),
        "tick_p99_ms": float(np.percentile(ms, 99)),
        "ticks": len(tick_s),
        "simulated_s_per_s": simulated_s / elapsed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=int, default=100, help="ticks before measuring")
    args = parser.parse_args()
    figures = measure(args.seconds, args.warmup)
    print(
        f"{figures['ticks']} ticks: p50 {figures['tick_p50_ms']:.2f} ms, "
        f"p99 {figures['tick_p99_ms']:.2f} ms, {figures['loop_hz']:.0f} Hz (goal ≥ 200 Hz)"
    )
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}))


if __name__ == "__main__":
    main()
