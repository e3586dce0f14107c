"""Chapter 8's figures: forward signal against depth at initialization, x + F(x) per block, trained errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from resnet_lib.plots.style import titled

#: One colour and marker per kind of net (Okabe-Ito, colour-blind safe).
KIND_STYLES: dict[str, tuple[str, str]] = {
    "plain_nobn": ("#D55E00", "s"),  # vermillion
    "nobn": ("#E69F00", "v"),  # orange
    "skipinit": ("#009E73", "^"),  # bluish green
    "original": ("#0072B2", "o"),  # blue
    "zero_gamma": ("#CC79A7", "D"),  # reddish purple
    "preact": ("#56B4E9", "P"),  # sky blue
}


def plot_signal_vs_depth(
    depths: Sequence[int], growth: Mapping[str, np.ndarray], labels: Mapping[str, str], dataset_label: str
):
    """Mean square of the last block's output over the stem's, at initialization, against depth (log scale).

    ``growth[kind]`` is seeds x depths; the line is the geometric mean over seeds, the band its range.
    """
    fig, ax = plt.subplots(figsize=(8.6, 4.4))
    for kind, values in growth.items():
        colour, marker = KIND_STYLES[kind]
        values = np.asarray(values, dtype=float)
        centre = np.exp(np.log(values).mean(0))
        # Zero-start nets lie on one line (both are the identity at init): the second is dashed, hollow, larger.
        second = kind == "zero_gamma"
        ax.plot(
            depths, centre, marker=marker, color=colour, label=labels[kind], linestyle="--" if second else "-",
            markerfacecolor="none" if second else colour, markersize=9 if second else 6,
        )  # fmt: skip
        ax.fill_between(depths, values.min(0), values.max(0), color=colour, alpha=0.2, linewidth=0)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xticks(list(depths), [str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("depth (weight layers, log scale)")
    ax.set_ylabel("mean square, last block / stem (ratio, log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)  # clear of the data
    titled(ax, "Forward signal at initialization: how much it grows through the net", dataset_label)
    fig.tight_layout()
    return fig


def plot_identity_defects(defects: Mapping[str, np.ndarray], labels: Mapping[str, str], dataset_label: str):
    """Per block, how far ``x_{l+1}`` is from ``s(x_l) + F(x_l)`` (relative norm), a line per kind (seed mean)."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for kind, values in defects.items():
        colour, marker = KIND_STYLES[kind]
        values = np.asarray(values, dtype=float)
        blocks = np.arange(1, values.shape[1] + 1)
        ax.plot(blocks, values.mean(0), marker=marker, markersize=4, color=colour, label=labels[kind])
    ax.set_xlabel("block (input to output)")
    ax.set_ylabel("‖x_{l+1} − (x_l + F(x_l))‖ / ‖x_{l+1}‖")
    ax.legend(loc="best")
    titled(ax, "Does a trained block add its branch to the identity path?", dataset_label)
    return fig


def plot_trained_errors(
    errors: Mapping[str, np.ndarray], labels: Mapping[str, str], chance: float, diverged: Mapping[str, np.ndarray],
    dataset_label: str, depth: int,
):  # fmt: skip
    """Final training error (%) of every kind and seed: a bar per kind (mean), a dot per seed, ✕ where it diverged."""
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for i, (kind, values) in enumerate(errors.items()):
        colour, _ = KIND_STYLES[kind]
        values = 100 * np.asarray(values, dtype=float)
        ax.bar(i, values.mean(), color=colour, alpha=0.6)
        jitter = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(1)
        bad = np.asarray(diverged[kind], dtype=bool)
        ax.scatter(i + jitter[~bad], values[~bad], color="black", s=14, zorder=3)
        ax.scatter(i + jitter[bad], values[bad], color="black", marker="x", s=30, zorder=3)
    ax.axhline(100 * chance, color="#7F7F7F", linestyle="--", label=f"chance ({100 * chance:.0f}%)")
    ax.set_xticks(range(len(errors)), [labels[k] for k in errors], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("final training error (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower left")
    titled(ax, f"{depth}-layer nets after the profile's training (dots: seeds; ✕: diverged)", dataset_label)
    return fig


def plot_errors_by_depth(
    errors: Mapping[int, Mapping[str, np.ndarray]], labels: Mapping[str, str], chance: float,
    diverged: Mapping[int, Mapping[str, np.ndarray]], dataset_label: str,
):  # fmt: skip
    """Final training error (%) of the same kinds at two or more depths: per kind a bar per depth (mean; the
    deeper, the more hatched), a dot per seed, ✕ where it diverged."""
    depths = sorted(errors)
    kinds = [k for k in errors[depths[-1]] if all(k in errors[d] for d in depths)]
    width = 0.8 / len(depths)
    hatches = ["", "//", "xx", ".."]
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for j, depth in enumerate(depths):
        for i, kind in enumerate(kinds):
            colour, _ = KIND_STYLES[kind]
            values = 100 * np.asarray(errors[depth][kind], dtype=float)
            x = i + (j - (len(depths) - 1) / 2) * width
            bar_label = f"{depth} layers" if i == 0 else None
            ax.bar(x, values.mean(), width=0.9 * width, color=colour, alpha=0.6, hatch=hatches[j % len(hatches)],
                   edgecolor="black", linewidth=0.5, label=bar_label)  # fmt: skip
            jitter = np.linspace(-0.25, 0.25, len(values)) * width if len(values) > 1 else np.zeros(1)
            bad = np.asarray(diverged[depth][kind], dtype=bool)
            ax.scatter(x + jitter[~bad], values[~bad], color="black", s=14, zorder=3)
            ax.scatter(x + jitter[bad], values[bad], color="black", marker="x", s=30, zorder=3)
    ax.axhline(100 * chance, color="#7F7F7F", linestyle="--", label=f"chance ({100 * chance:.0f}%)")
    ax.set_xticks(range(len(kinds)), [labels[k] for k in kinds], fontsize=8)
    ax.set_ylabel("final training error (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower left", fontsize=8)
    depth_words = " and ".join(str(d) for d in depths)
    titled(ax, f"The same nets at {depth_words} layers, same training (dots: seeds; ✕: diverged)", dataset_label)
    return fig


__all__ = [
    "KIND_STYLES",
    "plot_errors_by_depth",
    "plot_identity_defects",
    "plot_signal_vs_depth",
    "plot_trained_errors",
]
