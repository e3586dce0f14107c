"""Chapter 9's figure: the gradient through k blocks at initialization, per shortcut variant, measured and derived."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from resnet_lib.plots.style import titled

#: Okabe-Ito colours and markers, one per shortcut variant, in He et al.'s Table 1 order.
VARIANT_STYLES: dict[str, tuple[str, str]] = {
    "identity": ("#0072B2", "o"),
    "scaling": ("#D55E00", "s"),
    "exclusive_gating": ("#009E73", "^"),
    "shortcut_gating": ("#CC79A7", "v"),
    "conv1x1": ("#E69F00", "D"),
    "dropout": ("#56B4E9", "P"),
}


def _positive(values: np.ndarray) -> np.ndarray:
    """The values with zeros (a gradient that did not survive) hidden from a log axis."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def plot_gradient_ratios(
    blocks: np.ndarray,
    measured_zero: Mapping[str, np.ndarray],
    measured_on: Mapping[str, np.ndarray],
    derived: Mapping[str, np.ndarray],
    labels: Mapping[str, str],
    dataset_label: str,
):
    """Two panels, ratio ``||dE/dx_{L-k}|| / ||dE/dx_L||`` against ``k`` (log scale): branch zeroed, branch on.

    Each mapping holds one value per ``k`` per variant (the typical value over seeds); measured values are lines
    with markers, the derivation for the shortcut path alone is a dashed line in the same colour on both panels.
    """
    blocks = np.asarray(blocks)
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharey=True)
    step = max(len(blocks) // 9, 1)
    for ax, measured, title in (
        (axes[0], measured_zero, "branch zeroed (F = 0): the shortcut path alone"),
        (axes[1], measured_on, "branch on (F as initialized)"),
    ):
        for variant, values in measured.items():
            colour, marker = VARIANT_STYLES.get(variant, ("#7F7F7F", "x"))
            ax.plot(blocks, _positive(derived[variant]), color=colour, linestyle="--", linewidth=1.2)
            on_top = variant == "identity"  # wide and underneath: exclusive gating at b_g = -6 runs along it
            ax.plot(
                blocks, _positive(values), color=colour, marker=marker, markevery=step, label=labels[variant],
                markersize=7 if on_top else 5, zorder=1.5 if on_top else 2, linewidth=3.0 if on_top else 1.8,
            )  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel(r"$k$: blocks between $x_{L-k}$ and the top of the stack, $x_L$")
        titled(ax, title)
    axes[0].set_ylabel(r"$\|\partial E/\partial x_{L-k}\| \;/\; \|\partial E/\partial x_L\|$ (ratio, log scale)")
    axes[1].plot([], [], color="#7F7F7F", linestyle="--", linewidth=1.2, label="derived, shortcut path alone")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    fig.suptitle(f"Gradient through k blocks at initialization, per shortcut (He et al. 2016b)\n{dataset_label}")
    return fig


__all__ = ["VARIANT_STYLES", "plot_gradient_ratios"]
