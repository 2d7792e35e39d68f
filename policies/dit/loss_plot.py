"""The PNG of a training run's loss curve: every step faint, a moving average bold, log scale."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np


def save_loss_plot(losses: list[float], path: Path, window: int = 50) -> None:
    """Plot ``losses`` (one per step) with their ``window``-step moving average to ``path``."""
    steps = np.arange(1, len(losses) + 1)
    figure, axis = plt.subplots(figsize=(7, 4), dpi=120)
    axis.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss")
    if len(losses) >= window:
        average = np.convolve(losses, np.ones(window) / window, mode="valid")
        axis.plot(
            steps[window - 1 :], average, color="tab:blue", linewidth=2, label=f"mean of {window}"
        )
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("denoising loss")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
