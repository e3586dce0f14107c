"""Chapter 4's figures and its depth explorer (an ipywidgets depth slider)."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from resnet_lib.measure.gradients import INPUT_RANGE, DepthSweep, gradient_samples, input_grid
from resnet_lib.measure.statistics import (
    autocorrelation,
    brown_noise,
    gradient_covariance,
    lag1_autocorrelation,
    plain_theory,
    resnet_bn_theory,
    resnet_theory_scale,
    spectrum_slope,
    white_noise,
)
from resnet_lib.models.scalar import NetSpec
from resnet_lib.plots.style import SERIES_COLORS, family_color
from resnet_lib.plots.widgets import ExplorerPanel, figure_png


def grid_label(n_inputs: int = 256) -> str:
    """What a figure of this chapter shows instead of a dataset's name."""
    return f"no dataset: {n_inputs} evenly spaced inputs on [{INPUT_RANGE[0]:g}, {INPUT_RANGE[1]:g}]"


def net_style(spec: NetSpec | str) -> dict:
    """Colour and line style of a net (or of ``"white noise"`` / ``"brown noise"``) in this chapter's figures."""
    if isinstance(spec, str):
        if spec not in ("white noise", "brown noise"):
            raise ValueError(f"unknown reference {spec!r}; choose 'white noise' or 'brown noise'")
        return {"color": SERIES_COLORS[spec], "ls": "-"}
    if spec.residual:
        return {"color": family_color("residual"), "ls": "-" if spec.batch_norm else "--"}
    if spec.depth == 1:  # its own hue (orange), not a lighter vermillion that reads as the same net
        return {"color": SERIES_COLORS["tanh"], "ls": "-"}
    if not spec.batch_norm:  # a second hue (reddish purple), dashed, so it parts from the plain net with BN
        return {"color": SERIES_COLORS["sigmoid"], "ls": "--"}
    return {"color": family_color("plain"), "ls": "-"}


def plot_gradients_and_covariance(
    columns: Sequence[tuple[str, np.ndarray, dict]], x: np.ndarray, title: str
) -> plt.Figure:
    """Balduzzi et al.'s Fig. 1: per column, one draw's ``df/dx`` (top) and the correlation over draws (bottom).

    ``columns`` holds ``(label, samples (S, M), style)``; the first row of ``samples`` is drawn on top.
    """
    fig, axes = plt.subplots(2, len(columns), figsize=(2.45 * len(columns), 5.2), squeeze=False)
    extent = (float(x[0]), float(x[-1]), float(x[-1]), float(x[0]))
    image = None
    for k, (label, samples, style) in enumerate(columns):
        top, bottom = axes[0, k], axes[1, k]
        top.plot(x, samples[0], color=style["color"], lw=0.9)
        top.set_title(label, fontsize=9)
        top.set_xlabel("input x")
        top.set_xlim(x[0], x[-1])
        image = bottom.imshow(gradient_covariance(samples), cmap="RdBu_r", vmin=-1, vmax=1, extent=extent)
        bottom.set_xlabel("input x")
        bottom.grid(False)
        if k == 0:
            top.set_ylabel("df/dx (output per unit input)")
            bottom.set_ylabel("input x")
    fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8, label=f"correlation over {len(columns[0][1])} draws")
    fig.suptitle(title)
    return fig


def plot_autocorrelation(
    ax: plt.Axes, curves: Sequence[tuple[str, np.ndarray, dict]], max_lag: int = 64, spacing: float | None = None
) -> plt.Axes:
    """Balduzzi et al.'s Fig. 2: mean autocorrelation over draws against lag, with a band of one standard deviation.

    ``curves`` holds ``(label, samples (S, M), style)``; ``spacing`` (input units per step) adds a second axis.
    """
    lags = np.arange(max_lag + 1)
    for label, samples, style in curves:
        acf = autocorrelation(samples, max_lag)
        mean, sd = acf.mean(0), acf.std(0)
        ax.plot(lags, mean, label=label, **style)
        ax.fill_between(lags, mean - sd, mean + sd, color=style["color"], alpha=0.15, lw=0)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("lag (steps between inputs)")
    ax.set_ylabel("autocorrelation of df/dx")
    ax.set_xlim(0, max_lag)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if spacing is not None:
        sec = ax.secondary_xaxis("top", functions=(lambda k: k * spacing, lambda d: d / spacing))
        sec.set_xlabel("distance between inputs (units of x)")
    return ax


