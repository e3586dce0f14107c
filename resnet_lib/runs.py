"""The CIFAR runs the chapters share: one call trains (or loads) one network of an experiment.

:func:`train_runs` trains several at once: where PyTorch runs one thread per process (the
Makefile's ``OMP_NUM_THREADS=1``), the nets that are not in the results cache yet train in
one worker process per CPU core (:func:`train_in_workers`, which chapter 8 uses too), each on
one thread, so the runs and their cache keys are those of a one-thread run in the notebook itself.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import torch
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset, load_dataset
from resnet_lib.models import FAMILIES, CifarNet, cifar_net, net_label
from resnet_lib.profiles import CifarExperiment, DataSpec, profile_name, set_profile
from resnet_lib.results import RunRecordError, StoredRun, results_cache
from resnet_lib.training import History, default_device, fit, resolve_precision


@lru_cache(maxsize=4)
def experiment_data(spec: DataSpec, seed: int = 0) -> ImageDataset:
    """The dataset of an experiment, generated or read once per process."""
    return load_dataset(spec, seed=seed)


def _sizes(data: ImageDataset) -> dict:
    """How many images a run used (``n_train=None`` means all, and "all" depends on the folder)."""
    return {k: v for k, v in data.describe().items() if k in ("n_train", "n_val", "n_test")}


@dataclass
class CifarRun:
    """One trained CIFAR net (plain or residual): which net, its history, its stored record, its model.

    The one run type of He et al.'s CIFAR experiment: :func:`cifar_run` returns one from the
    results cache, :func:`resnet_lib.full_results.full_results` from a ``python -m
    resnet_lib.reproduce`` folder. It adds to :class:`resnet_lib.results.StoredRun` (the verified
    record on disk, of any run) what a CIFAR net is: family, depth, seed, width and shortcut.
    """

    family: str
    depth: int
    seed: int
    history: History
    stored: StoredRun
    width: int
    shortcut: str

    @classmethod
    def from_stored(cls, stored: StoredRun) -> CifarRun:
        """The CIFAR run ``stored`` holds; a one-line :class:`RunRecordError` when its config is not one's."""
        config = stored.record["config"]
        try:
            model, seed, profile = config["model"], config["seed"], config["profile"]
            fields = (model["family"], model["depth"], seed, model["width"], model["shortcut"], profile)
            ok = [type(v) for v in fields] == [str, int, int, int, str, str] and model["family"] in FAMILIES
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise RunRecordError(f"{stored.json_path}: its config is not a CIFAR run's (model, seed, profile)")
        history = History.from_dict(stored.record["history"])
        return cls(model["family"], model["depth"], seed, history, stored, model["width"], model["shortcut"])

    @property
    def record(self) -> dict:
        """The run's verified JSON record: ``config``, ``history``, ``data``, ``machine``, ..."""
        return self.stored.record

    @property
    def label(self) -> str:
        return net_label(self.family, self.depth)

    @property
    def profile(self) -> str:
        return self.record["config"]["profile"]

    @property
    def dataset_label(self) -> str:
        return self.record["data"]["label"]

    @property
    def diverged(self) -> bool:
        return self.history.diverged

    @property
    def final(self) -> dict:
        """The last epoch's record: ``step``, ``train_error``, ``test_error``, ..."""
        return self.history.final

    def provenance(self) -> dict:
        """Where, when and how this run was made."""
        machine = self.record.get("machine", {})
        return {
            "profile": self.profile,
            "dataset": self.dataset_label,
            "device": machine.get("device", "unknown"),
            "world_size": machine.get("world_size", 1),
            "platform": machine.get("platform", "unknown"),
            "torch": machine.get("torch", "unknown"),
            "created": self.record.get("created", "unknown"),
            "library_hash": self.record.get("library_hash", "")[:12],
            "command": self.record.get("command", ""),
        }

    def model(self) -> CifarNet:
        """The trained network, on the CPU, in eval mode (a one-line ``ValueError`` without its weights)."""
        net = cifar_net(self.family, self.depth, width=self.width, shortcut=self.shortcut)
        return self.stored.load_weights(net).eval()


def _run_config(family: str, depth: int, experiment: CifarExperiment, seed: int, shortcut: str):
    """The results-cache name, configuration and recipe of one run."""
    data = experiment_data(experiment.data)
    device = default_device()
    recipe = experiment.recipe_for(depth)  # the full profile warms ResNet-110 up, as the paper did
    recipe = replace(recipe, precision=resolve_precision(recipe.precision, device))
    config = {
        "model": {"family": family, "depth": depth, "width": experiment.width, "shortcut": shortcut},
        "data": {**asdict(experiment.data), "resolved": data.name, "used": _sizes(data)},  # what was used
        "recipe": recipe.as_dict(),
        "seed": seed,
        "profile": profile_name(),
        "numerics": {"device": device.type, "threads": torch.get_num_threads()},
    }
    return f"{family}{depth}-w{experiment.width}-s{seed}", config, recipe


