"""Seeded episodes spread over workers: inline, local processes, or a Ray cluster.

``map_episodes(setup, episode, seeds, config)`` runs ``episode(state, seed)`` for every seed,
where ``state = setup()`` is built once per worker (a policy loaded once, say), and returns
the results in the order of ``seeds``, whichever finished first. The same call runs

- inline in this process (``workers=1``, no Ray address): debuggable, no pickling;
- in ``workers`` local processes (spawned, so safe next to torch and CUDA; one torch thread
  each, since the episodes are the parallelism);
- on a Ray cluster (``ray_address``: ``auto``, ``ray://host:10001``, or ``local`` to start
  one here): one actor per worker (one CPU each) runs ``setup`` once and then takes seeds as
  it frees up, so a slow episode does not hold back the others and actors a busy cluster
  starts late simply join in. Ray is imported only here (``pip install 'kinema[ray]'``).

``setup`` and ``episode`` must be picklable: module-level functions, ``functools.partial``s of
them or instances of module-level classes. Ray workers may run on machines that cannot read
this one's files: ``PoolConfig.portable(folder)`` carries a folder's files inside the setup
(through Ray's object store, once per run) where a Ray address is set, and reads it in place
otherwise. Whatever the worker imports must be installed on it (kinema and its dependencies).

A failing episode raises ``EpisodeError`` naming its seed, with the worker's exception (and,
from a process or Ray, its remote traceback) as the cause.

Example:
    results = map_episodes(
        partial(load_policy, folder), partial(play, task="TransferCube"), range(100, 150),
        PoolConfig(workers=8, ray_address="auto"),
    )
"""

import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm


@dataclass(frozen=True)
class PoolConfig:
    """Where the episodes run.

    Attributes:
        workers: episodes in parallel: local worker processes, or Ray actors (one CPU each)
            with ``ray_address``; 1 without a Ray address runs them inline in this process.
        ray_address: the Ray cluster to run on (``auto``: the one this machine belongs to,
            ``ray://host:10001``: a remote one through Ray Client, ``local``: start one here
            for this run); None runs locally.
    """

    workers: int = 2
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")

    def portable(self, folder: Path) -> "PortableFolder":
        """``folder`` as the workers can open it: its files carried along for Ray (whose
        workers may be on other machines), the path alone otherwise."""
        folder = Path(folder)
        if self.ray_address is None:
            return PortableFolder(folder)
        return PortableFolder.packed(folder)


@dataclass(frozen=True)
class PortableFolder:
    """A folder a worker can open wherever it runs: the path, and optionally the files.

    Attributes:
        path: the folder on the machine that made this.
        files: its files (path relative to the folder → contents), carried in the pickle;
            None: the workers read ``path`` itself.
    """

    path: Path
    files: Mapping[str, bytes] | None = None

    @classmethod
    def packed(cls, path: Path) -> "PortableFolder":
        """``path`` with every file under it read in."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder")
        files = {
            file.relative_to(path).as_posix(): file.read_bytes()
            for file in sorted(path.rglob("*"))
            if file.is_file()
        }
        return cls(path, files)

    @contextmanager
    def opened(self) -> Iterator[Path]:
        """A local folder holding the files while the context lasts: ``path`` itself, or a
        temporary copy of the carried files."""
        if self.files is None:
            yield self.path
            return
        with tempfile.TemporaryDirectory(prefix=f"kinema-{self.path.name}-") as copy:
            for name, content in self.files.items():
                target = Path(copy, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            yield Path(copy)


class EpisodeError(RuntimeError):
    """An episode raised; ``seed`` names it, the worker's exception is ``__cause__``."""

    def __init__(self, seed: int, error: BaseException):
        super().__init__(f"the episode of seed {seed} failed: {type(error).__name__}: {error}")
        self.seed = seed


def map_episodes[S, R](
    setup: Callable[[], S],
    episode: Callable[[S, int], R],
    seeds: Iterable[int],
    config: PoolConfig,
    description: str = "episodes",
    postfix: Callable[[Sequence[R]], Mapping[str, Any]] | None = None,
) -> list[R]:
    """``episode(setup(), seed)`` for every seed, with ``setup`` run once per worker; the
    results in the order of ``seeds``.

    ``description`` labels the tqdm bar, which advances as results arrive; ``postfix``, given
    the results so far (in arrival order), adds figures to it (a running success count, say).
    Raises ``EpisodeError`` (naming the seed) when an episode raises; the episodes not yet
    started are then dropped.
    """
    seeds = list(seeds)
    if not seeds:
        return []
    progress = tqdm(total=len(seeds), desc=description, unit="episode")
    arrived: list[R] = []

    def advance(result: R) -> None:
        arrived.append(result)
        progress.update()
        if postfix is not None:
            progress.set_postfix(postfix(arrived))

    workers = min(config.workers, len(seeds))
    try:
        if config.ray_address is not None:
            return _on_ray(setup, episode, seeds, workers, config.ray_address, advance)
        if workers > 1:
            return _in_processes(setup, episode, seeds, workers, advance)
        return _inline(setup, episode, seeds, advance)
    finally:
        progress.close()


