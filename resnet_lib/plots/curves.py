"""Training curves: error against epochs or steps, one line per seed, and a legend for the line styles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes

from resnet_lib.models import net_label
from resnet_lib.plots.style import depth_shade


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


def plot_depth_curves(
    ax: Axes,
    family: str,
    curves: Mapping[int, Sequence[Sequence[dict]]],
    legend: str = "lower left",
    line_styles: str | None = "lower right",
    ylim: float = 100,
) -> Axes:
    """Error curves of one family's nets, one shade of its colour per depth (``curves[depth]``: one
    ``History.epochs`` list per seed); a legend of the nets at ``legend`` and, unless ``line_styles`` is
    ``None``, the dashed/solid legend there."""
    depths = tuple(curves)
    for depth, histories in curves.items():
        plot_seed_curves(ax, histories, depth_shade(family, depth, depths), net_label(family, depth))
    ax.legend(loc=legend)
    if line_styles is not None:
        add_line_style_legend(ax, loc=line_styles)
    ax.set_ylim(0, ylim)
    return ax
