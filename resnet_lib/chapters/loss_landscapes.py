"""Chapter 7: Li et al.'s curvature map around the budget nets, and the landscape of a net trained to convergence.

:class:`CurvatureMapSettings` (one per profile, :data:`CURVATURE_MAPS`) sizes the map of
``|lambda_min / lambda_max|`` over the filter-normalized plane; :func:`net_curvature_map` draws it.
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
from torch import Tensor, nn

from resnet_lib.data import ImageDataset
from resnet_lib.measure.curvature import CurvatureMap, curvature_map, minimizer_verdict
from resnet_lib.measure.landscape import (
    HessianExtremes,
    NetLandscape,
    NoisyGradient,
    gradient_with_noise,
    measure_landscape,
    per_image_loss,
    random_direction,
)
from resnet_lib.measure.significance import error_interval
from resnet_lib.measure.verdicts import UNRESOLVED, Verdict, compare_to_reference
from resnet_lib.profiles import ConvergedExperiment, LandscapeExperiment

#: The cross-entropy of a uniform guess over CIFAR-10's 10 classes: ln 10 nats.
CHANCE_LOSS = math.log(10)
#: Equal batches the gradient is split into to measure its sampling noise.
GRADIENT_BATCHES = 8
#: A gradient counts as stationary while its norm is within this many standard errors of zero.
NOISE_MULTIPLE = 2.0


@dataclass(frozen=True)
class CurvatureMapSettings:
    """Li et al.'s map of ``|lambda_min / lambda_max|``: ``points`` x ``points`` grid points over the landscape's
    span (odd, so the trained weights are on the grid), ``iterations`` Lanczos steps at each, on the first
    ``images`` training images of the budget nets and ``converged_images`` photos of the converged net."""

    points: int
    iterations: int
    images: int
    converged_images: int

    def __post_init__(self) -> None:
        if self.points < 3 or self.points % 2 == 0:
            raise ValueError(f"the map needs an odd number of points per side, at least 3, got {self.points}")
        if self.iterations < 2 or self.images < 1 or self.converged_images < 1:
            raise ValueError(
                f"need >= 2 Lanczos steps and >= 1 image, got {self.iterations} steps, {self.images} and "
                f"{self.converged_images} images"
            )


#: Per profile. One Hessian-vector product of a 56-layer net costs about 9 ms of CPU per 16x16 image and 37 ms
#: per 32x32 photo (one thread), so a map costs points^2 x iterations x images of them. ``ci`` (CI's budget
#: for the whole chapter is about 90 s): 9 points x 8 products on 40 images per budget net (about 25 s each)
#: and on 12 photos for the converged net (about 32 s); a 5 x 5 grid would cost 2.8 times as much.
#: ``default`` and ``full`` map 5 x 5 and 9 x 9 grids on thousands of images (hours of CPU: a GPU's work).
CURVATURE_MAPS: dict[str, CurvatureMapSettings] = {
    "ci": CurvatureMapSettings(points=3, iterations=8, images=40, converged_images=12),
    "default": CurvatureMapSettings(points=5, iterations=12, images=1000, converged_images=1000),
    "full": CurvatureMapSettings(points=9, iterations=20, images=5000, converged_images=5000),
}


def curvature_map_settings(profile_name: str) -> CurvatureMapSettings:
    """The map's size for a profile (``default``'s for a profile not listed)."""
    return CURVATURE_MAPS.get(profile_name, CURVATURE_MAPS["default"])


def net_curvature_map(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    span: float,
    direction_seed: int,
    settings: CurvatureMapSettings,
    images: int,
    progress: bool = True,
    name: str = "net",
) -> CurvatureMap:
    """The map around ``net`` on its first ``images`` images, in the plane of the page's two directions (seeds
    ``direction_seed`` and the next), from ``-span`` to ``span``."""
    if len(x) < images:
        raise ValueError(f"the map needs {images} images, got {len(x)}")
    directions = (random_direction(net, direction_seed), random_direction(net, direction_seed + 1))
    steps = np.linspace(-span, span, settings.points)
    return curvature_map(net, directions, x[:images], y[:images], steps, settings.iterations, seed=direction_seed,
                         progress=progress, desc=f"{name}: curvature map")  # fmt: skip


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
    curvature: CurvatureMap | None = None

    @property
    def extremes(self) -> HessianExtremes:
        """The Hessian's extremes at the weights: the centre of the curvature map."""
        if self.curvature is None:
            raise ValueError(f"{self.label}'s curvature was not measured here: {self.skipped}")
        return self.curvature.centre_extremes()

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
    curvature: CurvatureMapSettings | None = None,
) -> ConvergedLandscape:
    """Slices and gradient around ``net`` on the first ``converged.landscape_images`` training photos of
    ``photos``, and the curvature map (sized by ``curvature``, ``ci``'s if ``None``) on the first
    ``curvature.converged_images``, along the directions and span of ``landscape``; on non-CIFAR-10 photos only the
    loss and error at the weights."""
    curvature = CURVATURE_MAPS["ci"] if curvature is None else curvature
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
    measured = measure_landscape(net, x, y, settings, progress=progress, name=label, hessian=False)
    gradient = gradient_with_noise(net, x, y, GRADIENT_BATCHES)
    k = curvature.converged_images
    if len(photos.train_y) < k:
        raise ValueError(f"the curvature map needs {k} training photos, got {len(photos.train_y)}")
    mapped = net_curvature_map(net, photos.train_x[:k], photos.train_y[:k], landscape.span, landscape.direction_seed,
                               curvature, k, progress=progress, name=label)  # fmt: skip
    return ConvergedLandscape(**centre, landscape=measured, gradient=gradient, seconds=time.perf_counter() - start,
                              curvature=mapped)  # fmt: skip


