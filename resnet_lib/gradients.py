"""Chapter 2: how large is the gradient at each layer of a deep net?

:func:`gradient_norms_per_layer` measures the norm of the loss gradient with respect to
every weight layer's weight (input side first), without touching the model's ``.grad``
fields or BatchNorm statistics. :func:`measure_gradient_flow` does that for a family of
deep nets over several seeds, at initialization and after a few training steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset
from resnet_lib.models.deep import ACTIVATIONS, ARCHITECTURES, deep_net, make_activation
from resnet_lib.plotting import SERIES_COLORS, new_figure, titled
from resnet_lib.profiles import GradientFlowExperiment
from resnet_lib.threads import single_thread
from resnet_lib.training import History, fit
from resnet_lib.widgets import figure_png, static_caption, with_static_view


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Linear and Conv layers of ``net`` in registration order (for a chain: input side first)."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]


def gradient_norms_per_layer(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    train_mode: bool = True,
) -> np.ndarray:
    """Euclidean (Frobenius) norm of d loss / d weight for every weight layer of ``net``.

    Entry ``i`` belongs to the ``i``-th layer of :func:`weight_layers` (layer 1 is the input
    side). The forward pass runs in training mode (BatchNorm uses batch statistics, as in
    training) unless ``train_mode=False``; the model's mode, buffers and ``.grad`` fields
    are left as they were. Non-finite gradients come back as ``inf``/``nan``, not errors.
    """
    layers = weight_layers(net)
    if not layers:
        raise ValueError("net has no Linear or Conv layers whose gradient could be measured")
    device = layers[0][1].weight.device
    x, y = x.to(device), y.to(device)
    buffers = [(b, b.detach().clone()) for b in net.buffers()]
    was_training = net.training
    net.train(train_mode)
    try:
        with torch.enable_grad():
            loss = loss_fn(net(x), y)
            grads = torch.autograd.grad(loss, [m.weight for _, m in layers])
    finally:
        net.train(was_training)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    return np.array([g.detach().double().norm().item() for g in grads])


# --------------------------------------------------------------------------- activations


def activation_curve(activation: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """``activation`` (``sigmoid``, ``tanh`` or ``relu``) at ``x`` and its derivative, by autograd."""
    module = make_activation(activation)
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = module(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy


# --------------------------------------------------------------------------- gradient flow


@dataclass
class GradientFlow:
    """Per-layer gradient norms of one kind of deep net over several seeds.

    ``at_init`` and ``trained`` have one row per seed and one column per weight layer
    (layer 1 = input side); ``trained`` is measured after ``steps`` SGD steps (``None``
    when ``steps == 0``), and ``histories`` holds each seed's training :class:`History`.
    """

    arch: str
    activation: str
    batchnorm: bool
    init_scale: float
    depth: int
    width: int
    seeds: tuple[int, ...]
    steps: int
    at_init: np.ndarray
    trained: np.ndarray | None = None
    histories: list[History] = field(default_factory=list)

    @property
    def step_losses(self) -> list[list[float]]:
        """Each seed's training loss at every step (a diverged run ends with its non-finite loss)."""
        return [h.step_losses for h in self.histories]

    @property
    def diverged(self) -> list[bool]:
        """Per seed: did the training loss become NaN or infinite?"""
        return [h.diverged for h in self.histories]

    @property
    def label(self) -> str:
        """``sigmoid``, ``tanh``, ``relu`` with ``+bn`` appended for BatchNorm (a key of ``SERIES_COLORS``)."""
        return self.activation + ("+bn" if self.batchnorm else "")

    @property
    def color(self) -> str:
        return SERIES_COLORS.get(self.label, SERIES_COLORS[self.activation])

    def norms(self, when: str = "init") -> np.ndarray:
        """The (seeds, layers) array measured at ``"init"`` or after training (``"trained"``)."""
        if when == "init":
            return self.at_init
        if when == "trained":
            if self.trained is None:
                raise ValueError("this GradientFlow was measured at initialization only (steps=0)")
            return self.trained
        raise ValueError(f"unknown moment {when!r}; choose one of: init, trained")

    def first_to_last(self, when: str = "init") -> np.ndarray:
        """Per seed: gradient norm of layer 1 (input side) divided by that of the last layer."""
        norms = self.norms(when)
        return norms[:, 0] / norms[:, -1]

    def per_layer_factor(self, when: str = "init") -> np.ndarray:
        """Per seed: the geometric-mean factor by which the norm changes from one hidden layer
        to the one before it (input-ward), over hidden layers 2 .. depth-1. Below 1: vanishing."""
        norms = self.norms(when)
        if self.depth < 4:
            raise ValueError(f"per_layer_factor needs depth >= 4, got {self.depth}")
        return (norms[:, 1] / norms[:, -2]) ** (1.0 / (self.depth - 3))


