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


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """``plt.subplots`` with the book's style applied."""
    use_book_style()
    return plt.subplots(nrows, ncols, **kwargs)
