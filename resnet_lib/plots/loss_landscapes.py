"""Chapter 7's figures: 1-D slices, 2-D contours on one colour scale, 3-D surfaces, eigenvalue bars, curvature maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colors, ticker
from matplotlib.figure import Figure

from resnet_lib.measure.curvature import CurvatureMap
from resnet_lib.measure.landscape import HessianExtremes, Slice1D, Surface2D
from resnet_lib.models import net_label
from resnet_lib.plots.style import depth_shade, new_figure

#: Li et al. draw the loss up to 10 at most; past a few nats a classifier is no better than chance.
LOSS_CAP = 10.0


def _label_slice_axes(ax_loss, ax_err) -> None:
    """Axes of a 1-D slice: log loss on the left, error in % on the right, the trained weights at 0."""
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss (cross-entropy, nats, log scale)")
    ax_err.set_ylabel("training error (%)")
    ax_err.set_ylim(0, 100)
    for ax in (ax_loss, ax_err):
        ax.set_xlabel("step along the direction (0 = trained weights)")
        ax.axvline(0, color="0.6", lw=0.8)


def plot_slices_1d(slices: Mapping[tuple[str, int], Slice1D], dataset_label: str) -> Figure:
    """Training loss (left) and error (right) along one filter-normalized direction, one line per net."""
    fig, (ax_loss, ax_err) = new_figure(1, 2, figsize=(10, 3.8))
    depths = sorted({d for _, d in slices})
    for (family, depth), s in slices.items():
        colour = depth_shade(family, depth, depths)
        ax_loss.plot(s.steps, s.loss, color=colour, label=net_label(family, depth))
        ax_err.plot(s.steps, 100 * s.error, color=colour, label=net_label(family, depth))
    _label_slice_axes(ax_loss, ax_err)
    ax_loss.legend(ncols=2, fontsize=8)
    fig.suptitle(f"Loss along one filter-normalized random direction (Li et al. Fig. 2)\n{dataset_label}")
    return fig


def shared_levels(surfaces: Sequence[Surface2D], count: int = 15) -> np.ndarray:
    """Contour levels on one logarithmic scale for every surface, from the lowest loss to :data:`LOSS_CAP`."""
    low = max(min(float(s.loss.min()) for s in surfaces), 1e-3)
    high = min(max(float(s.loss.max()) for s in surfaces), LOSS_CAP)
    return np.geomspace(low, max(high, 1.01 * low), count)


def plot_contours(surfaces: Mapping[tuple[str, int], Surface2D], dataset_label: str) -> Figure:
    """2-D contour maps of the training loss, side by side, all at one (log) colour scale."""
    titled = {net_label(family, depth): s for (family, depth), s in surfaces.items()}
    title = f"Training loss around the trained weights (+), one colour scale (Li et al. Fig. 5)\n{dataset_label}"
    return plot_labelled_contours(titled, title)


def plot_labelled_contours(surfaces: Mapping[str, Surface2D], title: str) -> Figure:
    """2-D contour maps of the training loss, one panel per label, all at one (log) colour scale."""
    items = list(surfaces.items())
    fig, axes = new_figure(1, len(items), figsize=(3.2 * len(items) + 1, 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    levels = shared_levels([s for _, s in items])
    norm = colors.LogNorm(levels[0], levels[-1])
    filled = None
    for ax, (label, s) in zip(axes, items, strict=True):
        a, b = np.meshgrid(s.a, s.b)
        loss = np.clip(s.loss, levels[0], levels[-1])
        filled = ax.contourf(a, b, loss, levels=levels, norm=norm, cmap="viridis")
        ax.contour(a, b, loss, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
        ax.plot(0, 0, marker="+", color="red", ms=10)
        ax.set_title(label)
        ax.set_xlabel("direction 1 (filter-normalized)")
        ax.set_aspect("equal")
        ax.grid(False)
    axes[0].set_ylabel("direction 2 (filter-normalized)")
    bar = fig.colorbar(filled, ax=list(axes), shrink=0.9, ticks=levels[::2])
    bar.ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.2g"))
    bar.ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    bar.set_label(f"training loss (nats, log scale, capped at {LOSS_CAP:g})")
    fig.suptitle(title)
    return fig


#: The net trained to convergence is drawn in black beside the budget nets' family colours.
CONVERGED_COLOUR = "#000000"


def plot_converged_slices(
    converged: Slice1D, converged_label: str, budget: Mapping[tuple[str, int], Slice1D], dataset_label: str
) -> Figure:
    """Training loss (left, log) and error (right) along one filter-normalized direction: the converged net
    (black, thick) beside the budget nets, on the same axes."""
    fig, (ax_loss, ax_err) = new_figure(1, 2, figsize=(10, 3.8))
    depths = sorted({d for _, d in budget})
    for (family, depth), s in budget.items():
        colour = depth_shade(family, depth, depths)
        for ax, values in ((ax_loss, s.loss), (ax_err, 100 * s.error)):
            ax.plot(s.steps, values, color=colour, label=f"{net_label(family, depth)} (budget)")
    for ax, values in ((ax_loss, converged.loss), (ax_err, 100 * converged.error)):
        ax.plot(converged.steps, values, color=CONVERGED_COLOUR, lw=2.6, marker="o", ms=3, label=converged_label)
    _label_slice_axes(ax_loss, ax_err)
    ax_loss.legend(fontsize=8)
    fig.suptitle(f"Converged vs budget nets along one filter-normalized random direction\n{dataset_label}")
    return fig


def plot_surfaces_3d(surfaces: Mapping[tuple[str, int], Surface2D], dataset_label: str) -> Figure:
    """3-D surface plots of the training loss (capped at :data:`LOSS_CAP`), one per net, on one z axis."""
    items = list(surfaces.items())
    fig = new_figure(figsize=(5.2 * len(items), 4.6))[0]
    fig.clf()
    top = min(max(float(s.loss.max()) for _, s in items), LOSS_CAP)
    for k, ((family, depth), s) in enumerate(items, start=1):
        ax = fig.add_subplot(1, len(items), k, projection="3d")
        a, b = np.meshgrid(s.a, s.b)
        ax.plot_surface(a, b, np.minimum(s.loss, top), cmap="viridis", vmin=0, vmax=top, linewidth=0, antialiased=True)
        ax.set_zlim(0, top)
        ax.set_title(net_label(family, depth))
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.set_zlabel("training loss (nats)")
        ax.view_init(elev=35, azim=-60)
    fig.suptitle(f"The loss surface in 3-D, same z scale (Li et al. Fig. 1)\n{dataset_label}")
    return fig


def plot_eigenvalue_ratios(
    extremes: Mapping[tuple[str, int], Sequence[HessianExtremes]], dataset_label: str, iterations: int
) -> Figure:
    """Per net: |lambda_min| / lambda_max for each seed (dots) and their mean (bar)."""
    fig, ax = new_figure(figsize=(6.5, 3.8))
    keys = list(extremes)
    depths = sorted({d for _, d in keys})
    for i, key in enumerate(keys):
        ratios = [e.ratio for e in extremes[key]]
        ax.bar(i, np.mean(ratios), color=depth_shade(key[0], key[1], depths), alpha=0.8)
        ax.plot([i] * len(ratios), ratios, "o", color="black", ms=4)
    ax.set_xticks(range(len(keys)), [net_label(*k) for k in keys])
    ax.set_ylabel("|lambda_min| / lambda_max of the Hessian")
    ax.set_title(f"Non-convexity at the trained weights (dots: seeds; {iterations} Lanczos steps)\n{dataset_label}")
    return fig


def plot_curvature_maps(maps: Mapping[str, CurvatureMap], threshold: float, title: str) -> Figure:
    """Li et al.'s Fig. 7: ``|lambda_min / lambda_max|`` at every grid point of each map (colour, one scale from
    0 to twice the threshold), the threshold's contour (red) and the loss at each point (numbers, nats)."""
    items = list(maps.items())
    fig, axes = new_figure(1, len(items), figsize=(3.4 * len(items) + 1, 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    top = 2 * threshold
    image = None
    for ax, (label, m) in zip(axes, items, strict=True):
        ratio = np.minimum(m.ratio, top)
        half = (m.a[1] - m.a[0]) / 2
        extent = (m.a[0] - half, m.a[-1] + half, m.b[0] - half, m.b[-1] + half)
        image = ax.imshow(ratio, origin="lower", extent=extent, cmap="cividis", vmin=0, vmax=top)
        if ratio.min() < threshold < ratio.max():
            a, b = np.meshgrid(m.a, m.b)
            ax.contour(a, b, m.ratio, levels=[threshold], colors="red", linewidths=1.5)
        for j, bj in enumerate(m.b):
            for i, ai in enumerate(m.a):
                mark = "*" if m.ratio[j, i] > threshold else ""
                ax.text(ai, bj, f"{m.loss[j, i]:.2g}{mark}", ha="center", va="center", fontsize=7, color="white")
        ax.plot(0, 0, marker="+", color="red", ms=12)
        ax.set_title(f"{label}\n{m.n_images} images, {m.iterations} Lanczos steps", fontsize=9)
        ax.set_xlabel("direction 1 (filter-normalized)")
        ax.grid(False)
    axes[0].set_ylabel("direction 2 (filter-normalized)")
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    bar.set_label(f"|lambda_min / lambda_max| (capped at {top:g}; red line: {threshold:g})")
    fig.suptitle(title + f"\nnumbers: training loss (nats); *: non-convex (ratio > {threshold:g})")
    return fig


__all__ = [
    "CONVERGED_COLOUR",
    "LOSS_CAP",
    "plot_contours",
    "plot_converged_slices",
    "plot_curvature_maps",
    "plot_eigenvalue_ratios",
    "plot_labelled_contours",
    "plot_slices_1d",
    "plot_surfaces_3d",
    "shared_levels",
]
