"""Chapter 5's figures: the plain and residual building block, drawn."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from resnet_lib.plots.style import family_color


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
