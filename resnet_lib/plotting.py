"""One figure style for the whole book: sizes, fonts, and one colour per model family."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

#: One colour per model family, used in every chapter (colour-blind safe, Okabe-Ito).
FAMILY_COLORS: dict[str, str] = {
    "plain": "#D55E00",  # vermillion
    "residual": "#0072B2",  # blue
    "constructed": "#009E73",  # bluish green: the identity-padded net of chapter 3
    "reference": "#7F7F7F",  # grey: noise references, theory curves
}

#: Colours for activations (chapter 2) and other categorical series.
SERIES_COLORS: dict[str, str] = {
    "sigmoid": "#CC79A7",
    "tanh": "#E69F00",
    "relu": "#0072B2",
    "relu+bn": "#009E73",
    "white noise": "#BBBBBB",
    "brown noise": "#8C564B",
}

_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    # A white card keeps figures readable in the book's dark theme too.
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "figure.constrained_layout.use": True,
}


def use_book_style() -> None:
    """Apply the book's matplotlib style (called by :func:`resnet_lib.notebook.setup`)."""
    mpl.rcParams.update(_STYLE)


def family_color(family: str) -> str:
    """The colour of a model family: ``plain``, ``residual``, ``constructed`` or ``reference``."""
    try:
        return FAMILY_COLORS[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; choose one of: {', '.join(FAMILY_COLORS)}") from None


def depth_shade(family: str, depth: int, depths: Sequence[int]) -> tuple[float, float, float, float]:
    """The family colour, lighter for shallower nets, so depth reads at a glance."""
    base = mpl.colors.to_rgba(family_color(family))
    rank = sorted(depths).index(depth)
    mix = 0.55 * (1 - rank / max(len(depths) - 1, 1))
    return (*tuple(c + (1 - c) * mix for c in base[:3]), 1.0)


def titled(ax: Axes, title: str, dataset_label: str | None = None) -> Axes:
    """Set an axes title, naming the dataset on a second line when one is given."""
    ax.set_title(title if dataset_label is None else f"{title}\n{dataset_label}")
    return ax


def plot_error_curves(
    ax: Axes,
    history: Sequence[dict],
    color: str,
    label: str,
    x: str = "epoch",
    spread: tuple[Sequence[float], Sequence[float]] | None = None,
) -> None:
    """He et al.'s convention: training error dashed, test error solid, in percent.

    ``spread`` is an optional (low, high) band of test error drawn around the curve.
    """
    xs = [h[x] for h in history]
    ax.plot(xs, [100 * h["train_error"] for h in history], ls="--", color=color, alpha=0.9)
    ax.plot(xs, [100 * h["test_error"] for h in history], ls="-", color=color, label=label)
    if spread is not None:
        ax.fill_between(xs, [100 * v for v in spread[0]], [100 * v for v in spread[1]], color=color, alpha=0.15)
    ax.set_xlabel("epoch" if x == "epoch" else "iteration")
    ax.set_ylabel("error (%)")


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """``plt.subplots`` with the book's style applied."""
    use_book_style()
    return plt.subplots(nrows, ncols, **kwargs)


def plot_seed_curves(
    ax: Axes,
    histories: Sequence[Sequence[dict]],
    color: str,
    label: str,
    x: str = "step",
) -> None:
    """Error curves of one net over seeds: mean training error dashed, mean test error solid, in percent.

    ``histories`` holds one :attr:`resnet_lib.History.epochs` list per seed; with several
    seeds, a band shows the lowest to highest value over seeds of each curve. ``x`` is
    ``"step"`` (iterations, as in He et al.'s figures) or ``"epoch"``.
    """
    if x not in ("step", "epoch"):
        raise ValueError(f"x must be 'step' or 'epoch', got {x!r}")
    if not histories or not all(histories):
        raise ValueError("plot_seed_curves needs at least one non-empty history")
    length = min(len(h) for h in histories)  # a diverged seed stops early
    xs = [histories[0][i][x] for i in range(length)]
    for key, style, name in (("train_error", "--", None), ("test_error", "-", label)):
        values = [[100 * h[i][key] for i in range(length)] for h in histories]
        mean = [sum(col) / len(col) for col in zip(*values, strict=True)]
        ax.plot(xs, mean, ls=style, color=color, label=name, alpha=0.9 if style == "--" else 1.0, marker=".", ms=5)
        if len(histories) > 1:
            low = [min(col) for col in zip(*values, strict=True)]
            high = [max(col) for col in zip(*values, strict=True)]
            ax.fill_between(xs, low, high, color=color, alpha=0.15, lw=0)
    ax.set_xlabel("iteration (optimizer steps)" if x == "step" else "epoch")
    ax.set_ylabel("error (%)")


def add_line_style_legend(ax: Axes, loc: str = "upper right") -> None:
    """A second legend that says dashed = training error, solid = test error."""
    from matplotlib.lines import Line2D

    first = ax.get_legend()
    handles = [Line2D([], [], color="0.3", ls="--"), Line2D([], [], color="0.3", ls="-")]
    ax.legend(handles, ["training error (dashed)", "test error (solid)"], loc=loc, fontsize=8, frameon=False)
    if first is not None:
        ax.add_artist(first)


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
