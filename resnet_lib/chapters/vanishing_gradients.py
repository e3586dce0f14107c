"""Chapter 2's studies: how large is the gradient at each layer of a deep net, at initialization and
after a few training steps (:func:`measure_gradient_flow`, :func:`gradient_flow_study`), and two
kinds of explosion against depth (:func:`explosion_by_depth`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset
from resnet_lib.measure.gradients import gradient_norms_per_layer
from resnet_lib.models.deep import ARCHITECTURES, deep_net
from resnet_lib.profiles import GradientFlowExperiment
from resnet_lib.threads import single_thread
from resnet_lib.training import History, fit


@dataclass
class GradientFlow:
    """Per-layer gradient norms of one kind of deep net over several seeds.

    ``at_init`` and ``trained`` have one row per seed and one column per weight layer
    (layer 1 = input side); ``trained`` is measured after ``steps`` SGD steps (``None``
    when ``steps == 0``), and ``histories`` holds each seed's training :class:`History`.
    """

    arch: str
    activation: str
    batch_norm: bool
    init_scale: float
    depth: int
    width: int
    seeds: tuple[int, ...]
    steps: int
    at_init: np.ndarray
    trained: np.ndarray | None = None
    histories: list[History] = field(default_factory=list)

    @property
    def step_losses(self) -> list[list[float]]:
        """Each seed's training loss at every step (a diverged run ends with its non-finite loss)."""
        return [h.step_losses for h in self.histories]

    @property
    def diverged(self) -> list[bool]:
        """Per seed: did the training loss become NaN or infinite?"""
        return [h.diverged for h in self.histories]

    @property
    def label(self) -> str:
        """``sigmoid``, ``tanh``, ``relu`` with ``+bn`` appended for BatchNorm."""
        return self.activation + ("+bn" if self.batch_norm else "")

    def norms(self, when: str = "init") -> np.ndarray:
        """The (seeds, layers) array measured at ``"init"`` or after training (``"trained"``)."""
        if when == "init":
            return self.at_init
        if when == "trained":
            if self.trained is None:
                raise ValueError("this GradientFlow was measured at initialization only (steps=0)")
            return self.trained
        raise ValueError(f"unknown moment {when!r}; choose one of: init, trained")

    def first_to_last(self, when: str = "init") -> np.ndarray:
        """Per seed: gradient norm of layer 1 (input side) divided by that of the last layer."""
        norms = self.norms(when)
        return norms[:, 0] / norms[:, -1]

    def per_layer_factor(self, when: str = "init") -> np.ndarray:
        """Per seed: the geometric-mean factor by which the norm changes from one hidden layer
        to the one before it (input-ward), over hidden layers 2 .. depth-1. Below 1: vanishing."""
        norms = self.norms(when)
        if self.depth < 4:
            raise ValueError(f"per_layer_factor needs depth >= 4, got {self.depth}")
        return (norms[:, 1] / norms[:, -2]) ** (1.0 / (self.depth - 3))


def _probe_batch(data: ImageDataset, batch_size: int) -> tuple[Tensor, Tensor]:
    """The fixed batch every gradient is measured on: the first ``batch_size`` training images."""
    return data.train_x[:batch_size], data.train_y[:batch_size]


def measure_gradient_flow(
    arch: str,
    activation: str,
    batch_norm: bool,
    data: ImageDataset,
    experiment: GradientFlowExperiment,
    init_scale: float = 1.0,
    depth: int | None = None,
    steps: int | None = None,
    seeds: tuple[int, ...] | None = None,
    progress: bool = True,
) -> GradientFlow:
    """Build ``arch``-``activation`` nets (one per seed), measure per-layer gradient norms on a
    fixed batch at initialization, train each for ``steps`` SGD steps with :func:`resnet_lib.fit`
    (``experiment.recipe``), and measure again. ``depth``/``steps``/``seeds`` default to the
    experiment's; ``steps=0`` measures at initialization only."""
    depth = experiment.depth if depth is None else depth
    steps = experiment.train_steps if steps is None else steps
    seeds = tuple(experiment.seeds if seeds is None else seeds)
    width = experiment.width_for(arch)
    x, y = _probe_batch(data, experiment.batch_size)
    at_init, trained, histories = [], [], []
    label = activation + ("+BN" if batch_norm else "")
    for seed in tqdm(seeds, desc=f"{arch} {label}", disable=not progress, leave=False, unit="seed"):
        with single_thread():
            torch.manual_seed(seed)
            net = deep_net(arch, depth, width, activation, batch_norm, init_scale, image_size=data.image_size)
            at_init.append(gradient_norms_per_layer(net, x, y))
            if steps:
                history = fit(net, data, experiment.recipe(steps, len(data.train_y)), seed=seed, progress=False)
                trained.append(gradient_norms_per_layer(net, x, y))
                histories.append(history)
    return GradientFlow(
        arch=arch,
        activation=activation,
        batch_norm=batch_norm,
        init_scale=init_scale,
        depth=depth,
        width=width,
        seeds=seeds,
        steps=steps,
        at_init=np.array(at_init),
        trained=np.array(trained) if steps else None,
        histories=histories,
    )


