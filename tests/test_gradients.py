"""Per-layer gradient norms, checked against a hand-written backward pass and torch.autograd."""

from __future__ import annotations

import copy

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lib.chapters.vanishing_gradients import (
    GradientFlow,
    explosion_by_depth,
    gradient_flow_study,
    measure_gradient_flow,
)
from resnet_lib.data import ImageDataset, load_dataset
from resnet_lib.measure.gradients import activation_curve, gradient_norms_per_layer, weight_layers
from resnet_lib.models import DeepMLP, deep_net
from resnet_lib.plots.style import SERIES_COLORS, new_figure
from resnet_lib.plots.vanishing_gradients import (
    flow_color,
    gradient_flow_explorer,
    plot_explosion_by_depth,
    plot_flow_grid,
    plot_gradient_flow,
    plot_losses,
)
from resnet_lib.profiles import DataSpec, GradientFlowExperiment
from resnet_lib.training import History

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def _manual_norms(net: DeepMLP, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The chain rule written out by hand for a sigmoid MLP (no autograd): micrograd style."""
    layers = [m for _, m in weight_layers(net)]
    acts, zs = [x.flatten(1)], []
    for layer in layers[:-1]:
        zs.append(acts[-1] @ layer.weight.T + layer.bias)
        acts.append(torch.sigmoid(zs[-1]))
    logits = acts[-1] @ layers[-1].weight.T + layers[-1].bias
    delta = (torch.softmax(logits, 1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)) / len(y)  # d mean-CE / d logits
    norms = []
    for i in range(len(layers) - 1, -1, -1):
        norms.append((delta.T @ acts[i]).norm().item())  # d loss / d W_i = delta^T a_{i-1}
        if i:
            s = torch.sigmoid(zs[i - 1])
            delta = (delta @ layers[i].weight) * s * (1 - s)  # back through W_i, then sigmoid'(z)
    return norms[::-1]


def _tiny_data(n: int = 64, size: int = 8, seed: int = 0) -> ImageDataset:
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, size, size, generator=gen), torch.arange(n) % 10
    return ImageDataset("tiny", "tiny random test images", tuple("0123456789"), x, y, x[:32], y[:32])


def _tiny_experiment(**kw) -> GradientFlowExperiment:
    args = {"depth": 5, "mlp_width": 8, "conv_width": 4, "batch_size": 16, "train_steps": 3, "seeds": (0, 1)}
    return GradientFlowExperiment(**{**args, **kw})


def test_norms_match_a_hand_written_backward_pass():
    torch.manual_seed(0)
    net = DeepMLP(in_features=12, depth=4, width=5, activation="sigmoid", num_classes=3).double()
    x, y = torch.randn(7, 3, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    ours = gradient_norms_per_layer(net, x, y)
    assert ours.shape == (4,) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, _manual_norms(net, x, y), rtol=1e-10)


@pytest.mark.parametrize(("arch", "activation", "batch_norm"), [("mlp", "tanh", False), ("conv", "relu", True)])
def test_norms_match_autograd_backward(arch, activation, batch_norm):
    torch.manual_seed(1)
    net = deep_net(arch, depth=5, width=6, activation=activation, batch_norm=batch_norm, image_size=4).double()
    x, y = torch.randn(9, 3, 4, 4, dtype=torch.float64), torch.arange(9) % 10
    ours = gradient_norms_per_layer(net, x, y)
    reference = copy.deepcopy(net)
    F.cross_entropy(reference(x), y).backward()
    expected = [m.weight.grad.norm().item() for _, m in weight_layers(reference)]
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_measuring_leaves_the_model_as_it_was():
    torch.manual_seed(2)
    net = deep_net("conv", depth=4, width=4, activation="relu", batch_norm=True, image_size=4)
    net.eval()
    before = copy.deepcopy(net.state_dict())
    gradient_norms_per_layer(net, torch.randn(8, 3, 4, 4), torch.arange(8))
    assert not net.training
    assert all(p.grad is None for p in net.parameters())
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed"  # BatchNorm statistics included


def test_train_mode_uses_batch_statistics():
    torch.manual_seed(2)
    net = deep_net("mlp", depth=3, width=4, activation="relu", batch_norm=True, image_size=2)
    x, y = 5 + 3 * torch.randn(16, 3, 2, 2), torch.arange(16) % 10
    assert not np.allclose(gradient_norms_per_layer(net, x, y), gradient_norms_per_layer(net, x, y, train_mode=False))


def test_a_net_without_weight_layers_is_refused():
    with pytest.raises(ValueError, match="net has no Linear or Conv layers") as err:
        gradient_norms_per_layer(nn.Sequential(nn.Flatten()), torch.randn(2, 3), torch.tensor([0, 1]))
    assert "\n" not in str(err.value)


def test_non_finite_gradients_come_back_as_values():
    net = deep_net("mlp", depth=3, width=4, activation="relu", image_size=2)
    x = torch.full((4, 3, 2, 2), float("inf"))
    assert not np.isfinite(gradient_norms_per_layer(net, x, torch.arange(4))).any()


def test_activation_curves_and_the_famous_quarter():
    x = torch.linspace(-6, 6, 1201)
    s, ds = activation_curve("sigmoid", x)
    torch.testing.assert_close(ds, s * (1 - s))
    assert ds.max().item() == pytest.approx(0.25) and abs(x[ds.argmax()].item()) < 1e-6
    t, dt = activation_curve("tanh", x)
    torch.testing.assert_close(dt, 1 - t**2)
    assert dt.max().item() == pytest.approx(1.0)
    _, dr = activation_curve("relu", torch.tensor([-1.0, 2.0]))
    assert dr.tolist() == [0.0, 1.0]


def test_measure_gradient_flow_shapes_training_and_determinism():
    data, experiment = _tiny_data(), _tiny_experiment()
    flow = measure_gradient_flow("mlp", "sigmoid", False, data, experiment, progress=False)
    assert flow.at_init.shape == flow.trained.shape == (2, 5)
    assert [len(losses) for losses in flow.step_losses] == [3, 3] and flow.diverged == [False, False]
    assert not np.allclose(flow.at_init, flow.trained)  # training moved the weights
    again = measure_gradient_flow("mlp", "sigmoid", False, data, experiment, progress=False)
    np.testing.assert_array_equal(flow.at_init, again.at_init)
    np.testing.assert_array_equal(flow.trained, again.trained)
    init_only = measure_gradient_flow("conv", "relu", True, data, experiment, depth=7, steps=0, progress=False)
    assert init_only.trained is None and init_only.at_init.shape == (2, 7) and init_only.label == "relu+bn"
    with pytest.raises(ValueError, match="measured at initialization only"):
        init_only.norms("trained")
    with pytest.raises(ValueError, match="unknown moment 'later'; choose one of: init, trained"):
        flow.norms("later")


def test_a_raw_pixel_relu_net_diverges_and_is_reported():
    data = _tiny_data()
    data.train_x = 255 * torch.rand(data.train_x.shape, generator=torch.Generator().manual_seed(0))  # raw pixels
    experiment = _tiny_experiment(depth=10, mlp_width=32, train_steps=6)
    flow = measure_gradient_flow("mlp", "relu", False, data, experiment, progress=False)
    assert flow.diverged == [True, True]
    # Stopped at a non-finite loss, or at one 100x its first (the engine's divergence_factor).
    assert all(not np.isfinite(losses[-1]) or losses[-1] > 100 * losses[0] for losses in flow.step_losses)
    assert all(h.diverged_reason for h in flow.histories)
    assert all(h.diverged_at_step == len(h.step_losses) - 1 for h in flow.histories)
    assert flow.at_init.min() > 10  # raw pixels: large gradients from the first step
    with_bn = measure_gradient_flow("mlp", "relu", True, data, experiment, progress=False)
    assert with_bn.diverged == [False, False] and np.isfinite(with_bn.trained).all()


def test_ratios_and_per_layer_factor():
    norms = np.array([[1e-6, 1e-4, 1e-2, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, 1.0]])
    flow = GradientFlow("mlp", "sigmoid", False, 1.0, 5, 8, (0, 1), 0, norms)
    np.testing.assert_allclose(flow.first_to_last(), [1e-6, 2.0])
    np.testing.assert_allclose(flow.per_layer_factor(), [0.01, 1.0])  # layers 2..4: 1e-4 -> 1 in 2 steps
    assert flow_color(flow) == SERIES_COLORS["sigmoid"]


def test_study_covers_every_setting():
    flows = gradient_flow_study(_tiny_data(), _tiny_experiment(train_steps=1, seeds=(0,)), progress=False)
    assert set(flows) == {(a, s) for a in ("mlp", "conv") for s in ("sigmoid", "tanh", "relu", "relu+bn")}


def test_plots_are_log_scaled_and_labelled():
    data, experiment = _tiny_data(), _tiny_experiment(train_steps=0)
    flows = [measure_gradient_flow("mlp", a, False, data, experiment, progress=False) for a in ("sigmoid", "relu")]
    fig, ax = new_figure()
    plot_gradient_flow(ax, flows, title="t")
    assert ax.get_yscale() == "log" and "layer" in ax.get_xlabel() and len(ax.get_lines()) == 2
    fig, ax = new_figure()
    history = History(step_losses=[2.3, 50.0, float("nan")], diverged=True, diverged_at_step=2)
    plot_losses(ax, history, "red", "raw pixels")
    assert any("step 2" in t.get_text() for t in ax.texts)
    fig, axes = plot_flow_grid({(1.0, False): flows, (1.0, True): flows, (2.0, False): flows}, data.label)
    assert axes.shape == (2, 2) and data.label in fig._suptitle.get_text()


def test_the_explorer_redraws_when_a_control_changes():
    explorer = gradient_flow_explorer(_tiny_data(), _tiny_experiment(), depth=4)
    assert explorer.flow.at_init.shape == (2, 4)
    explorer.controls["depth"].value = 6
    assert explorer.flow.at_init.shape == (2, 6)
    explorer.controls["batch_norm"].value = True
    assert explorer.flow.label == "sigmoid+bn"
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()
    with pytest.raises(ValueError, match="unknown architecture 'rnn'"):
        gradient_flow_explorer(_tiny_data(), _tiny_experiment(), arch="rnn")


def test_explosion_by_depth_separates_a_constant_lift_from_compounded_growth():
    """Raw pixels lift layer 1 by a depth-independent factor; init x2 compounds ~2 per layer; tanh x2 tilts."""
    spec = DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8)
    cfg = GradientFlowExperiment(data=spec, mlp_width=32, batch_size=32, seeds=(0, 1), compound_depths=(4, 8, 16))
    data, raw = load_dataset(spec, verbose=False), load_dataset(spec, normalize=False, verbose=False)
    study = explosion_by_depth(data, raw, cfg, progress=False)
    assert study.raw_lift.shape == (3, 2) and study.tanh_factor.shape == (3, 2)
    medians = np.median(study.raw_lift, axis=1)
    assert (study.raw_lift > 1).all() and medians.max() - medians.min() < 0.6
    slope = np.polyfit(study.depths, np.median(study.doubled_lift, axis=1), 1)[0]
    assert abs(slope - np.log10(2)) < 0.08, slope
    assert (study.tanh_tilt[-1] > study.tanh_tilt[0]).all()
    fig, axes = plot_explosion_by_depth(study, data.label)
    assert list(axes[0].get_xticks()) == [4, 8, 16]
    plt.close(fig)
