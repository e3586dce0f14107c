"""Chapter 3's figures: the slow-start control (plain-56 given more steps than plain-20), the built plain-56
beside the trained nets, and the function classes (a concept figure that no run measures, drawn from the
argument itself)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Patch

from resnet_lib.plots.style import depth_shade, family_color, new_figure, titled


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


def plot_slow_start(
    curves: Sequence[tuple[int, str, bool, Sequence[Sequence[dict]]]], title: str, dataset_label: str
) -> Axes:
    """Training error against step of plain nets at their own step budgets, every seed.

    Each entry of ``curves`` is ``(depth, budget, control, epochs)``: the net's depth (its colour), its budget in
    words for the legend (``"1x steps"``), whether it is the slow-start control's run (dashed) and one
    ``History.epochs`` per seed (dicts with ``step`` and ``train_error``). Only the first seed is labelled.
    """
    if not curves:
        raise ValueError("plot_slow_start needs at least one curve")
    depths = sorted({depth for depth, *_ in curves})
    _, ax = new_figure(figsize=(7, 4.2))
    for depth, budget, control, runs in curves:
        if not runs:
            raise ValueError(f"plain-{depth} at {budget}: no runs to draw")
        colour = depth_shade("plain", depth, depths)
        for i, epochs in enumerate(runs):
            ax.plot(
                [e["step"] for e in epochs],
                [100 * e["train_error"] for e in epochs],
                color=colour,
                ls="--" if control else "-",
                alpha=1.0 if i == 0 else 0.55,
                label=f"plain-{depth}, {budget}" if i == 0 else None,
            )
    ax.set_xlabel("training step")
    ax.set_ylabel("training error (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right")
    return titled(ax, title, dataset_label)


def plot_longer_plain(
    plain20: Sequence[dict],
    plain56: Sequence[dict],
    longer56: Sequence[dict],
    factor: int,
    title: str,
    dataset_label: str,
) -> Axes:
    """:func:`plot_slow_start` for one seed: plain-20 and plain-56 at the profile's steps, and plain-56 with
    ``factor`` times as many. Each argument is one run's ``History.epochs``."""
    curves = [(20, "1x steps", False, [plain20]), (56, "1x steps", False, [plain56])]
    return plot_slow_start([*curves, (56, f"{factor}x steps", True, [longer56])], title, dataset_label)


def plot_built_vs_trained(errors: dict[tuple[str, str], float], names: Sequence[str], dataset_label: str) -> Axes:
    """Training (hatched) and test error (%) of each net in ``names``: ``errors[name, "train" | "test"]``.

    The names are, in order, the trained shallow net, the net built from it, the deep net trained from scratch.
    """
    colours = [depth_shade("plain", 20, (20, 56)), family_color("constructed"), family_color("plain")]
    _, ax = new_figure(figsize=(7, 3.8))
    for i, (name, colour) in enumerate(zip(names, colours, strict=True)):
        for dx, split, hatch in ((-0.18, "train", "//"), (0.18, "test", None)):
            ax.bar(i + dx, errors[name, split], 0.36, color=colour, hatch=hatch, edgecolor="white")
            ax.text(i + dx, errors[name, split] + 1, f"{errors[name, split]:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("error (%), eval mode, no augmentation")
    ax.set_ylim(0, 110)
    grey = [Patch(facecolor="0.6", hatch="//", edgecolor="white"), Patch(facecolor="0.6")]
    ax.legend(grey, ["training error", "test error"], loc="upper center", ncols=2, frameon=False)
    return titled(ax, f"Two {_depth(names[1])}-layer plain nets: one built from plain-20, one trained", dataset_label)


def _depth(name: str) -> str:
    """``"built plain-56"`` -> ``"56"``."""
    return name.rsplit("-", 1)[-1]


__all__ = ["plot_built_vs_trained", "plot_function_classes", "plot_longer_plain", "plot_slow_start"]
