"""The figures chapters 2-5 used to draw by hand, now in plots/: each draws what it is given, labelled.

Each function takes plain arrays (or run histories) and returns its figure or axes; these tests draw them on
synthetic inputs and check what a reader would see: titles, axis labels, one line or bar per series, and the
numbers they were given (not constants of the chapter they came from).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from resnet_lib.models.scalar import NetSpec
from resnet_lib.plots import curves, degradation, residual_networks, shattered_gradients, vanishing_gradients
from resnet_lib.plots.residual_family import plot_errors_by_depth


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax) -> bool:
    return bool(ax.get_title() and ax.get_xlabel() and ax.get_ylabel())


def _epochs(errors: list[float], steps_per_epoch: int = 10) -> list[dict]:
    return [
        {"epoch": i + 1, "step": (i + 1) * steps_per_epoch, "train_error": e, "test_error": e + 0.05}
        for i, e in enumerate(errors)
    ]


def test_activations_draw_each_function_and_its_slope_with_the_given_flat_band():
    x = np.linspace(-6, 6, 101)
    s = 1 / (1 + np.exp(-x))
    fig = vanishing_gradients.plot_activations(
        x, {"sigmoid": (s, s * (1 - s)), "tanh": (np.tanh(x), 1 - np.tanh(x) ** 2)}, 3.0
    )
    left, right = fig.axes
    assert len(left.lines) == 2 and all(ax.get_xlabel() and ax.get_ylabel() for ax in (left, right))
    assert "3.00" in right.get_title() and "0.25" in right.texts[0].get_text()
    spans = [p.get_x() for p in right.patches]
    assert min(spans) == pytest.approx(-6) and 3.0 in [pytest.approx(v) for v in spans]


def test_longer_plain_draws_three_runs_against_steps():
    ax = degradation.plot_longer_plain(_epochs([0.8, 0.5]), _epochs([0.9, 0.7]), _epochs([0.9, 0.6, 0.4, 0.3]), 2,
                                       "Plain-56 given 2 times the steps", "stand-in")  # fmt: skip
    assert _labelled(ax) and "stand-in" in ax.get_title()
    assert [line.get_label() for line in ax.lines] == ["plain-20, 1x steps", "plain-56, 1x steps", "plain-56, 2x steps"]
    assert list(ax.lines[2].get_xdata()) == [10, 20, 30, 40] and list(ax.lines[2].get_ydata()) == [90, 60, 40, 30]


def test_built_vs_trained_draws_a_training_and_a_test_bar_per_net_with_its_value():
    names = ["trained plain-20", "built plain-110", "plain-110 from scratch"]
    errors = {(n, s): 10.0 * i + (5 if s == "test" else 0) for i, n in enumerate(names) for s in ("train", "test")}
    ax = degradation.plot_built_vs_trained(errors, names, "stand-in")
    assert len(ax.patches) == 6 and "110-layer" in ax.get_title()
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == sorted(errors.values())
    assert {t.get_text() for t in ax.texts} == {f"{v:.1f}" for v in errors.values()}


def test_bias_kinks_count_the_distinct_values_of_each_gradient():
    x = np.linspace(-2, 2, 64)
    step = np.where(x > 0, 1.0, -0.5)
    fig = shattered_gradients.plot_bias_kinks(
        x, [(NetSpec(24, zero_bias=True), step), (NetSpec(24), np.sin(7 * x))], "grid"
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].endswith(": 2 distinct values") and titles[1].endswith(": 64 distinct values")
    assert shattered_gradients.distinct_values(step) == 2


def test_switching_takes_its_layer_count_from_the_data():
    fractions = [(NetSpec(10), np.linspace(1, 0.1, 10)), (NetSpec(10, batch_norm=True), np.ones(10))]
    ax = shattered_gradients.plot_switching(fractions, n_nets=3, grid="grid")
    assert _labelled(ax) and "mean of 3 nets" in ax.get_title()
    assert [len(line.get_xdata()) for line in ax.lines] == [10, 10] and max(ax.lines[1].get_ydata()) == 100


def test_plain_vs_residual_puts_each_family_in_its_panel():
    curves = {f: {d: [_epochs([0.9, 0.5])] * 2 for d in (20, 56)} for f in ("plain", "residual")}
    fig = residual_networks.plot_plain_vs_residual(curves, "Plain vs residual\nstand-in")
    left, right = fig.axes[:2]
    assert "plain" in left.get_title() and "residual" in right.get_title()
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert "plain-20" in labels and "plain-56" in labels


def test_layer_gradients_name_the_batch_size_and_depth_they_are_given():
    norms = {
        (s, f): np.logspace(-3, 0, 18) for s in ("at initialization", "after training") for f in ("plain", "residual")
    }
    fig = residual_networks.plot_layer_gradients(norms, 64, "stand-in", depth=20)
    assert "64 training images" in fig.get_suptitle() and "stand-in" in fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes[:2]] == ["at initialization", "after training"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["plain-20", "ResNet-20"]


def test_response_std_draws_each_net_in_order_and_sorted():
    stds = {(f, d): np.random.default_rng(d).random(d - 2) for f in ("plain", "residual") for d in (20, 56)}
    fig = residual_networks.plot_response_std(stds, "stand-in")
    top, bottom = fig.axes
    assert len(top.lines) == 4 and len(bottom.lines) == 4
    assert list(bottom.lines[0].get_ydata()) == sorted(stds["plain", 20], reverse=True)


def test_line_gradients_show_a_quarter_of_the_line_and_one_bar_per_net_and_state():
    line = {f: np.sin(np.linspace(0, 20, 200)) for f in ("plain", "residual")}
    lag1 = {
        (s, f, d): 0.5 for s in ("at initialization", "after training") for f in ("plain", "residual") for d in (20, 56)
    }
    fig = residual_networks.plot_line_gradients(line, lag1, 56, 8, "stand-in")
    left, right = fig.axes[:2]
    assert len(left.lines[0].get_xdata()) == 50 and max(abs(left.lines[0].get_ydata())) == pytest.approx(1)
    assert len(right.patches) == 8 and "8 image pairs" in right.get_title()
    assert [line.get_label() for line in left.lines] == ["plain-56", "ResNet-56"]


def test_depth_curves_shade_each_depth_and_add_the_line_style_legend_where_asked():
    _, ax = plt.subplots()
    curves.plot_depth_curves(ax, "plain", {20: [_epochs([0.9, 0.5])], 56: [_epochs([0.9, 0.7])]}, ylim=40)
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == ["plain-20", "plain-56"]
    assert ax.lines[0].get_color() != ax.lines[2].get_color() and ax.get_ylim() == (0, 40)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training error (dashed)", "test error (solid)"]
    _, ax = plt.subplots()
    curves.plot_depth_curves(ax, "residual", {20: [_epochs([0.5])]}, line_styles=None)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ResNet-20"]


def test_errors_by_depth_draw_a_bar_per_kind_and_depth_at_its_mean():
    errors = {56: {"original": np.array([0.7, 0.8]), "preact": np.array([0.6, 0.6])},
              110: {"original": np.array([0.8, 0.9]), "preact": np.array([0.5, 0.7])}}  # fmt: skip
    diverged = {d: {k: np.array([False, d == 110]) for k in e} for d, e in errors.items()}
    labels = {"original": "2016", "preact": "pre-act"}
    fig = plot_errors_by_depth(errors, labels, 0.9, diverged, "stand-in")
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == sorted([75.0, 60.0, 85.0, 60.0])
    assert "56 and 110 layers" in ax.get_title() and "stand-in" in ax.get_title()
    assert ax.get_ylabel() == "final training error (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2016", "pre-act"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["110 layers", "56 layers", "chance (90%)"]
    plt.close(fig)


def test_converged_lesion_figures_mark_the_downsampling_blocks_and_draw_each_k():
    from resnet_lib.plots import ensembles_of_paths as paths

    errors = {56: np.full(27, 0.08), 20: np.full(9, 0.2)}
    errors[56][[9, 18]] = [0.23, 0.14]
    intervals = {d: np.array([e - 0.02, e + 0.02]) for d, e in errors.items()}
    down = {56: (9, 18), 20: (3, 6)}
    fig = paths.plot_converged_single_lesions(
        errors, intervals, {56: 0.067, 20: 0.083}, down, 0.9, "CIFAR-10", budget=(np.full(27, 0.6), 0.55, 2)
    )
    left, right = fig.axes[:2]
    assert _labelled(left) and _labelled(right) and "CIFAR-10" in fig._suptitle.get_text()
    squares = [line for line in left.get_lines() if line.get_marker() == "s"]
    assert list(squares[0].get_xdata()) == [10, 19] and list(squares[0].get_ydata()) == pytest.approx([23, 14])
    assert any("budget" in t.get_text() for t in left.get_legend().get_texts())
    assert not any("budget" in t.get_text() for t in right.get_legend().get_texts())
    with pytest.raises(ValueError, match="same depths"):
        paths.plot_converged_single_lesions(errors, intervals, {56: 0.1}, down, 0.9, "CIFAR-10")
    ks = {56: np.array([0, 1, 2, 4]), 20: np.array([0, 1, 2, 4])}
    mean = {56: np.array([0.07, 0.09, 0.12, 0.2]), 20: np.array([0.08, 0.25, 0.5, 0.8])}
    fig = paths.plot_converged_deletions(ks, mean, {d: m / 10 for d, m in mean.items()}, 0.9, "CIFAR-10")
    ax = fig.axes[0]
    assert _labelled(ax) and "CIFAR-10" in ax.get_title()
    curves = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(tuple(np.round(c.get_ydata(), 6)) for c in curves) == sorted(
        tuple(np.round(100 * m, 6)) for m in mean.values()
    )


def test_converged_slices_draw_the_converged_net_beside_the_budget_nets_on_the_same_axes():
    from resnet_lib.measure.landscape import Slice1D, Surface2D
    from resnet_lib.plots import loss_landscapes

    steps = np.linspace(-1, 1, 5)
    budget = {("plain", 56): Slice1D(steps, 2 + steps**2, np.full(5, 0.6)),
              ("residual", 56): Slice1D(steps, 1 + steps**2, np.full(5, 0.4))}  # fmt: skip
    converged = Slice1D(steps, np.array([5.0, 0.5, 0.001, 0.4, 4.0]), np.array([0.8, 0.1, 0.0, 0.1, 0.7]))
    fig = loss_landscapes.plot_converged_slices(converged, "ResNet-56 (published)", budget, "CIFAR-10 subset")
    left, right = fig.axes
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in (left, right)) and "CIFAR-10" in fig._suptitle.get_text()
    labels = [line.get_label() for line in left.lines if not line.get_label().startswith("_")]
    assert labels == ["plain-56 (budget)", "ResNet-56 (budget)", "ResNet-56 (published)"]
    assert list(right.lines[2].get_ydata()) == pytest.approx([80, 10, 0, 10, 70])
    assert left.lines[2].get_color() != left.lines[0].get_color() != left.lines[1].get_color()
    grid = np.linspace(-1, 1, 3)
    surface = Surface2D(grid, grid, np.add.outer(grid**2, grid**2) + 0.01, np.zeros((3, 3)))
    fig = loss_landscapes.plot_labelled_contours({"ResNet-56 (published)": surface, "plain-56": surface}, "T\nX")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ResNet-56 (published)", "plain-56"]
    assert fig._suptitle.get_text() == "T\nX" and fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