def cifar_run(
    family: str,
    depth: int,
    experiment: CifarExperiment,
    seed: int = 0,
    shortcut: str = "A",
    progress: bool = True,
) -> CifarRun:
    """Train ``family``-``depth`` (``"plain"`` or ``"residual"``) under ``experiment``, or load it.

    The result is cached by model, data, recipe, seed, profile and library source, and by what
    changes the arithmetic (device type, CPU threads, and the precision ``"auto"`` resolves to),
    so chapters 3 and 5 share their runs, and a notebook re-run loads instead of training.
    """
    data = experiment_data(experiment.data)
    name, config, recipe = _run_config(family, depth, experiment, seed, shortcut)

    def train(checkpoint):
        torch.manual_seed(seed)
        net = cifar_net(family, depth, width=experiment.width, shortcut=shortcut)
        desc = f"{net_label(family, depth)} (seed {seed})"
        history = fit(net, data, recipe, seed=seed, checkpoint=checkpoint, progress=progress, desc=desc)
        record = {"history": history.to_dict(), "data": data.describe(), "device": str(default_device())}
        return record, net.state_dict()

    run = CifarRun.from_stored(results_cache().load_or_run(name, config, train))
    if run.diverged and run.stored.from_cache and progress:  # fit said so when it trained; say it again
        print(run.history.divergence_line(f"{run.label} (seed {seed})"))
    return run


def is_stored(family: str, depth: int, experiment: CifarExperiment, seed: int = 0, shortcut: str = "A") -> bool:
    """Whether :func:`cifar_run` would load this run from the results cache rather than train it."""
    name, config, _ = _run_config(family, depth, experiment, seed, shortcut)
    return results_cache().find(name, config) is not None


def worker_count(jobs: int) -> int:
    """How many processes :func:`train_in_workers` trains ``jobs`` nets in.

    One per CPU core (at most ``jobs``) where PyTorch runs one thread on the CPU, so that a
    worker's run is exactly the one-thread run it replaces; else 1 (PyTorch's own threads, or
    a GPU, already use the machine).
    """
    if default_device().type != "cpu" or torch.get_num_threads() != 1:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(jobs, cores))


def _start_worker(profile: str) -> None:
    """A worker process trains on one thread, at its parent's profile."""
    torch.set_num_threads(1)
    set_profile(profile)


def train_in_workers(
    jobs: Sequence[tuple],
    train_one: Callable[..., object],
    workers: int | None = None,
    progress: bool = True,
    what: str = "training",
) -> bool:
    """Call ``train_one(*job)`` for every job in worker processes, when more than one pays; whether it did.

    ``workers`` defaults to :func:`worker_count`; with one worker, or one job, nothing is done here
    and ``False`` is returned: the caller trains the jobs itself. Each worker is a fresh (spawned)
    process on one thread, at this process's profile; ``train_one`` must be a module-level
    function, and stores what it trains (in the results cache) rather than return it. One
    progress bar, ``"{what} on N processes"``, counts finished jobs; a worker's error is raised here.
    """
    workers = worker_count(len(jobs)) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        return False
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(profile_name(),)) as pool,
        tqdm(total=len(jobs), desc=f"{what} on {workers} processes", unit="net", disable=not progress) as bar,
    ):
        for future in as_completed([pool.submit(train_one, *job) for job in jobs]):
            future.result()
            bar.update(1)
    return True


def _train_in_worker(family: str, depth: int, experiment: CifarExperiment, seed: int, shortcut: str) -> None:
    cifar_run(family, depth, experiment, seed=seed, shortcut=shortcut, progress=False)


def train_runs(
    jobs: list[tuple[str, int, int]],
    experiment: CifarExperiment,
    shortcut: str = "A",
    progress: bool = True,
    workers: int | None = None,
) -> list[CifarRun]:
    """:func:`cifar_run` for every ``(family, depth, seed)`` of ``jobs``, in that order.

    Runs missing from the results cache train first, in :func:`train_in_workers` (one process
    per core where that pays), else one after the other here.
    """
    missing = [(f, d, s) for f, d, s in jobs if not is_stored(f, d, experiment, seed=s, shortcut=shortcut)]
    order = sorted(missing, key=lambda job: -job[1])  # the slowest first: no worker is left with a long run at the end
    train_in_workers([(f, d, experiment, s, shortcut) for f, d, s in order], _train_in_worker, workers, progress)
    return [cifar_run(f, d, experiment, seed=s, shortcut=shortcut, progress=progress) for f, d, s in jobs]


def train_experiment(experiment: CifarExperiment, progress: bool = True) -> list[CifarRun]:
    """Every net of ``experiment``: both families, every depth and seed (what chapters 1, 3 and 5 use)."""
    jobs = [(f, d, s) for f in FAMILIES for d in experiment.depths for s in experiment.seeds]
    return train_runs(jobs, experiment, progress=progress)