def _probe_batch(data: ImageDataset, batch_size: int) -> tuple[Tensor, Tensor]:
    """The fixed batch every gradient is measured on: the first ``batch_size`` training images."""
    return data.train_x[:batch_size], data.train_y[:batch_size]


def measure_gradient_flow(
    arch: str,
    activation: str,
    batchnorm: bool,
    data: ImageDataset,
    experiment: GradientFlowExperiment,
    init_scale: float = 1.0,
    depth: int | None = None,
    steps: int | None = None,
    seeds: tuple[int, ...] | None = None,
    progress: bool = True,
) -> GradientFlow:
    """Build ``arch``-``activation`` nets (one per seed), measure per-layer gradient norms on a
    fixed batch at initialization, train each for ``steps`` SGD steps with :func:`resnet_lib.fit`
    (``experiment.recipe``), and measure again. ``depth``/``steps``/``seeds`` default to the
    experiment's; ``steps=0`` measures at initialization only."""
    depth = experiment.depth if depth is None else depth
    steps = experiment.train_steps if steps is None else steps
    seeds = tuple(experiment.seeds if seeds is None else seeds)
    width = experiment.width_for(arch)
    x, y = _probe_batch(data, experiment.batch_size)
    at_init, trained, histories = [], [], []
    label = activation + ("+BN" if batchnorm else "")
    for seed in tqdm(seeds, desc=f"{arch} {label}", disable=not progress, leave=False, unit="seed"):
        with single_thread():
            torch.manual_seed(seed)
            net = deep_net(arch, depth, width, activation, batchnorm, init_scale, image_size=data.image_size)
            at_init.append(gradient_norms_per_layer(net, x, y))
            if steps:
                history = fit(net, data, experiment.recipe(steps, len(data.train_y)), seed=seed, progress=False)
                trained.append(gradient_norms_per_layer(net, x, y))
                histories.append(history)
    return GradientFlow(
        arch=arch,
        activation=activation,
        batchnorm=batchnorm,
        init_scale=init_scale,
        depth=depth,
        width=width,
        seeds=seeds,
        steps=steps,
        at_init=np.array(at_init),
        trained=np.array(trained) if steps else None,
        histories=histories,
    )


#: One marker per setting, so that lines differ in shape as well as colour.
MARKERS: dict[str, str] = {"sigmoid": "o", "tanh": "s", "relu": "^", "relu+bn": "D"}

#: The four settings the chapter compares, as (activation, batchnorm).
SETTINGS: tuple[tuple[str, bool], ...] = (("sigmoid", False), ("tanh", False), ("relu", False), ("relu", True))


def gradient_flow_study(
    data: ImageDataset,
    experiment: GradientFlowExperiment,
    archs: tuple[str, ...] = ARCHITECTURES,
    settings: tuple[tuple[str, bool], ...] = SETTINGS,
    progress: bool = True,
) -> dict[tuple[str, str], GradientFlow]:
    """:func:`measure_gradient_flow` for every architecture and setting, keyed ``(arch, label)``."""
    jobs = [(arch, act, bn) for arch in archs for act, bn in settings]
    out = {}
    for arch, act, bn in tqdm(jobs, desc="gradient flow", disable=not progress, unit="net"):
        flow = measure_gradient_flow(arch, act, bn, data, experiment, progress=False)
        out[(arch, flow.label)] = flow
    return out


