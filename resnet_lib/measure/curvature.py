"""Chapter 7: Li et al.'s test of convexity, the ratio ``|lambda_min / lambda_max|`` mapped over the 2-D plane.

Li, Xu, Taylor, Studer & Goldstein (2018, section 6 and Fig. 7) ask whether a loss surface that *looks*
convex in a random 2-D slice is convex in the full weight space. At every point of the filter-normalized
plane ``w + a * d1 + b * d2`` they compute the Hessian's largest and most negative eigenvalue (implicitly
restarted Lanczos on Hessian-vector products) and draw ``|lambda_min / lambda_max|``: near zero where the
loss is convex-looking, large where it curves down about as strongly as it curves up.

* :func:`curvature_map` does the same on a coarse grid with Lanczos
  (:func:`~resnet_lib.measure.landscape.hessian_extremes`) at each point, and the loss on the same images;
* :class:`CurvatureMap` counts the points above a stated threshold (:data:`NONCONVEX_RATIO`);
* :func:`compare_at_matched_loss` compares two maps only at grid points whose loss both nets reach, so that
  a net is not called less convex merely for sitting higher up the slope;
* :func:`minimizer_words` calls a point a minimizer only where its gradient is small (:data:`GRADIENT_TOLERANCE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.measure.landscape import HessianExtremes, displaced, hessian_extremes, loss_and_error
from resnet_lib.measure.verdicts import UNRESOLVED, Verdict, compare_to_reference

#: A point counts as non-convex where ``|lambda_min| / lambda_max`` exceeds this: the steepest downward
#: curvature is more than a tenth of the steepest upward one. Li et al.'s Fig. 7 colours the ratio from 0
#: (blue, "convex-looking") upward without a cut; ReLU nets' Hessians always hold a few small negative
#: eigenvalues, so a cut above zero is needed to ask "how much of the plane is non-convex" at all.
NONCONVEX_RATIO = 0.1
#: A point is called a minimizer only where the norm of the loss's gradient (over the weights the Hessian is
#: taken over) is below this. A converged ResNet-56's gradient on 64-512 CIFAR-10 photos is 0.01-0.02, about
#: its own sampling noise; the budget nets' are tens to hundreds of times larger: any cut from 0.05 to 1 splits
#: them the same way. (A cut relative to the curvature, ``||g||^2 / (2 lambda_max)``, was tried and rejected:
#: a sharp point with a large gradient passes it.)
GRADIENT_TOLERANCE = 0.1
#: A matched-loss comparison needs at least this many grid points of each net at the common loss level.
MIN_MATCHED_POINTS = 2


def curvature_ratio(lambda_max, lambda_min) -> np.ndarray:
    """``|lambda_min| / lambda_max`` elementwise: 0 where ``lambda_min >= 0``, inf where ``lambda_max <= 0``."""
    lmax, lmin = np.asarray(lambda_max, dtype=float), np.asarray(lambda_min, dtype=float)
    negative = np.abs(np.minimum(lmin, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lmax > 0, negative / np.where(lmax > 0, lmax, 1.0), np.inf)


@dataclass(frozen=True)
class CurvatureMap:
    """Loss and the Hessian's extreme eigenvalues at ``w + a_i * d1 + b_j * d2``; arrays are indexed ``[j, i]``."""

    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    lambda_max: np.ndarray
    lambda_min: np.ndarray
    #: The same estimates one Lanczos step earlier: how far they still moved (NaN after a single step).
    lambda_max_previous: np.ndarray
    lambda_min_previous: np.ndarray
    iterations: int
    n_images: int

    @property
    def ratio(self) -> np.ndarray:
        return curvature_ratio(self.lambda_max, self.lambda_min)

    @property
    def ratio_change(self) -> np.ndarray:
        """How much the last Lanczos step moved each point's ratio."""
        return np.abs(self.ratio - curvature_ratio(self.lambda_max_previous, self.lambda_min_previous))

    def centre_extremes(self) -> HessianExtremes:
        """The Hessian's extremes at the centre of the grid (the trained weights)."""
        j, i = len(self.b) // 2, len(self.a) // 2
        values = (self.lambda_max, self.lambda_min, self.lambda_max_previous, self.lambda_min_previous)
        lmax, lmin, lmax_prev, lmin_prev = (float(v[j, i]) for v in values)
        return HessianExtremes(lmax, lmin, self.iterations, lmax_prev, lmin_prev)

    def _centre(self, values: np.ndarray) -> float:
        return float(values[len(self.b) // 2, len(self.a) // 2])

    @property
    def centre_ratio(self) -> float:
        return self._centre(self.ratio)

    @property
    def centre_loss(self) -> float:
        return self._centre(self.loss)

    @property
    def centre_lambda_max(self) -> float:
        return self._centre(self.lambda_max)

    def nonconvex(self, threshold: float = NONCONVEX_RATIO) -> np.ndarray:
        """Which grid points have ``|lambda_min| / lambda_max > threshold``."""
        if not threshold >= 0:
            raise ValueError(f"the threshold must be >= 0, got {threshold!r}")
        return self.ratio > threshold

    def share_nonconvex(self, threshold: float = NONCONVEX_RATIO) -> float:
        """Share of all grid points that are non-convex at ``threshold``."""
        return float(self.nonconvex(threshold).mean())


def curvature_map(
    model: nn.Module,
    directions: tuple[Sequence[Tensor], Sequence[Tensor]],
    x: Tensor,
    y: Tensor,
    steps: np.ndarray,
    iterations: int,
    seed: int = 0,
    progress: bool = True,
    desc: str = "curvature map",
) -> CurvatureMap:
    """Lanczos's extreme Hessian eigenvalues and the loss on ``(x, y)`` at every point of the grid ``steps x steps``."""
    steps = np.asarray(steps, dtype=float)
    if steps.ndim != 1 or len(steps) < 1:
        raise ValueError(f"steps must be a non-empty 1-D array, got shape {steps.shape}")
    shape = (len(steps), len(steps))
    loss, lmax, lmin, lmax_prev, lmin_prev = (np.zeros(shape) for _ in range(5))
    grid = [(j, i) for j in range(len(steps)) for i in range(len(steps))]
    last = 0
    for j, i in tqdm(grid, desc=desc, unit="point", disable=not progress, leave=False):
        with displaced(model, directions, [steps[i], steps[j]]):
            loss[j, i] = loss_and_error(model, x, y)[0]
            e = hessian_extremes(model, x, y, iterations, seed=seed, progress=False)
        lmax[j, i], lmin[j, i], last = e.lambda_max, e.lambda_min, e.iterations
        lmax_prev[j, i], lmin_prev[j, i] = e.lambda_max_previous, e.lambda_min_previous
    return CurvatureMap(steps, steps.copy(), loss, lmax, lmin, lmax_prev, lmin_prev, last, len(x))


@dataclass(frozen=True)
class MatchedComparison:
    """Two maps' non-convex shares among their grid points with loss in ``band``, and the verdict on them."""

    band: tuple[float, float] | None
    counts: tuple[int, int]
    points: tuple[int, int]
    tolerance: float
    verdict: Verdict
    threshold: float

    @property
    def shares(self) -> tuple[float, float]:
        return tuple(k / n if n else float("nan") for k, n in zip(self.counts, self.points, strict=True))


def matched_band(first: CurvatureMap, second: CurvatureMap) -> tuple[float, float] | None:
    """The loss range both maps' grids cover, ``(max of the minima, min of the maxima)``; ``None`` if they do not
    overlap."""
    low, high = max(first.loss.min(), second.loss.min()), min(first.loss.max(), second.loss.max())
    return (float(low), float(high)) if low <= high else None


def share_tolerance(k1: int, n1: int, k2: int, n2: int) -> float:
    """Twice the binomial standard error of the difference of two shares ``k1/n1`` and ``k2/n2`` (pooled)."""
    if min(n1, n2) < 1 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ValueError(f"need 0 <= k <= n and n >= 1 on both sides, got {k1}/{n1} and {k2}/{n2}")
    p = (k1 + k2) / (n1 + n2)
    return 2 * math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


def compare_at_matched_loss(
    first: CurvatureMap, second: CurvatureMap, threshold: float = NONCONVEX_RATIO
) -> MatchedComparison:
    """Non-convex shares of two maps among the grid points whose loss lies in the range both cover.

    The verdict is ``ahead`` where ``first`` has the *smaller* share (looks more convex at the same loss) by
    more than :func:`share_tolerance`, ``behind`` where larger; unresolved within it, or where either map has
    fewer than :data:`MIN_MATCHED_POINTS` points in the common range.
    """
    band = matched_band(first, second)
    if band is None:
        return MatchedComparison(None, (0, 0), (0, 0), float("nan"), Verdict(UNRESOLVED, "no common loss level"),
                                 threshold)  # fmt: skip
    inside = [(m.loss >= band[0]) & (m.loss <= band[1]) for m in (first, second)]
    counts = tuple(int((m.nonconvex(threshold) & keep).sum()) for m, keep in zip((first, second), inside, strict=True))
    points = tuple(int(keep.sum()) for keep in inside)
    if min(points) < MIN_MATCHED_POINTS:
        basis = f"only {min(points)} grid point(s) of one net at the common loss level"
        return MatchedComparison(band, counts, points, float("nan"), Verdict(UNRESOLVED, basis), threshold)
    tolerance = share_tolerance(counts[0], points[0], counts[1], points[1])
    verdict = compare_to_reference(counts[0] / points[0], counts[1] / points[1], tolerance, better="lower")
    return MatchedComparison(band, counts, points, tolerance, verdict, threshold)


def minimizer_verdict(gradient_norm: float, tolerance: float = GRADIENT_TOLERANCE) -> Verdict:
    """``ahead`` where the gradient norm is below ``tolerance`` (a minimizer), else ``behind``."""
    return compare_to_reference(gradient_norm, tolerance, 0.0, better="lower")


def minimizer_words(gradient_norm: float, tolerance: float = GRADIENT_TOLERANCE) -> str:
    """``"a minimizer"`` where the gradient norm is below ``tolerance``, else ``"the trained point"``."""
    return minimizer_verdict(gradient_norm, tolerance).words("a minimizer", "the trained point", "the trained point")


__all__ = [
    "GRADIENT_TOLERANCE",
    "MIN_MATCHED_POINTS",
    "NONCONVEX_RATIO",
    "CurvatureMap",
    "MatchedComparison",
    "compare_at_matched_loss",
    "curvature_map",
    "curvature_ratio",
    "matched_band",
    "minimizer_verdict",
    "minimizer_words",
    "share_tolerance",
]
