"""Concept figures that no run measures: drawn from the argument itself (chapter 3's function classes)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from resnet_lib.plots.style import family_color


def _function_class(ax: Axes, centre: tuple[float, float], size: tuple[float, float], colour, label: str) -> None:
    ax.add_patch(Ellipse(centre, *size, facecolor=colour, edgecolor=colour, alpha=0.22, lw=1.5))
    ax.add_patch(Ellipse(centre, *size, facecolor="none", edgecolor=colour, lw=1.5))
    ax.text(centre[0], centre[1] + size[1] / 2 - 0.12, label, ha="center", va="top", fontsize=9, color=colour)


def plot_function_classes(depths: Sequence[int] = (20, 56)) -> tuple[Figure, list[Axes]]:
    """Two panels after d2l.ai's Fig. 8.6.1: function classes of growing size, not nested and nested.

    Left, each bigger class is merely *different*: it may lie farther from the best function
    ``f*``. Right, every class contains the smaller ones (a deeper net can copy a shallower one
    and make its extra layers identities, as chapter 3 builds), so the best function *in* the
    bigger class is at least as close to ``f*``, whether or not training reaches it.
    """
    shallow, deep = depths
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    colours = [family_color("constructed"), family_color("plain"), "0.35"]
    star = (4.4, 3.6)
    # Not nested: three classes that grow but wander off.
    for (centre, size), colour, label in zip(
        [((1.1, 1.1), (1.8, 1.4)), ((3.3, 1.0), (2.8, 1.4)), ((1.8, 3.0), (3.2, 1.6))],
        colours,
        ["$\\mathcal{F}_1$", "$\\mathcal{F}_2$", "$\\mathcal{F}_3$"],
        strict=True,
    ):
        _function_class(axes[0], centre, size, colour, label)
    # Nested: each class contains the one before it and reaches further towards f*.
    for (centre, size), colour, label in zip(
        [((1.3, 1.0), (2.0, 1.2)), ((1.9, 1.5), (3.4, 2.5)), ((2.5, 2.2), (4.7, 4.0))],
        colours,
        [f"plain-{shallow}", f"plain-{deep}: contains plain-{shallow}", "deeper still"],
        strict=True,
    ):
        _function_class(axes[1], centre, size, colour, label)
    for ax in axes:
        ax.plot(*star, marker="*", color="black", ms=14)
        ax.annotate("$f^*$ (best function)", star, xytext=(star[0] - 0.2, star[1] + 0.55), fontsize=9)
        ax.set_xlim(0, 5.2)
        ax.set_ylim(0, 4.6)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("functions from images to class scores (a sketch, no units)")
    axes[0].set_title("Not nested: a bigger class can land farther from $f^*$")
    axes[1].set_title("Nested: a bigger class is never farther from $f^*$")
    fig.suptitle("Function classes, after Zhang et al.'s d2l.ai Fig. 8.6.1 (no data: the argument itself)")
    fig.tight_layout()
    return fig, list(axes)


__all__ = ["plot_function_classes"]
