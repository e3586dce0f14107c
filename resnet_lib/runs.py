"""The CIFAR runs the chapters share: one call trains (or loads) one network of an experiment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import torch

from resnet_lib.data import ImageDataset, load_dataset
from resnet_lib.models import CifarNet, cifar_net
from resnet_lib.profiles import DataSpec, TrainingExperiment, profile_name
from resnet_lib.results import StoredRun, load_or_run
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
    """One trained CIFAR net: its history, its record, and a way to get the trained model."""

    family: str
    depth: int
    seed: int
    history: History
    stored: StoredRun
    width: int
    shortcut: str

    @property
    def label(self) -> str:
        return f"{'ResNet' if self.family == 'residual' else 'plain'}-{self.depth}"

    @property
    def dataset_label(self) -> str:
        return self.stored.record["data"]["label"]

    def model(self) -> CifarNet:
        """The trained network, on the CPU, in eval mode."""
        net = cifar_net(self.family, self.depth, width=self.width, shortcut=self.shortcut)
        return self.stored.load_weights(net).eval()


def cifar_run(
    family: str,
    depth: int,
    experiment: TrainingExperiment,
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
    name = f"{family}{depth}-w{experiment.width}-s{seed}"

    def train(checkpoint):
        torch.manual_seed(seed)
        net = cifar_net(family, depth, width=experiment.width, shortcut=shortcut)
        desc = f"{'ResNet' if family == 'residual' else 'plain'}-{depth} (seed {seed})"
        history = fit(net, data, recipe, seed=seed, checkpoint=checkpoint, progress=progress, desc=desc)
        record = {"history": history.to_dict(), "data": data.describe(), "device": str(device)}
        return record, net.state_dict()

    stored = load_or_run(name, config, train)
    history = History.from_dict(stored.record["history"])
    if history.diverged and stored.from_cache and progress:  # fit said so when it trained; say it again
        print(history.divergence_line(f"{'ResNet' if family == 'residual' else 'plain'}-{depth} (seed {seed})"))
    return CifarRun(family, depth, seed, history, stored, experiment.width, shortcut)
