"""Chapter 7 around a net trained to convergence: the published ResNet-56 (Li et al. studied such minimizers).

:func:`converged_landscape` measures, on the first training photos, the filter-normalized 1-D slice
and 2-D surface, the Hessian's extreme eigenvalues and the gradient with its sampling noise at the
published weights; on images unlike CIFAR-10 (the stand-in) it measures only the loss and error at
the weights, which there are near chance. The phrase functions turn the numbers into the words the
page glues: each can say either way, or "not resolved" where the measurement's own noise is larger
than the difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from torch import nn

from resnet_lib.data import ImageDataset
from resnet_lib.measure.landscape import (
    NetLandscape,
    NoisyGradient,
    gradient_with_noise,
    measure_landscape,
    per_image_loss,
)
from resnet_lib.measure.significance import error_interval
from resnet_lib.profiles import ConvergedExperiment, LandscapeExperiment

#: The cross-entropy of a uniform guess over CIFAR-10's 10 classes: ln 10 nats.
CHANCE_LOSS = math.log(10)
#: Equal batches the gradient is split into to measure its sampling noise.
GRADIENT_BATCHES = 8
#: A gradient counts as stationary while its norm is within this many standard errors of zero.
NOISE_MULTIPLE = 2.0


@dataclass(frozen=True)
class ConvergedLandscape:
    """What chapter 7 measured around one published net on ``n_images`` training photos."""

    label: str
    dataset: str
    dataset_label: str
    n_images: int
    centre_loss: float
    centre_loss_se: float
    centre_error: float
    centre_error_interval: tuple[float, float]
    landscape: NetLandscape | None
    gradient: NoisyGradient | None
    seconds: float
    skipped: str | None = None

    @property
    def measured(self) -> bool:
        return self.landscape is not None

    @property
    def centre_is_lowest(self) -> bool:
        """Whether no other point of the 1-D slice or the 2-D grid is lower than the weights themselves (up to
        float rounding): the lowest point of the slices, within their resolution."""
        return self.lowest_neighbour >= self.centre_loss * (1 - 1e-5)

    @property
    def lowest_neighbour(self) -> float:
        """The lowest loss at a slice or grid point other than the centre."""
        if self.landscape is None:
            raise ValueError(f"{self.label}'s slices were not measured here: {self.skipped}")
        s = self.landscape.slice_1d
        values = [s.loss[s.steps != 0]]
        if self.landscape.surface is not None:
            g = self.landscape.surface
            off = ~np.logical_and.outer(g.b == 0, g.a == 0)
            values.append(g.loss[off])
        return float(np.concatenate(values).min())


def converged_landscape(
    net: nn.Module,
    photos: ImageDataset,
    converged: ConvergedExperiment,
    landscape: LandscapeExperiment,
    label: str = "ResNet-56 (published)",
    progress: bool = True,
) -> ConvergedLandscape:
    """Slices, Hessian extremes and gradient around ``net`` on the first ``converged.landscape_images`` training
    photos of ``photos``, along the directions and span of ``landscape``; on non-CIFAR-10 photos only the loss and
    error at the weights."""
    n = converged.landscape_images
    if len(photos.train_y) < n:
        raise ValueError(f"need {n} training photos (profile.converged.landscape_images), got {len(photos.train_y)}")
    start = time.perf_counter()
    x, y = photos.train_x[:n], photos.train_y[:n]
    losses, wrong = per_image_loss(net, x, y)
    centre = dict(
        label=label,
        dataset=photos.name,
        dataset_label=photos.label,
        n_images=n,
        centre_loss=float(losses.mean()),
        centre_loss_se=float(losses.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        centre_error=float(wrong.mean()),
        centre_error_interval=error_interval(int(wrong.sum()), n),
    )
    if photos.name != "cifar10":
        skipped = (
            f"not shown on {photos.label}: the slices, Hessian and gradient around {label}, whose CIFAR-10 weights "
            "mean nothing on these images (only the loss and error at the weights are measured)"
        )
        return ConvergedLandscape(**centre, landscape=None, gradient=None, seconds=time.perf_counter() - start,
                                  skipped=skipped)  # fmt: skip
    settings = LandscapeExperiment(
        n_images=n,
        span=landscape.span,
        points_1d=converged.points_1d,
        points_2d=converged.points_2d,
        lanczos_iterations=converged.lanczos_iterations,
        direction_seed=landscape.direction_seed,
    )
    measured = measure_landscape(net, x, y, settings, progress=progress, name=label)
    gradient = gradient_with_noise(net, x, y, GRADIENT_BATCHES)
    return ConvergedLandscape(**centre, landscape=measured, gradient=gradient, seconds=time.perf_counter() - start)


def budget_gradients(nets: Mapping[str, nn.Module], x, y) -> dict[str, NoisyGradient]:
    """The gradient and its sampling noise at each budget net's weights, on the same images for all."""
    return {name: gradient_with_noise(net, x, y, GRADIENT_BATCHES) for name, net in nets.items()}


