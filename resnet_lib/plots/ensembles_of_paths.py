"""Chapter 6's figures: lesions of trained nets, and the gradient carried by paths of each length."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from resnet_lib.measure.lesions import EffectivePaths, LesionStudy, PathGradients, path_length_distribution
from resnet_lib.plots.style import depth_shade, family_color, new_figure

_NAMES = {"plain": "plain", "residual": "ResNet"}


def _name(family: str, depth: int) -> str:
    return f"{_NAMES[family]}-{depth}"


def _check(studies: Mapping[str, Sequence[LesionStudy]]) -> None:
    if not studies or not all(studies.values()):
        raise ValueError("need at least one lesion study per family, as {family: [study per seed]}")


def plot_single_block_lesions(
    studies: Mapping[str, Sequence[LesionStudy]], depth: int, chance: float, dataset_label: str
) -> Figure:
    """Test error with one block deleted, per block, beside each intact net and chance (Veit et al. Fig. 3).

    Markers are means over seeds, bars the lowest to highest seed; downsampling blocks are shaded.
    """
    _check(studies)
    fig, ax = new_figure(figsize=(9, 4.2))
    first = next(iter(studies.values()))[0]
    for i in first.downsampling:
        ax.axvspan(i + 0.5, i + 1.5, color="0.85", lw=0, zorder=0)
    for family, runs in studies.items():
        colour = family_color(family)
        errors = 100 * np.array([s.single for s in runs])
        blocks = np.arange(1, errors.shape[1] + 1)
        mean = errors.mean(0)
        ax.errorbar(
            blocks,
            mean,
            yerr=(mean - errors.min(0), errors.max(0) - mean),
            color=colour,
            marker="o",
            ms=4,
            lw=1.2,
            capsize=2,
            label=f"{_name(family, depth)}, one block deleted",
        )
        intact = 100 * np.mean([s.intact_error for s in runs])
        ax.axhline(intact, color=colour, ls="--", lw=1.2, label=f"{_name(family, depth)} intact ({intact:.1f}%)")
    ax.axhline(100 * chance, color=family_color("reference"), ls=":", lw=1.5, label=f"chance ({100 * chance:.0f}%)")
    ax.set_xlabel("deleted block (1 = input side; shaded: downsampling blocks)")
    ax.set_ylabel("test error (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="center right")
    seeds = len(next(iter(studies.values())))
    ax.set_title(
        f"Deleting one block at test time, mean over {seeds} seed(s), bars: lowest to highest\n{dataset_label}"
    )
    return fig


def plot_random_deletions(
    studies: Mapping[str, Sequence[LesionStudy]], depth: int, chance: float, dataset_label: str
) -> Figure:
    """Mean test error against the number of randomly deleted blocks, with the spread over draws and seeds.

    Left: deletions (Veit et al. Fig. 4a); the band holds the middle 80% of all draws of all seeds.
    Right: every swap of two adjacent blocks, against the intact nets (Fig. 4b's re-ordering, one pair at a time).
    """
    _check(studies)
    fig, axes = new_figure(1, 2, figsize=(10.5, 4.2), width_ratios=(1.4, 1))
    ax = axes[0]
    for family, runs in studies.items():
        if not runs[0].deletions:
            continue
        colour = family_color(family)
        ks = sorted(runs[0].deletions)
        every = [100 * np.concatenate([s.deletions[k] for s in runs]) for k in ks]
        intact = 100 * np.mean([s.intact_error for s in runs])
        xs = [0, *ks]
        ax.plot(xs, [intact] + [v.mean() for v in every], color=colour, marker="o", ms=4, label=_name(family, depth))
        low = [intact] + [np.percentile(v, 10) for v in every]
        high = [intact] + [np.percentile(v, 90) for v in every]
        ax.fill_between(xs, low, high, color=colour, alpha=0.2, lw=0, label="10th-90th percentile of draws")
        draws = len(runs[0].deletions[ks[0]])
    for family, runs in studies.items():
        if not runs[0].deletions:
            one = 100 * np.mean([s.single.mean() for s in runs])
            ax.axhline(one, color=family_color(family), ls="--", lw=1.2, label=f"{_name(family, depth)}, k = 1")
    ax.axhline(100 * chance, color=family_color("reference"), ls=":", lw=1.5, label="chance")
    ax.set_xlabel("number of blocks deleted, k (chosen at random)")
    ax.set_ylabel("test error (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Deleting k random blocks ({draws} draws per k and seed)")
    ax = axes[1]
    for family, runs in studies.items():
        colour = family_color(family)
        cost = 100 * np.array([[err - s.intact_error for err in s.swaps.values()] for s in runs])
        pairs = np.array(list(runs[0].swaps)) + 1
        ax.plot(pairs, cost.mean(0), color=colour, marker="o", ms=4, ls="", label=_name(family, depth))
    ax.axhline(0, color=family_color("reference"), lw=1)
    ax.set_xlabel("blocks b and b+1 swapped (b)")
    ax.set_ylabel("added test error (points)")
    ax.legend(fontsize=8)
    ax.set_title("Swapping two adjacent blocks (mean over seeds)")
    fig.suptitle(f"Lesions of the trained nets\n{dataset_label}")
    return fig


def plot_effective_paths(
    gradients: Sequence[PathGradients], effective: Sequence[EffectivePaths], dataset_label: str
) -> Figure:
    """Veit et al. Fig. 6: how many paths of each length, the gradient one path carries, and their product."""
    if not gradients or len(gradients) != len(effective):
        raise ValueError("need one PathGradients and one EffectivePaths per seed")
    n = gradients[0].n_blocks
    k = np.arange(n + 1)
    colour, grey = family_color("residual"), family_color("reference")
    fig, axes = new_figure(1, 3, figsize=(12, 3.8))
    axes[0].bar(k, 100 * path_length_distribution(n), color=grey)
    axes[0].set_xlabel("path length (residual branches passed)")
    axes[0].set_ylabel("share of all paths (%)")
    axes[0].set_title(f"2^{n} paths: binomial lengths")
    for i, g in enumerate(gradients):
        axes[1].semilogy(
            k, g.mean, color=colour, marker=".", ms=4, alpha=0.9, label="one line per seed" if i == 0 else None
        )
    axes[1].set_xlabel("path length (residual branches passed)")
    axes[1].set_ylabel("mean |gradient| at first block's input")
    axes[1].set_title(f"gradient of one path ({gradients[0].samples} samples per length)")
    axes[1].legend(fontsize=8)
    for i, e in enumerate(effective):
        axes[2].plot(k, 100 * e.share, color=colour, marker=".", ms=4, label="one line per seed" if i == 0 else None)
    e0 = effective[0]
    axes[2].axvspan(
        e0.low - 0.5, e0.high + 0.5, color=colour, alpha=0.12, lw=0, label=f"central {100 * e0.mass:.0f}%, seed 1"
    )
    axes[2].plot(k, 100 * path_length_distribution(n), color=grey, ls="--", lw=1.2, label="share of paths")
    axes[2].set_xlabel("path length (residual branches passed)")
    axes[2].set_ylabel("share of the total gradient (%)")
    axes[2].set_title("all paths of each length: the effective paths")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Paths through the trained ResNet (BatchNorm in eval mode)\n{dataset_label}")
    return fig


def _shade(depth: int, depths: Sequence[int]):
    return depth_shade("residual", depth, depths)


def plot_converged_single_lesions(
    errors: Mapping[int, np.ndarray],
    intervals: Mapping[int, np.ndarray],
    intact: Mapping[int, float],
    downsampling: Mapping[int, Sequence[int]],
    chance: float,
    dataset_label: str,
    budget: tuple[np.ndarray, float, int] | None = None,
) -> Figure:
    """Test error with one block deleted, per block, for the published ResNets (converged), one panel each.

    ``errors[depth]`` per block (fractions), ``intervals[depth]`` their ``(2, blocks)`` 95% intervals,
    ``intact[depth]`` the intact error, ``downsampling[depth]`` the downsampling blocks' indices (shaded
    and marked with squares). ``budget``: ``(errors per block, intact error, seeds)`` of the book's own
    ResNet of the same depth as the first panel, trained for minutes (mean over seeds).
    """
    if not errors or set(errors) != set(intervals) or set(errors) != set(intact) or set(errors) != set(downsampling):
        raise ValueError("need errors, intervals, intact errors and downsampling blocks for the same depths")
    depths = sorted(errors, reverse=True)
    fig, axes = new_figure(
        1, len(depths), figsize=(5.2 * len(depths) + 1.5, 4.2), squeeze=False,
        width_ratios=[len(errors[d]) + 6 for d in depths],
    )  # fmt: skip
    for ax, depth in zip(axes[0], depths, strict=True):
        err, (low, high) = 100 * np.asarray(errors[depth]), 100 * np.asarray(intervals[depth])
        blocks = np.arange(1, len(err) + 1)
        colour = _shade(depth, depths)
        for i in downsampling[depth]:
            ax.axvspan(i + 0.5, i + 1.5, color="0.88", lw=0, zorder=0)
        ax.errorbar(
            blocks, err, yerr=(err - low, high - err), color=colour, marker="o", ms=4, lw=1.2, capsize=2,
            label=f"ResNet-{depth} converged, one block deleted (95% interval)",
        )  # fmt: skip
        down = list(downsampling[depth])
        ax.plot(blocks[down], err[down], "s", ms=8, mfc="none", mec="black", label="downsampling block deleted")
        ax.axhline(100 * intact[depth], color=colour, ls="--", lw=1.2, label=f"intact ({100 * intact[depth]:.1f}%)")
        if budget is not None and depth == depths[0]:
            b_err, b_intact, seeds = budget
            if len(b_err) != len(err):
                raise ValueError(f"the budget net has {len(b_err)} blocks, ResNet-{depth} {len(err)}")
            grey = family_color("reference")
            ax.plot(blocks, 100 * np.asarray(b_err), color=grey, marker="^", ms=4, lw=1,
                    label=f"ResNet-{depth}, this book's budget ({seeds} seeds), one block deleted")  # fmt: skip
            ax.axhline(100 * b_intact, color=grey, ls="--", lw=1, label=f"budget net intact ({100 * b_intact:.1f}%)")
        ax.axhline(100 * chance, color="black", ls=":", lw=1.2, label=f"chance ({100 * chance:.0f}%)")
        ax.set_xlabel("deleted block (1 = input side; shaded: downsampling)")
        ax.set_ylabel("test error (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        ax.set_title(f"ResNet-{depth} trained to convergence: one block deleted")
    fig.suptitle(f"Deleting one block of a converged ResNet at test time\n{dataset_label}")
    return fig


def plot_converged_deletions(
    ks: Mapping[int, np.ndarray],
    mean: Mapping[int, np.ndarray],
    half_width: Mapping[int, np.ndarray],
    chance: float,
    dataset_label: str,
    budget: tuple[np.ndarray, np.ndarray, int, int] | None = None,
) -> Figure:
    """Mean test error against the number ``k`` of randomly deleted blocks (k = 0: intact), with 95% tolerances.

    ``ks[depth]``, ``mean[depth]``, ``half_width[depth]``: one curve per published ResNet (fractions).
    ``budget``: ``(ks, mean error, depth, seeds)`` of the book's own ResNet trained for minutes.
    """
    if not ks or set(ks) != set(mean) or set(ks) != set(half_width):
        raise ValueError("need ks, means and tolerances for the same depths")
    depths = sorted(ks, reverse=True)
    fig, ax = new_figure(figsize=(7.5, 4.4))
    for depth in depths:
        k, m, h = np.asarray(ks[depth]), 100 * np.asarray(mean[depth]), 100 * np.asarray(half_width[depth])
        colour = _shade(depth, depths)
        ax.errorbar(k, m, yerr=h, color=colour, marker="o", ms=4, capsize=3, label=f"ResNet-{depth} converged")
        ax.fill_between(k, m - h, m + h, color=colour, alpha=0.15, lw=0)
    if budget is not None:
        b_ks, b_mean, b_depth, seeds = budget
        ax.plot(b_ks, 100 * np.asarray(b_mean), color=family_color("reference"), marker="^", ms=4,
                label=f"ResNet-{b_depth}, this book's budget ({seeds} seeds)")  # fmt: skip
    ax.axhline(100 * chance, color="black", ls=":", lw=1.2, label=f"chance ({100 * chance:.0f}%)")
    ax.set_xlabel("number of blocks deleted, k (chosen at random; 0 = intact)")
    ax.set_ylabel("mean test error over draws (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Deleting k random blocks of converged ResNets (bars: 95% tolerance)\n{dataset_label}")
    return fig


__all__ = [
    "plot_converged_deletions",
    "plot_converged_single_lesions",
    "plot_effective_paths",
    "plot_random_deletions",
    "plot_single_block_lesions",
]