#: The four settings the chapter compares, as (activation, batch_norm).
SETTINGS: tuple[tuple[str, bool], ...] = (("sigmoid", False), ("tanh", False), ("relu", False), ("relu", True))


def gradient_flow_study(
    data: ImageDataset,
    experiment: GradientFlowExperiment,
    archs: tuple[str, ...] = ARCHITECTURES,
    settings: tuple[tuple[str, bool], ...] = SETTINGS,
    progress: bool = True,
) -> dict[tuple[str, str], GradientFlow]:
    """:func:`measure_gradient_flow` for every architecture and setting, keyed ``(arch, label)``."""
    jobs = [(arch, act, bn) for arch in archs for act, bn in settings]
    out = {}
    for arch, act, bn in tqdm(jobs, desc="gradient flow", disable=not progress, unit="net"):
        flow = measure_gradient_flow(arch, act, bn, data, experiment, progress=False)
        out[(arch, flow.label)] = flow
    return out


@dataclass
class ExplosionByDepth:
    """Chapter 2's two kinds of explosion, measured at initialization on nets of several depths.

    Arrays are ``(len(depths), len(seeds))``, log10 of a ratio of gradient norms:
    ``raw_lift`` and ``doubled_lift``: layer 1's gradient of the ReLU net on raw pixels, and with
    twice the He initialization, over that of the He-initialized ReLU net on normalized images
    (how much larger *every* layer's gradient is); ``*_tilt``: layer 1's gradient over the last
    layer's in the same net (growth *across* layers, towards the input). ``tanh_tilt`` is a tanh
    net at twice its recommended gain, whose gradient grows by a factor per layer on its way back.
    """

    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    raw_lift: np.ndarray
    doubled_lift: np.ndarray
    raw_tilt: np.ndarray
    doubled_tilt: np.ndarray
    tanh_tilt: np.ndarray
    tanh_factor: np.ndarray


def explosion_by_depth(
    data: ImageDataset, raw: ImageDataset, experiment: GradientFlowExperiment, progress: bool = True
) -> ExplosionByDepth:
    """Gradient norms at initialization of fully connected nets at ``experiment.compound_depths``:
    ReLU on normalized images (the reference), ReLU on ``raw`` pixels, ReLU at init scale 2, tanh at 2."""
    depths, seeds = tuple(experiment.compound_depths), tuple(experiment.seeds)
    rows: dict[str, list] = {k: [] for k in ("raw_lift", "doubled_lift", "raw_tilt", "doubled_tilt", "tanh_tilt")}
    factors = []
    for depth in tqdm(depths, desc="explosion by depth", disable=not progress, leave=False, unit="depth"):

        def flow(activation: str, images: ImageDataset, scale: float, depth: int = depth) -> GradientFlow:
            return measure_gradient_flow(
                "mlp", activation, False, images, experiment, init_scale=scale, depth=depth, steps=0, seeds=seeds,
                progress=False,
            )  # fmt: skip

        normal, on_raw, doubled, tanh = (
            flow("relu", data, 1.0),
            flow("relu", raw, 1.0),
            flow("relu", data, 2.0),
            flow("tanh", data, 2.0),
        )
        rows["raw_lift"].append(np.log10(on_raw.at_init[:, 0] / normal.at_init[:, 0]))
        rows["doubled_lift"].append(np.log10(doubled.at_init[:, 0] / normal.at_init[:, 0]))
        rows["raw_tilt"].append(np.log10(on_raw.first_to_last()))
        rows["doubled_tilt"].append(np.log10(doubled.first_to_last()))
        rows["tanh_tilt"].append(np.log10(tanh.first_to_last()))
        factors.append(tanh.per_layer_factor() if depth > 3 else np.full(len(seeds), np.nan))
    return ExplosionByDepth(depths, seeds, **{k: np.array(v) for k, v in rows.items()}, tanh_factor=np.array(factors))