# --------------------------------------------------------------------------- two kinds of explosion


@dataclass
class ExplosionByDepth:
    """Chapter 2's two kinds of explosion, measured at initialization on nets of several depths.

    Arrays are ``(len(depths), len(seeds))``, log10 of a ratio of gradient norms:
    ``raw_lift`` and ``doubled_lift``: layer 1's gradient of the ReLU net on raw pixels, and with
    twice the He initialization, over that of the He-initialized ReLU net on normalized images
    (how much larger *every* layer's gradient is); ``*_tilt``: layer 1's gradient over the last
    layer's in the same net (growth *across* layers, towards the input). ``tanh_tilt`` is a tanh
    net at twice its recommended gain, whose gradient grows by a factor per layer on its way back.
    """

    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    raw_lift: np.ndarray
    doubled_lift: np.ndarray
    raw_tilt: np.ndarray
    doubled_tilt: np.ndarray
    tanh_tilt: np.ndarray
    tanh_factor: np.ndarray


def explosion_by_depth(
    data: ImageDataset, raw: ImageDataset, experiment: GradientFlowExperiment, progress: bool = True
) -> ExplosionByDepth:
    """Gradient norms at initialization of fully connected nets at ``experiment.compound_depths``:
    ReLU on normalized images (the reference), ReLU on ``raw`` pixels, ReLU at init scale 2, tanh at 2."""
    depths, seeds = tuple(experiment.compound_depths), tuple(experiment.seeds)
    rows: dict[str, list] = {k: [] for k in ("raw_lift", "doubled_lift", "raw_tilt", "doubled_tilt", "tanh_tilt")}
    factors = []
    for depth in tqdm(depths, desc="explosion by depth", disable=not progress, leave=False, unit="depth"):

        def flow(activation: str, images: ImageDataset, scale: float, depth: int = depth) -> GradientFlow:
            return measure_gradient_flow(
                "mlp", activation, False, images, experiment, init_scale=scale, depth=depth, steps=0, seeds=seeds,
                progress=False,
            )  # fmt: skip

        normal, on_raw, doubled, tanh = (
            flow("relu", data, 1.0),
            flow("relu", raw, 1.0),
            flow("relu", data, 2.0),
            flow("tanh", data, 2.0),
        )
        rows["raw_lift"].append(np.log10(on_raw.at_init[:, 0] / normal.at_init[:, 0]))
        rows["doubled_lift"].append(np.log10(doubled.at_init[:, 0] / normal.at_init[:, 0]))
        rows["raw_tilt"].append(np.log10(on_raw.first_to_last()))
        rows["doubled_tilt"].append(np.log10(doubled.first_to_last()))
        rows["tanh_tilt"].append(np.log10(tanh.first_to_last()))
        factors.append(tanh.per_layer_factor() if depth > 3 else np.full(len(seeds), np.nan))
    return ExplosionByDepth(depths, seeds, **{k: np.array(v) for k, v in rows.items()}, tanh_factor=np.array(factors))


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


# --------------------------------------------------------------------------- figures


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
        color = SERIES_COLORS[flow.activation] if color_by_activation else flow.color
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
    """A grid of :func:`plot_gradient_flow` panels, one per ``(init_scale, batchnorm)`` key:
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


# --------------------------------------------------------------------------- the explorer


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
        batchnorm: bool = False,
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
            "batchnorm": widgets.Checkbox(value=batchnorm, description="BatchNorm"),
        }
        self.output = widgets.Output()
        c = self.controls
        self.widget = widgets.VBox(
            [
                widgets.HBox([c["arch"], c["activation"]]),
                widgets.HBox([c["depth"], c["init_scale"], c["batchnorm"]]),
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
            s["arch"], s["activation"], s["batchnorm"], self.data, self.experiment,
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
                f"{', BatchNorm' if s['batchnorm'] else ''}"
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