def _inline[S, R](
    setup: Callable[[], S],
    episode: Callable[[S, int], R],
    seeds: list[int],
    advance: Callable[[R], None],
) -> list[R]:
    state = setup()
    results = []
    for seed in seeds:
        try:
            result = episode(state, seed)
        except Exception as error:
            raise EpisodeError(seed, error) from error
        advance(result)
        results.append(result)
    return results


def _one_torch_thread() -> None:
    """One intra-op thread per worker: the workers are the parallelism, and more threads per
    worker would only contend for the same cores."""
    import torch

    torch.set_num_threads(1)


# A worker process's state and episode function, set once by _start_process.
_process_worker: tuple[Any, Callable[[Any, int], Any]] | None = None


def _start_process(setup: Callable[[], Any], episode: Callable[[Any, int], Any]) -> None:
    global _process_worker
    _one_torch_thread()
    _process_worker = (setup(), episode)


def _process_episode(seed: int) -> Any:
    assert _process_worker is not None, "the worker process was not started"
    state, episode = _process_worker
    return episode(state, seed)


def _in_processes[S, R](
    setup: Callable[[], S],
    episode: Callable[[S, int], R],
    seeds: list[int],
    workers: int,
    advance: Callable[[R], None],
) -> list[R]:
    results: dict[int, R] = {}
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_start_process,
        initargs=(setup, episode),
    ) as pool:
        futures: dict[Future[R], int] = {
            pool.submit(_process_episode, seed): index for index, seed in enumerate(seeds)
        }
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    results[index] = future.result()
                except Exception as error:
                    raise EpisodeError(seeds[index], error) from error
                advance(results[index])
        finally:
            pool.shutdown(cancel_futures=True)
    return [results[index] for index in range(len(seeds))]


class _EpisodeActor:
    """A Ray worker: runs the setup once, then one episode per ``run`` call.

    Ray puts the driver's working directory first on every worker's ``sys.path``, after any
    worker setup hook and before a task's arguments are unpickled; from a kinema checkout its
    top-level ``datasets/`` folder would then shadow Hugging Face ``datasets`` (the reason
    kinema runs under ``python -P``). So the setup and the episode function come as a
    reference nested in a list, which Ray leaves unresolved, and are fetched only once that
    directory is off the path: the worker imports kinema as installed, like the driver.
    """

    def __init__(self, work: list[Any], driver_directory: str):
        import ray

        sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry) != driver_directory]
        setup, self.episode = ray.get(work[0])
        _one_torch_thread()
        self.state = setup()

    def ready(self) -> None:
        """Resolves once the setup is done: the actor can take a seed."""

    def run(self, seed: int) -> Any:
        return self.episode(self.state, seed)


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "running episodes on a Ray cluster (--ray-address) needs Ray: pip install 'kinema[ray]'"
        ) from error
    return ray


def connect_ray(address: str, **init: Any) -> bool:
    """Connect this process to the Ray cluster at ``address`` (``local``: start one here)
    unless it is already connected; ``init`` goes to ``ray.init`` (``num_cpus=2``, say).
    Returns whether it connected now (and so should call ``ray.shutdown()`` when done)."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    ray.init(address=address, **init)
    return True


def _on_ray[S, R](
    setup: Callable[[], S],
    episode: Callable[[S, int], R],
    seeds: list[int],
    workers: int,
    address: str,
    advance: Callable[[R], None],
) -> list[R]:
    ray = _import_ray()
    connected_now = connect_ray(address)
    actors = []
    try:
        # one copy of the work (and of any folder the setup carries) in the object store
        work = ray.put((setup, episode))
        driver_directory = os.path.abspath(os.curdir)
        actor_class = ray.remote(num_cpus=1)(_EpisodeActor)
        actors = [actor_class.remote([work], driver_directory) for _ in range(workers)]
        # each ref in flight: (its actor, the index of its seed; None for the actor's ready())
        in_flight: dict[Any, tuple[Any, int | None]] = {
            actor.ready.remote(): (actor, None) for actor in actors
        }
        results: dict[int, R] = {}
        next_index = 0
        # an actor the cluster cannot place yet gets no seed: the others finish the run
        while len(results) < len(seeds):
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor, index = in_flight.pop(ref)
            try:
                value = ray.get(ref)
            except Exception as error:
                if index is None:
                    raise RuntimeError(f"a Ray worker's setup failed: {error}") from error
                raise EpisodeError(seeds[index], error) from error
            if index is not None:
                results[index] = value
                advance(value)
            if next_index < len(seeds):
                in_flight[actor.run.remote(seeds[next_index])] = (actor, next_index)
                next_index += 1
        return [results[index] for index in range(len(seeds))]
    finally:
        for actor in actors:
            ray.kill(actor)
        if connected_now:
            ray.shutdown()
