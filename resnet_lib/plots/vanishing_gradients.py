"""Chapter 2's figures and its gradient-flow explorer (a widget that re-runs the chapter's study)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resnet_lib.chapters.vanishing_gradients import ExplosionByDepth, GradientFlow, measure_gradient_flow
from resnet_lib.data import ImageDataset
from resnet_lib.models.deep import ACTIVATIONS, ARCHITECTURES
from resnet_lib.plots.style import SERIES_COLORS, new_figure, titled
from resnet_lib.plots.widgets import figure_png, static_caption, with_static_view
from resnet_lib.profiles import GradientFlowExperiment
from resnet_lib.training import History

#: One marker per setting, so that lines differ in shape as well as colour.
MARKERS: dict[str, str] = {"sigmoid": "o", "tanh": "s", "relu": "^", "relu+bn": "D"}


def flow_color(flow: GradientFlow) -> str:
    """The colour of one setting (activation, with or without BatchNorm) in chapter 2's figures."""
    return SERIES_COLORS.get(flow.label, SERIES_COLORS[flow.activation])


def plot_explosion_by_depth(study: ExplosionByDepth, dataset_label: str) -> tuple[Figure, np.ndarray]:
    """Left: how much larger layer 1's gradient is than in the He-initialized net, against depth.
    Right: layer 1's gradient over the last layer's, against depth. Median over seeds, band: range."""
    fig, axes = new_figure(1, 2, figsize=(11, 4.2))
    depths = np.array(study.depths)
    series = [
        (axes[0], study.raw_lift, "raw pixels (ReLU)", SERIES_COLORS["relu"], "o", "-"),
        (axes[0], study.doubled_lift, "init scale 2 (ReLU)", SERIES_COLORS["relu"], "s", "--"),
        (axes[1], study.raw_tilt, "raw pixels (ReLU)", SERIES_COLORS["relu"], "o", "-"),
        (axes[1], study.doubled_tilt, "init scale 2 (ReLU)", SERIES_COLORS["relu"], "s", "--"),
        (axes[1], study.tanh_tilt, "init scale 2 (tanh)", SERIES_COLORS["tanh"], "^", "-"),
    ]
    for ax, logs, label, color, marker, ls in series:
        values = 10.0**logs
        ax.plot(depths, np.median(values, axis=1), marker=marker, color=color, ls=ls, label=label)
        ax.fill_between(depths, values.min(axis=1), values.max(axis=1), color=color, alpha=0.15)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xticks(depths)
        ax.set_xlabel("depth (weight layers)")
        ax.axhline(1.0, color="grey", ls=":", lw=1)
        ax.legend(loc="upper left")
    axes[0].set_ylabel("layer 1's ‖∂loss/∂W‖ / He-init net's (log)")
    axes[0].set_title("Every layer larger: by a constant, or compounded")
    axes[1].set_ylabel("layer 1's ‖∂loss/∂W‖ / last layer's (log)")
    axes[1].set_title("Growth across layers: only tanh compounds it")
    fig.suptitle(
        f"Two kinds of exploding gradient, fully connected nets at initialization, {len(study.seeds)} seeds\n"
        f"{dataset_label}"
    )
    return fig, axes