def budget_gradients(nets: Mapping[str, nn.Module], x, y) -> dict[str, NoisyGradient]:
    """The gradient and its sampling noise at each budget net's weights, on the same images for all."""
    return {name: gradient_with_noise(net, x, y, GRADIENT_BATCHES) for name, net in nets.items()}


def stationary(gradient: NoisyGradient) -> bool:
    """Whether the gradient is within :data:`NOISE_MULTIPLE` standard errors of zero (a stationary point of the
    loss over all training photos would look so on a sample of them)."""
    return gradient.norm <= NOISE_MULTIPLE * gradient.noise


def minimizer_phrase(converged: ConvergedLandscape) -> str:
    """``"a minimizer"`` where the centre is the lowest point of its slices and its gradient is below
    :data:`~resnet_lib.measure.curvature.GRADIENT_TOLERANCE`; else ``"the trained point"``."""
    if converged.gradient is None or converged.curvature is None:
        raise ValueError(f"{converged.label}'s gradient was not measured here: {converged.skipped}")
    small = minimizer_verdict(converged.gradient.norm).direction == "ahead"
    return "a minimizer" if small and converged.centre_is_lowest else "the trained point"


def _against(a: float, a_change: float, b: float, b_change: float) -> Verdict:
    """``a`` against ``b`` with the tolerance of what the last Lanczos step moved both (unresolved if unknown)."""
    tolerance = a_change + b_change
    if not math.isfinite(tolerance):
        return Verdict(UNRESOLVED, "a single Lanczos step: no estimate of its uncertainty")
    return compare_to_reference(a, b, tolerance, better="lower")


def sharpness_phrase(a: HessianExtremes, b: HessianExtremes) -> str:
    """``"flatter than"`` / ``"sharper than"`` / ``"not resolved from"`` by ``lambda_max``, within what the last
    Lanczos step moved the two estimates (:func:`~resnet_lib.measure.verdicts.compare_to_reference`)."""
    verdict = _against(a.lambda_max, a.lambda_max_change, b.lambda_max, b.lambda_max_change)
    return verdict.words("flatter than", "sharper than", "not resolved from")


def convexity_phrase(a: HessianExtremes, b: HessianExtremes) -> str:
    """``"more convex than"`` / ``"less convex than"`` / ``"not resolved from"`` by ``|lambda_min| / lambda_max``."""
    verdict = _against(a.ratio, a.ratio_change, b.ratio, b.ratio_change)
    return verdict.words("more convex than", "less convex than", "not resolved from")


__all__ = [
    "CHANCE_LOSS",
    "CURVATURE_MAPS",
    "GRADIENT_BATCHES",
    "NOISE_MULTIPLE",
    "ConvergedLandscape",
    "CurvatureMapSettings",
    "budget_gradients",
    "converged_landscape",
    "convexity_phrase",
    "curvature_map_settings",
    "minimizer_phrase",
    "net_curvature_map",
    "sharpness_phrase",
    "stationary",
]