def plot_shattering_summary(curves: Sequence[tuple[str, np.ndarray, dict]], title: str) -> plt.Figure:
    """Two one-number summaries per net: lag-1 autocorrelation and spectrum slope, one dot per draw, mean and sd.

    ``curves`` holds ``(label, samples (S, M), style)``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    measures = [
        (lag1_autocorrelation, "lag-1 autocorrelation", (0.0, "white noise: 0"), (1.0, "brown noise: about 1")),
        (spectrum_slope, "power-spectrum slope", (0.0, "white noise: 0"), (-2.0, "brown noise: -2")),
    ]
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=max(len(c[1]) for c in curves))
    for ax, (measure, name, *lines) in zip(axes, measures, strict=True):
        for k, (_label, samples, style) in enumerate(curves):
            values = np.atleast_1d(measure(samples))
            ax.scatter(k + jitter[: len(values)], values, s=9, color=style["color"], alpha=0.6, lw=0)
            ax.errorbar(k + 0.33, np.nanmean(values), yerr=np.nanstd(values), fmt="D", ms=5, color="black", capsize=3)
        for value, text in lines:
            ax.axhline(value, color=family_color("reference"), ls=":", lw=1)
            ax.text(len(curves) - 0.5, value, text, ha="right", va="bottom", fontsize=8, color="dimgray")
        ax.set_xticks(range(len(curves)), [c[0] for c in curves], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(name)
        ax.set_title(f"{name} (dots: draws; diamond: mean and sd)")
    fig.suptitle(title)
    return fig


def plot_depth_sweep(
    sweep: DepthSweep,
    references: dict[str, np.ndarray],
    noise_floor: float,
    resnet_kind: str,
    plain_kind: str,
) -> plt.Figure:
    """Left: lag-1 autocorrelation against depth (mean and sd over seeds); right: pair correlation beside theory.

    ``references`` maps ``"white noise"``/``"brown noise"`` to lag-1 values of noise draws.
    The theory curves are ``2^-L`` (no free constant) and ``c/sqrt(L)`` with ``c`` fitted to
    ``resnet_kind``'s values above the floor (the theory gives a rate, not ``c``).
    """
    depths = np.array(sweep.depths)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, values in references.items():
        style = net_style(name)
        left.axhspan(values.min(), values.max(), color=style["color"], alpha=0.25, lw=0, label=f"{name} (range)")
    for kind, spec in sweep.specs.items():
        style = net_style(spec.at_depth(max(2, int(depths.max()))))
        marker = {"marker": "o" if spec.batch_norm else "s", "ms": 4, "mfc": "white" if not spec.batch_norm else None}
        lag1 = sweep.lag1[kind]
        mean, sd = lag1.mean(1), lag1.std(1)
        left.plot(depths, mean, label=kind, **marker, **style)
        left.fill_between(depths, mean - sd, mean + sd, color=style["color"], alpha=0.15, lw=0)
        pair, band = sweep.pair[kind], sweep.pair_band[kind]
        right.plot(depths, np.where(pair > noise_floor, pair, np.nan), label=kind, **marker, **style)
        right.fill_between(
            depths, np.clip(band[:, 0], noise_floor, None), np.clip(band[:, 1], noise_floor, None),
            color=style["color"], alpha=0.15, lw=0,
        )  # fmt: skip
    fine = np.linspace(depths.min(), depths.max(), 200)
    grey = family_color("reference")
    right.plot(fine, plain_theory(fine), color=grey, ls=":", lw=1.6, label="theory, plain: $2^{-L}$")
    c = resnet_theory_scale(depths, sweep.pair[resnet_kind], noise_floor)
    label = r"theory, ResNet + BN: $c/\sqrt{L}$ ($c$ fitted)"
    right.plot(fine, resnet_bn_theory(fine, c), color=grey, ls="--", lw=1.6, label=label)
    right.axhspan(noise_floor / 10, noise_floor, color=SERIES_COLORS["white noise"], alpha=0.35, lw=0)
    right.text(depths.max(), noise_floor * 0.5, "white-noise level\nat this many draws", ha="right", va="center")
    right.set_yscale("log")
    right.set_ylim(noise_floor / 3, 1.2)
    left.set_xlabel("depth L (hidden layers)")
    right.set_xlabel("depth L (hidden layers)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("lag-1 autocorrelation of df/dx")
    right.set_ylabel("correlation of df/dx at two inputs")
    left.set_title("Neighbouring inputs (4/255 apart): mean and sd over nets")
    right.set_title("Two inputs picked at random, over random nets")
    left.legend(fontsize=8, loc="center right")
    right.legend(fontsize=8, loc="upper right")
    n_inputs = next(iter(sweep.samples.values())).shape[1]
    fig.suptitle(f"Shattering against depth ({len(sweep.seeds)} random nets per point; {grid_label(n_inputs)})")
    return fig


def draw_depth_panel(
    spec: NetSpec, seed: int = 0, units: int = 200, n_inputs: int = 256, max_lag: int = 64
) -> plt.Figure:
    """One net's ``df/dx`` (left) and its autocorrelation beside one draw of white and brown noise (right)."""
    x = input_grid(n_inputs).numpy()
    max_lag = min(max_lag, n_inputs - 1)
    g = gradient_samples(spec, [seed], units, n_inputs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(x, g[0], color=net_style(spec)["color"], lw=0.9)
    left.set_xlabel("input x")
    left.set_ylabel("df/dx (output per unit input)")
    left.set_title(f"{spec.label}, seed {seed}: lag-1 autocorrelation {lag1_autocorrelation(g[0]):.2f}", fontsize=9)
    curves = [(spec.label, g, net_style(spec))]
    for name, noise in (
        ("white noise", white_noise(1, n_inputs, seed)),
        ("brown noise", brown_noise(1, n_inputs, seed)),
    ):
        curves.append((name, noise.numpy(), net_style(name)))
    plot_autocorrelation(right, curves, max_lag)
    right.set_title("Autocorrelation (one draw each)")
    right.legend(fontsize=8)
    fig.suptitle(f"Depth explorer ({grid_label(n_inputs)})")
    return fig


def depth_explorer(
    units: int = 200, n_inputs: int = 256, max_depth: int = 50, seed: int = 0, max_lag: int = 64
) -> widgets.Widget:
    """An ipywidgets panel: pick a kind of net and a depth; it redraws df/dx and its autocorrelation."""
    kinds = {
        "plain + BN": NetSpec(1, batch_norm=True),
        "plain (no BN)": NetSpec(1),
        "ResNet + BN": NetSpec(1, residual=True, batch_norm=True),
    }
    depth = widgets.IntSlider(value=24, min=1, max=max_depth, description="depth L", continuous_update=False)
    kind = widgets.Dropdown(options=list(kinds), value="plain + BN", description="net")
    net_seed = widgets.IntSlider(value=seed, min=0, max=20, description="seed", continuous_update=False)

    panel = ExplorerPanel()

    def draw(kind_name: str, depth_value: int, seed_value: int) -> None:
        fig = draw_depth_panel(kinds[kind_name].at_depth(depth_value), seed_value, units, n_inputs, max_lag)
        if panel.static_png is None:  # the first state, for pages without a kernel
            panel.static_png = figure_png(fig)
            panel.static_settings = f"{kind_name}, depth {depth_value}, seed {seed_value}"
        plt.show()

    out = widgets.interactive_output(draw, {"kind_name": kind, "depth_value": depth, "seed_value": net_seed})
    panel.children = [widgets.HBox([kind, depth, net_seed]), out]
    return panel


def plot_bias_kinks(x: np.ndarray, panels: Sequence[tuple[NetSpec, np.ndarray]], grid: str) -> plt.Figure:
    """One panel per net: its input gradient df/dx on ``x``, titled with how many distinct values it takes."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, (spec, g) in zip(axes[0], panels, strict=True):
        ax.plot(x, g, **net_style(spec), lw=1)
        ax.set_title(f"{spec.label}: {distinct_values(g)} distinct values")
        ax.set_xlabel("input x")
        ax.set_ylabel("df/dx (output per unit input)")
    fig.suptitle(f"Biases decide whether a plain net without BN can have kinks ({grid})")
    return fig


def distinct_values(g: np.ndarray, decimals: int = 5) -> int:
    """How many different values ``g`` takes, after scaling to max |g| = 1 and rounding to ``decimals``."""
    return len(np.unique(np.round(g / np.abs(g).max(), decimals)))


def plot_switching(switching: Sequence[tuple[NetSpec, np.ndarray]], n_nets: int, grid: str) -> plt.Axes:
    """Percentage of units per hidden layer that switch (neither always on nor always off), one line per net."""
    _, ax = plt.subplots(figsize=(7, 3.6))
    for spec, fraction in switching:
        layers = np.arange(1, len(fraction) + 1)
        ax.plot(layers, 100 * np.asarray(fraction), marker="o", ms=3, label=spec.label, **net_style(spec))
    ax.set_xlabel("hidden layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("units that switch on [-2, 2] (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    ax.set_title(f"Units that are neither always on nor always off\n(mean of {n_nets} nets; {grid})")
    return ax
