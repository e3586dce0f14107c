"""Chapter 5's figures: the building block drawn, plain against residual curves, gradients per layer,
response strengths (He et al. Fig. 7) and gradients along a line between two images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resnet_lib.models import net_label
from resnet_lib.plots.curves import plot_depth_curves
from resnet_lib.plots.style import SERIES_COLORS, depth_shade, family_color, new_figure

#: What a run's curves are: one ``History.epochs`` list per seed, by family and depth.
SeedCurves = Mapping[str, Mapping[int, Sequence[Sequence[dict]]]]


def draw_basic_block(ax: Axes, residual: bool = True) -> Axes:
    """He et al.'s Fig. 2 as a diagram: two weight layers, then (residual) the shortcut added before the last ReLU.

    ``residual=False`` draws the plain block: the same layers with no shortcut.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ax.set_xlim(0.5, 10.5)
    ax.set_ylim(0, 10)
    ax.set_aspect("equal")
    ax.axis("off")
    colour = family_color("residual" if residual else "plain")

    def box(y: float, text: str, fill: str) -> None:
        ax.add_patch(FancyBboxPatch((3.0, y - 0.45), 4.0, 0.9, boxstyle="round,pad=0.05", fc=fill, ec="0.25", lw=1.2))
        ax.text(5.0, y, text, ha="center", va="center", fontsize=9)

    def arrow(y0: float, y1: float) -> None:
        ax.add_patch(FancyArrowPatch((5.0, y0), (5.0, y1), arrowstyle="-|>", mutation_scale=12, color="0.2", lw=1.2))

    ax.text(5.0, 9.6, "x", ha="center", va="center", fontsize=11, style="italic")
    arrow(9.35, 8.55)
    box(8.1, "3x3 conv, BatchNorm", "#E8E8E8")
    arrow(7.65, 7.05)
    box(6.6, "ReLU", "white")
    arrow(6.15, 5.55)
    box(5.1, "3x3 conv, BatchNorm", "#E8E8E8")
    ax.text(2.7, 6.6, "F(x)" if residual else "H(x)", ha="right", va="center", fontsize=11, style="italic")
    ax.plot([2.85, 2.85], [4.7, 8.5], color="0.5", lw=1)
    if residual:
        arrow(4.65, 3.75)
        ax.add_patch(plt.Circle((5.0, 3.4), 0.35, fc="white", ec=colour, lw=1.8))
        ax.text(5.0, 3.4, "+", ha="center", va="center", fontsize=13, color=colour, weight="bold")
        ax.plot([5.0, 8.3, 8.3], [9.0, 9.0, 3.4], color=colour, lw=1.8, solid_joinstyle="round")
        ax.add_patch(
            FancyArrowPatch((8.3, 3.4), (5.38, 3.4), arrowstyle="-|>", mutation_scale=12, color=colour, lw=1.8)
        )
        ax.text(8.5, 6.6, "identity\nshortcut: x", ha="left", va="center", fontsize=9, color=colour)
        arrow(3.05, 2.45)
        box(2.0, "ReLU", "white")
        ax.text(5.0, 0.9, "output: ReLU(F(x) + x)", ha="center", va="center", fontsize=10, style="italic")
        ax.set_title("residual block", color=colour)
    else:
        arrow(4.65, 2.45)
        box(2.0, "ReLU", "white")
        ax.text(5.0, 0.9, "output: ReLU(H(x))", ha="center", va="center", fontsize=10, style="italic")
        ax.set_title("plain block", color=colour)
    ax.add_patch(FancyArrowPatch((5.0, 1.55), (5.0, 1.2), arrowstyle="-", color="0.2", lw=1.2))
    return ax


