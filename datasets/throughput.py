"""How fast a loader serves batches: samples per second over a run, startup included.

Used by ``kinema dataset windows`` and ``benchmarks/recording.py`` alike, for our loader and
for lerobot's, so both are timed the same way: from asking for the first batch (worker start,
first decoding) to receiving the last one.

Example:
    figures = measure_throughput(loader, max_batches=50)
    figures["samples_per_s"]
"""

import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def batch_shapes(batch: dict[str, Any]) -> dict[str, list[int]]:
    """Feature name → shape of every tensor in ``batch`` (a list's shape is its length)."""
    return {
        name: list(value.shape) if hasattr(value, "shape") else [len(value)]
        for name, value in batch.items()
    }


def measure_throughput(
    batches: Iterable[dict[str, Any]], max_batches: int | None = None, desc: str = "load"
) -> dict[str, Any]:
    """Iterate over ``batches`` (at most ``max_batches``); the figures of the run.

    Returns: batches, samples, seconds (wall clock), samples_per_s, first_batch_s (the wait
    for the first batch) and shapes (of the first batch).
    """
    start = time.perf_counter()
    samples = count = 0
    first_batch_s = 0.0
    shapes: dict[str, list[int]] = {}
    with tqdm(total=max_batches, desc=desc, unit="batch") as progress:
        for batch in batches:
            if count == 0:
                first_batch_s = time.perf_counter() - start
                shapes = batch_shapes(batch)
            samples += len(batch["episode_index"])
            count += 1
            progress.update()
            if max_batches is not None and count >= max_batches:
                break
    seconds = time.perf_counter() - start
    return {
        "batches": count,
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 1),
        "first_batch_s": round(first_batch_s, 3),
        "shapes": shapes,
    }
