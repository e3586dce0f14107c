"""Chapter 1's figures: first-layer filters, feature maps of a photo, and probe accuracy against depth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from resnet_lib.plots.style import FAMILY_COLORS, new_figure


def _filter_rgb(weight: Tensor) -> np.ndarray:
    """One RGB 3x3 (or kxk) filter ``(3, k, k)`` as an image in [0, 1], grey = 0, scaled to its own range."""
    w = weight.detach().float().cpu()
    w = w / w.abs().max().clamp_min(1e-12)
    return (0.5 + 0.5 * w).permute(1, 2, 0).numpy()


def plot_first_layer_filters(filters: Mapping[str, Tensor], dataset_label: str, title: str) -> Figure:
    """One row of RGB filter images per entry of ``filters`` (``{row label: (out, 3, k, k)}``).

    Each filter is scaled to its own largest weight: mid-grey is zero, bright is positive
    and dark is negative in that colour channel.
    """
    rows = list(filters.items())
    if not rows:
        raise ValueError("filters must hold at least one (out, 3, k, k) weight tensor")
    n = max(w.shape[0] for _, w in rows)
    fig, axes = new_figure(len(rows), n, figsize=(min(0.55 * n, 11.0), 0.9 * len(rows) + 1.0), squeeze=False)
    for r, (label, weight) in enumerate(rows):
        if weight.dim() != 4 or weight.shape[1] != 3:
            raise ValueError(f"filters[{label!r}] must be (out, 3, k, k), got shape {tuple(weight.shape)}")
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c < weight.shape[0]:
                ax.imshow(_filter_rgb(weight[c]), interpolation="nearest")
            else:
                ax.set_axis_off()
            if r == len(rows) - 1:
                ax.set_xlabel(str(c), fontsize=8)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{title}\n{dataset_label}")
    fig.supxlabel("filter (output channel of the first convolution); each is 3x3 pixels")
    return fig


def most_active_channels(maps: Tensor, k: int) -> list[int]:
    """Indices of the ``k`` channels of ``maps`` ``(C, H, W)`` with the largest mean activation."""
    k = min(k, maps.shape[0])
    return maps.mean(dim=(1, 2)).argsort(descending=True)[:k].tolist()


def plot_feature_maps(
    photo: Tensor,
    maps: Mapping[str, Tensor],
    dataset_label: str,
    title: str,
    channels: int = 6,
    layer_labels: Mapping[str, str] | None = None,
) -> Figure:
    """The photo, then one row per layer: the ``channels`` most active feature maps on it.

    ``photo`` is ``(3, H, W)`` in [0, 1]; ``maps`` is ``{layer: (C, h, w)}`` in order of depth.
    Each map has its own colour scale (dark = 0, yellow = its largest value).
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels!r}")
    layer_labels = dict(layer_labels or {})
    fig, axes = new_figure(len(maps), channels + 1, figsize=(1.35 * (channels + 1), 1.45 * len(maps) + 0.9))
    axes = np.atleast_2d(axes)
    for r, (name, fmap) in enumerate(maps.items()):
        chosen = most_active_channels(fmap, channels)
        first = axes[r, 0]
        if r == 0:
            first.imshow(photo.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            first.set_title(f"input, {photo.shape[-1]}x{photo.shape[-2]} px", fontsize=8)
        else:
            first.set_axis_off()
        for c in range(channels):
            ax = axes[r, c + 1]
            if c < len(chosen):
                ax.imshow(fmap[chosen[c]].detach().numpy(), cmap="viridis", interpolation="nearest")
                ax.set_title(f"channel {chosen[c]}", fontsize=7)
            else:
                ax.set_axis_off()
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        h, w = fmap.shape[-2:]
        label = layer_labels.get(name, name).replace(", ", "\n")
        axes[r, 1].set_ylabel(f"{label}\n{h}x{w} px", fontsize=8)
    fig.suptitle(f"{title}\n{dataset_label}")
    fig.supxlabel("feature map (most active channels on this photo, each on its own colour scale)")
    return fig


def plot_probe_accuracy(
    ax: Axes,
    depths: Sequence[int],
    trained: Sequence[float],
    dataset_label: str,
    untrained: Sequence[Sequence[float]] | None = None,
    baselines: Mapping[str, float] | None = None,
    chance: float | None = None,
    stage_starts: Sequence[tuple[int, str]] = (),
    trained_label: str = "trained net",
    title: str = "Linear-probe test accuracy at each depth",
) -> Axes:
    """Probe accuracy (fractions in, percent drawn) against depth in convolutional layers.

    ``untrained`` holds one accuracy curve per untrained seed (drawn as their mean and
    range); ``baselines`` are horizontal lines (raw pixels, PCA); ``stage_starts`` are
    ``(depth, name)`` markers drawn as faint vertical lines.
    """
    if len(depths) != len(trained):
        raise ValueError(f"depths and trained must have the same length, got {len(depths)} and {len(trained)}")
    colour = FAMILY_COLORS["residual"]
    reference = FAMILY_COLORS["reference"]
    pct = lambda v: 100 * np.asarray(v, dtype=float)
    for depth, name in stage_starts:
        ax.axvline(depth, color=reference, lw=0.8, alpha=0.4, zorder=0)
        ax.annotate(name, (depth, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", va="top", fontsize=8, color=reference)  # fmt: skip
    ax.plot(depths, pct(trained), "o-", color=colour, label=trained_label)
    if untrained:
        curves = pct(untrained)
        if curves.shape[1] != len(depths):
            raise ValueError("every untrained curve needs one accuracy per depth")
        faint = mpl.colors.to_rgba(colour, 0.45)
        ax.fill_between(depths, curves.min(0), curves.max(0), color=colour, alpha=0.12, lw=0)
        ax.plot(depths, curves.mean(0), "o--", color=faint, mfc="white",
                label=f"same net, untrained (mean and range of {len(curves)} seeds)")  # fmt: skip
    styles = iter([(0, (5, 2)), (0, (1, 1.5)), (0, (3, 1, 1, 1))])
    for name, value in (baselines or {}).items():
        ax.axhline(100 * value, color=reference, ls=next(styles, "-."), lw=1.4, label=f"{name}: {100 * value:.1f}%")
    if chance is not None:
        ax.axhline(100 * chance, color=reference, lw=0.8, alpha=0.6)
        ax.annotate("chance", (max(depths), 100 * chance), xytext=(0, 3), textcoords="offset points",
                    ha="right", fontsize=8, color=reference)  # fmt: skip
    ax.set_xticks(list(depths))
    ax.set_xlabel("depth of the probed layer (convolutions from the input)")
    ax.set_ylabel("probe test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title}\n{dataset_label}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    return ax


def plot_stage_probes(
    stages: Sequence[str],
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    dataset_label: str,
    chance: float | None = None,
    title: str = "Linear probes by stage: trained to convergence and on this page's budget",
) -> Figure:
    """Probe test accuracy at the stem and each stage's end (fractions in, percent drawn), one line per net.

    ``series[name] = (accuracies, lows, highs)``, one value per entry of ``stages``; the bars are the
    accuracies' 95% intervals. The first series is drawn in the residual colour, the others lighter.
    """
    if not series:
        raise ValueError("series must hold at least one net's (accuracies, lows, highs)")
    fig, ax = new_figure(figsize=(7.0, 4.2))
    colour = FAMILY_COLORS["residual"]
    styles = [("o-", colour, colour), ("s--", mpl.colors.to_rgba(colour, 0.55), "white")]
    for k, (name, (acc, low, high)) in enumerate(series.items()):
        acc, low, high = (100 * np.asarray(v, dtype=float) for v in (acc, low, high))
        if not len(acc) == len(low) == len(high) == len(stages):
            raise ValueError(f"series {name!r} needs one accuracy, low and high per stage ({len(stages)})")
        fmt, line, face = styles[min(k, len(styles) - 1)]
        ax.errorbar(range(len(stages)), acc, yerr=[acc - low, high - acc], fmt=fmt, color=line, mfc=face,
                    capsize=3, label=name)  # fmt: skip
    if chance is not None:
        ax.axhline(100 * chance, color=FAMILY_COLORS["reference"], lw=0.8, alpha=0.6, label="chance")
    ax.set_xticks(range(len(stages)), stages)
    ax.set_xlabel("probed layer (the stem, then the end of each stage)")
    ax.set_ylabel("probe test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{title}\n{dataset_label}")
    return fig


__all__ = [
    "most_active_channels",
    "plot_feature_maps",
    "plot_first_layer_filters",
    "plot_probe_accuracy",
    "plot_stage_probes",
]