def plot_gradient_flow(
    ax: Axes,
    flows: list[GradientFlow],
    when: str = "init",
    title: str | None = None,
    legend: bool = True,
    color_by_activation: bool = False,
    labels: list[str] | None = None,
    linestyles: list[str] | None = None,
) -> Axes:
    """Layer (input side = 1) against gradient norm on a log scale: the median over seeds as a
    line with markers, the range over seeds as a band. Non-finite values are left out.
    Colours follow ``SERIES_COLORS`` by label (``relu+bn`` has its own), or by activation only;
    ``labels`` and ``linestyles`` (one per flow) replace the default legend labels and solid lines."""
    for i, flow in enumerate(flows):
        color = SERIES_COLORS[flow.activation] if color_by_activation else flow_color(flow)
        norms = flow.norms(when)
        layers = np.arange(1, norms.shape[1] + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            finite = np.where(np.isfinite(norms) & (norms > 0), norms, np.nan)
        if np.isnan(finite).all():
            continue
        median = np.nanmedian(finite, axis=0)
        seeds = f", {len(flow.seeds)} seeds" if len(flow.seeds) > 1 else ""
        name = flow.activation if color_by_activation else flow.label
        name = labels[i] if labels is not None else f"{name}{seeds}"
        ls = linestyles[i] if linestyles is not None else "-"
        marker = MARKERS.get(flow.label if not color_by_activation else flow.activation, "o")
        ax.plot(layers, median, marker=marker, ms=3.5, color=color, ls=ls, label=name)
        if len(flow.seeds) > 1:
            ax.fill_between(layers, np.nanmin(finite, axis=0), np.nanmax(finite, axis=0), color=color, alpha=0.2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (1 = input side)")
    ax.set_ylabel("‖∂loss/∂W‖ (log scale)")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="best")
    return ax


def plot_losses(
    ax: Axes, history: History | list[float], color: str, label: str | None, annotate: bool = True, **line
) -> Axes:
    """Training loss per step on a log scale; a run that diverged ends with a cross at the
    step where its loss became non-finite (drawn at its last finite loss), annotated with that
    step unless ``annotate=False``. ``line`` goes to ``ax.plot``."""
    losses = history.step_losses if isinstance(history, History) else list(history)
    values = np.array(losses, dtype=float)
    finite = np.isfinite(values)
    steps = np.arange(len(values))
    line = {"marker": "o", "ms": 3, **line} if finite.sum() < 10 else line  # a short run shows its points
    ax.plot(steps[finite], values[finite], color=color, label=label, **line)
    if not finite.all():
        bad = int(np.argmin(finite))
        last = values[bad - 1] if bad else 1.0  # the first non-finite loss ends the finite ones
        ax.plot([bad], [last], marker="X", ms=10, color=color, ls="none")
    if not finite.all() and annotate:
        ax.annotate(
            f"loss = {values[bad]} at step {bad}",
            (bad, last),
            xytext=(12, -4),
            textcoords="offset points",
            color=color,
            fontsize=9,
        )
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy loss (log scale)")
    return ax


def plot_flow_grid(
    flows: dict[tuple[float, bool], list[GradientFlow]], dataset_label: str, when: str = "init"
) -> tuple[Figure, np.ndarray]:
    """A grid of :func:`plot_gradient_flow` panels, one per ``(init_scale, batch_norm)`` key:
    rows are initialization scales, columns BatchNorm off / on; all panels share one y-axis."""
    scales = sorted({scale for scale, _ in flows})
    norms = sorted({bn for _, bn in flows})
    fig, axes = new_figure(
        len(scales),
        len(norms),
        figsize=(3.6 * len(norms) + 0.6, 2.7 * len(scales)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for (scale, bn), panel in flows.items():
        row, col = scales.index(scale), norms.index(bn)
        ax = axes[row, col]
        plot_gradient_flow(ax, panel, when=when, legend=False, color_by_activation=True)
        ax.set_title(f"init scale {scale:g}, BatchNorm {'on' if bn else 'off'}", fontsize=9)
        if row < len(scales) - 1:
            ax.set_xlabel("")
        if col > 0:
            ax.set_ylabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=max(len(labels), 1))
    first = next(iter(flows.values()))[0]
    net = "fully connected" if first.arch == "mlp" else "convolutional"
    moment = "at initialization" if when == "init" else f"after {first.steps} steps"
    fig.suptitle(f"Per-layer gradient norms {moment}, {first.depth}-layer {net} nets\n{dataset_label}")
    return fig, axes


class GradientFlowExplorer:
    """ipywidgets controls (net, activation, depth, initialization scale, BatchNorm) that redraw
    the per-layer gradient norms at initialization. Display it in a notebook cell; it draws its
    initial state at once, so a statically rendered page shows that state."""

    def __init__(
        self,
        data: ImageDataset,
        experiment: GradientFlowExperiment,
        arch: str = "mlp",
        activation: str = "sigmoid",
        depth: int | None = None,
        init_scale: float = 1.0,
        batch_norm: bool = False,
        max_depth: int = 60,
    ) -> None:
        import ipywidgets as widgets

        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
        self.data, self.experiment = data, experiment
        style = {"description_width": "initial"}
        self.controls = {
            "arch": widgets.ToggleButtons(
                options=[("fully connected", "mlp"), ("convolutional", "conv")], value=arch, description="net"
            ),
            "activation": widgets.Dropdown(options=list(ACTIVATIONS), value=activation, description="activation"),
            "depth": widgets.IntSlider(
                value=experiment.depth if depth is None else depth,
                min=2,
                max=max_depth,
                description="depth (layers)",
                continuous_update=False,
                style=style,
            ),
            "init_scale": widgets.FloatLogSlider(
                value=init_scale,
                base=2,
                min=-2,
                max=2,
                step=0.25,
                description="init scale",
                continuous_update=False,
                style=style,
            ),
            "batch_norm": widgets.Checkbox(value=batch_norm, description="BatchNorm"),
        }
        self.output = widgets.Output()
        c = self.controls
        self.widget = widgets.VBox(
            [
                widgets.HBox([c["arch"], c["activation"]]),
                widgets.HBox([c["depth"], c["init_scale"], c["batch_norm"]]),
                self.output,
            ]
        )
        self.flow: GradientFlow | None = None
        self.first_png: bytes | None = None  # the first state, for pages without a kernel
        for control in self.controls.values():
            control.observe(lambda _change: self.redraw(), names="value")
        self.redraw()

    def settings(self) -> dict:
        """The controls' current values."""
        return {name: control.value for name, control in self.controls.items()}

    def redraw(self) -> GradientFlow:
        """Measure the nets the controls describe (one per seed of the experiment) and redraw."""
        from IPython.display import display

        s = self.settings()
        self.flow = measure_gradient_flow(
            s["arch"], s["activation"], s["batch_norm"], self.data, self.experiment,
            init_scale=s["init_scale"], depth=s["depth"], steps=0, progress=False,
        )  # fmt: skip
        fig, ax = new_figure(figsize=(7.0, 3.8))
        net = "fully connected" if s["arch"] == "mlp" else "convolutional"
        plot_gradient_flow(ax, [self.flow])
        titled(ax, f"{s['depth']}-layer {net} net at initialization, init scale {s['init_scale']:g}", self.data.label)
        if self.first_png is None:
            self.first_png = figure_png(fig)
            self.first_settings = (
                f"{net} net, {s['activation']}, {s['depth']} layers, init scale {s['init_scale']:g}"
                f"{', BatchNorm' if s['batch_norm'] else ''}"
            )
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)
        plt.close(fig)
        return self.flow

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        return with_static_view(bundle, self.first_png, static_caption(self.first_settings))


def gradient_flow_explorer(data: ImageDataset, experiment: GradientFlowExperiment, **initial) -> GradientFlowExplorer:
    """The chapter's interactive explorer (see :class:`GradientFlowExplorer`); ``initial`` sets its first state."""
    return GradientFlowExplorer(data, experiment, **initial)


def plot_activations(x: np.ndarray, curves: dict[str, tuple[np.ndarray, np.ndarray]], flat: float) -> Figure:
    """Each activation and its slope (``curves``: name -> (f(x), f'(x)) on ``x``); shaded where |x| > ``flat``."""
    fig, axes = new_figure(1, 2, figsize=(10, 3.6))
    for name, (y, dy) in curves.items():
        axes[0].plot(x, y, color=SERIES_COLORS[name], label=name)
        axes[1].plot(x, dy, color=SERIES_COLORS[name], label=f"slope of {name}")
    if "sigmoid" in curves:
        peak = float(np.max(curves["sigmoid"][1]))
        axes[1].axhline(peak, color="grey", ls=":", lw=1)
        axes[1].plot([0], [peak], marker="o", color=SERIES_COLORS["sigmoid"])
        axes[1].annotate(
            f"sigmoid's largest slope: {peak:.2f}", (0, peak), xytext=(0.6, 0.42), arrowprops={"arrowstyle": "->"}
        )
    lo, hi = float(np.min(x)), float(np.max(x))
    for ax in axes:
        ax.axvspan(lo, -flat, color="grey", alpha=0.12, lw=0)
        ax.axvspan(flat, hi, color="grey", alpha=0.12, lw=0)
        ax.set_xlabel("input x (pre-activation)")
        ax.legend(loc="upper left")
    axes[0].set_ylabel("activation f(x)")
    axes[1].set_ylabel("slope f'(x)")
    axes[0].set_title("The functions")
    axes[1].set_title(f"Their derivatives (shaded: sigmoid's slope < 0.1, |x| > {flat:.2f})")
    fig.suptitle(f"{' and '.join(curves).capitalize()} (no data: the functions themselves)")
    return fig