def stationary(gradient: NoisyGradient) -> bool:
    """Whether the gradient is within :data:`NOISE_MULTIPLE` standard errors of zero (a stationary point of the
    loss over all training photos would look so on a sample of them)."""
    return gradient.norm <= NOISE_MULTIPLE * gradient.noise


def minimizer_phrase(converged: ConvergedLandscape, budget: Mapping[str, NoisyGradient]) -> str:
    """``"a minimizer"`` where the centre is the lowest point of its slices, its gradient is within its sampling
    noise of zero and, with that noise added, below every budget net's; else ``"not shown to be a minimizer"``."""
    if converged.gradient is None:
        raise ValueError(f"{converged.label}'s gradient was not measured here: {converged.skipped}")
    if not budget:
        raise ValueError("need at least one budget net's gradient to compare with")
    g = converged.gradient
    smaller = all(g.norm + NOISE_MULTIPLE * g.noise < b.norm for b in budget.values())
    ok = converged.centre_is_lowest and stationary(g) and smaller
    return "a minimizer" if ok else "not shown to be a minimizer"


def compare_phrase(a: float, a_unc: float, b: float, b_unc: float, above: str, below: str) -> str:
    """``above`` if ``a`` exceeds ``b`` by more than both uncertainties together, ``below`` if it falls short by
    as much, else ``"not resolved from"`` (also when an uncertainty is unknown)."""
    if a_unc < 0 or b_unc < 0:
        raise ValueError(f"uncertainties must be >= 0, got {a_unc} and {b_unc}")
    margin = a_unc + b_unc
    if not math.isfinite(margin):
        return "not resolved from"
    if a - b > margin:
        return above
    if b - a > margin:
        return below
    return "not resolved from"


def sharpness_phrase(a, b) -> str:
    """``"sharper than"`` / ``"flatter than"`` / ``"not resolved from"``: the largest Hessian eigenvalues of two
    :class:`~resnet_lib.measure.landscape.HessianExtremes`, each uncertain by its last Lanczos step's change."""
    return compare_phrase(a.lambda_max, a.lambda_max_change, b.lambda_max, b.lambda_max_change, "sharper than",
                          "flatter than")  # fmt: skip


def convexity_phrase(a, b) -> str:
    """``"less convex than"`` / ``"more convex than"`` / ``"not resolved from"`` by ``|lambda_min| / lambda_max``."""
    return compare_phrase(a.ratio, a.ratio_change, b.ratio, b.ratio_change, "less convex than", "more convex than")


__all__ = [
    "CHANCE_LOSS",
    "GRADIENT_BATCHES",
    "NOISE_MULTIPLE",
    "ConvergedLandscape",
    "budget_gradients",
    "compare_phrase",
    "converged_landscape",
    "convexity_phrase",
    "minimizer_phrase",
    "sharpness_phrase",
    "stationary",
]