def plot_plain_vs_residual(curves: SeedCurves, title: str, ylim: float = 100, style_legend: bool = True) -> Figure:
    """Error curves over seeds, plain nets left and residual nets right (``curves[family][depth]``: one
    ``History.epochs`` per seed), each depth a shade of its family's colour."""
    fig, axes = new_figure(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, family in zip(axes, ("plain", "residual"), strict=True):
        styles = "upper right" if style_legend and family == "residual" else None
        plot_depth_curves(ax, family, curves[family], "lower left" if style_legend else "upper right", styles, ylim)
        ax.set_title("plain networks" if family == "plain" else "residual networks (option A)")
    axes[1].set_ylabel("")
    fig.suptitle(title)
    return fig


def plot_layer_gradients(
    norms: Mapping[tuple[str, str], Sequence[float]], n_images: int, dataset_label: str, depth: int
) -> Figure:
    """|d loss / d weights| of every 3x3 layer (``norms[state, family]``), one panel per state."""
    fig, axes = new_figure(1, 2, figsize=(10, 4.2), sharey=True)
    states = list(dict.fromkeys(state for state, _ in norms))
    for ax, state in zip(axes, states, strict=True):
        for family in ("plain", "residual"):
            g = norms[state, family]
            ax.semilogy(range(1, len(g) + 1), g, color=family_color(family), label=net_label(family, depth))
        ax.set_xlabel("3x3 layer (1 = first, input side)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(state)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    axes[0].set_ylabel("|d loss / d weights| (log scale)")
    fig.suptitle(f"Gradient norm per layer, one batch of {n_images} training images\n{dataset_label}")
    return fig


def plot_response_std(stds: Mapping[tuple[str, int], np.ndarray], dataset_label: str) -> Figure:
    """He et al.'s Fig. 7: the std of each 3x3 layer's response (``stds[family, depth]``), in layer order (top)
    and sorted by size (bottom)."""
    fig, axes = new_figure(2, 1, figsize=(8, 6.4))
    depths = sorted({d for _, d in stds})
    for (family, depth), s in stds.items():
        style = {"color": depth_shade(family, depth, depths), "label": net_label(family, depth), "marker": ".", "ms": 3}
        axes[0].plot(range(1, len(s) + 1), s, **style)
        axes[1].plot(range(1, len(s) + 1), sorted(s, reverse=True), **style)
    axes[0].set_xlabel("3x3 layer index (input side first)")
    axes[1].set_xlabel("3x3 layers, sorted by response")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("std of response")
    axes[0].legend(ncols=2)
    axes[0].set_title(
        f"Standard deviation of each 3x3 layer's response after BatchNorm (He et al. Fig. 7)\n{dataset_label}"
    )
    return fig


def plot_line_gradients(
    first_line: Mapping[str, np.ndarray],
    lag1: Mapping[tuple[str, str, int], float],
    depth: int,
    n_pairs: int,
    dataset_label: str,
) -> Figure:
    """Left: the first quarter of d logit / dt along one line, for the ``depth``-layer plain and residual nets at
    initialization (``first_line[family]``). Right: the mean lag-1 autocorrelation per net (``lag1[state, family,
    depth]``), the shallower net of each family hatched."""
    fig, axes = new_figure(1, 2, figsize=(10, 3.8), width_ratios=(1.4, 1))
    for family, g in first_line.items():
        g = np.asarray(g)
        quarter = len(g) // 4
        t = np.linspace(0, 1, len(g))[:quarter]
        axes[0].plot(
            t, g[:quarter] / np.abs(g[:quarter]).max(), color=family_color(family), lw=1.2, marker=".", ms=3,
            label=net_label(family, depth),
        )  # fmt: skip
    axes[0].set_xlabel("t, position on the line from image a to image b")
    axes[0].set_ylabel("d logit / dt (scaled to max 1)")
    axes[0].set_title("first quarter of one line, at initialization")
    axes[0].set_ylim(-1.1, 1.6)  # room above the curves for the legend
    axes[0].legend(loc="upper center", ncols=2)
    states = list(dict.fromkeys(state for state, _, _ in lag1))
    bars = list(dict.fromkeys((f, d) for _, f, d in lag1))
    depths = sorted({d for _, d in bars})
    width = 0.8 / len(bars)
    for i, (family, d) in enumerate(bars):
        offsets = [k + (i - (len(bars) - 1) / 2) * width for k in range(len(states))]
        axes[1].bar(
            offsets, [lag1[s, family, d] for s in states], width, color=depth_shade(family, d, depths),
            hatch="//" if d == min(depths) else None, edgecolor="white", label=net_label(family, d),
        )  # fmt: skip
    axes[1].set_xticks(range(len(states)), states)
    axes[1].set_ylabel("lag-1 autocorrelation of d logit / dt")
    axes[1].axhline(0, color=SERIES_COLORS["white noise"], lw=1)
    axes[1].set_ylim(-0.1, 1.3)
    axes[1].legend(fontsize=8, ncols=2, loc="upper center")
    axes[1].set_title(f"mean over {n_pairs} image pairs")
    fig.suptitle(f"Gradients along a line between two test images\n{dataset_label}")
    return fig


def plot_converged_errors(
    depths: Sequence[int],
    errors: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    stated: Sequence[float],
    paper: Sequence[float],
    n_photos: int,
    dataset_label: str,
) -> Figure:
    """Test error (fractions in, percent drawn) of the published nets against depth, with 95% interval bars,
    beside the publisher's stated errors and He et al.'s Table 6."""
    columns = [np.asarray(v, dtype=float) for v in (errors, lows, highs, stated, paper)]
    if any(len(c) != len(depths) for c in columns) or not len(depths):
        raise ValueError(f"need one error, interval, stated and paper value per depth ({len(depths)} depths)")
    err, low, high, stated_, paper_ = (100 * c for c in columns)
    if np.any(low > err) or np.any(high < err):
        raise ValueError("every interval must contain its error (low <= error <= high)")
    fig, ax = new_figure(figsize=(7.0, 4.2))
    x = np.asarray(depths, dtype=float)
    colour = family_color("residual")
    ax.errorbar(x, err, yerr=[err - low, high - err], fmt="o", color=colour, capsize=4, lw=1.6,
                label=f"measured here, 95% interval ({n_photos:,} photos)")  # fmt: skip
    ax.plot(x + 0.8, stated_, "D", color=SERIES_COLORS["brown noise"], ms=6, label="publisher's stated error (10,000)")
    ax.plot(x - 0.8, paper_, "s", color=family_color("reference"), ms=6, mfc="white", mew=1.6,
            label="He et al., Table 6 (10,000)")  # fmt: skip
    ax.set_xticks(x, [f"ResNet-{d}" for d in depths])
    ax.set_xlabel("depth (weight layers)")
    ax.set_ylabel("test error (%)")
    ax.set_ylim(0, max(float(high.max()), float(stated_.max()), float(paper_.max())) * 1.25)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"Published ResNets trained to convergence: test error by depth\n{dataset_label}")
    return fig


def plot_converged_responses(
    stds: Mapping[int, np.ndarray], stage_means: Mapping[int, Mapping[str, Sequence[float]]], dataset_label: str
) -> Figure:
    """He et al.'s Fig. 7 on the published nets. Left: each 3x3 layer's response std (``stds[depth]``, stem
    first) against the layer's relative depth. Right: the mean response per stage and over all layers, per
    net (``stage_means[depth][part]``: one value per group of images; bar = mean, whiskers = range)."""
    if not stds or set(stds) != set(stage_means):
        raise ValueError("need response stds and stage means for the same, non-empty set of depths")
    fig, axes = new_figure(1, 2, figsize=(11, 4.2), width_ratios=(1.3, 1))
    depths = sorted(stds)
    for d in depths:
        s = np.asarray(stds[d], dtype=float)
        position = np.arange(1, len(s) + 1) / len(s)
        axes[0].plot(position, s, marker=".", ms=3, lw=1.2, color=depth_shade("residual", d, depths),
                     label=f"ResNet-{d} ({len(s)} layers)")  # fmt: skip
    axes[0].set_xlabel("relative depth of the 3x3 layer (layer index / number of layers)")
    axes[0].set_ylabel("std of response")
    axes[0].set_xlim(0, 1.02)
    axes[0].legend(fontsize=8)
    axes[0].set_title("each layer, input side first")
    parts = list(stage_means[depths[0]])
    width = 0.8 / len(depths)
    for i, d in enumerate(depths):
        values = [np.asarray(stage_means[d][p], dtype=float) for p in parts]
        centre = np.array([v.mean() for v in values])
        offsets = np.arange(len(parts)) + (i - (len(depths) - 1) / 2) * width
        spread = [centre - [v.min() for v in values], [v.max() for v in values] - centre]
        axes[1].bar(offsets, centre, width, color=depth_shade("residual", d, depths), label=f"ResNet-{d}",
                    yerr=spread, capsize=2)  # fmt: skip
    axes[1].set_xticks(range(len(parts)), parts)
    axes[1].set_ylabel("mean std of response")
    axes[1].legend(fontsize=8, ncols=2)
    axes[1].set_title("mean per part (whiskers: range over groups of images)")
    fig.suptitle(f"Layer responses of the published ResNets (He et al. Fig. 7)\n{dataset_label}")
    return fig
