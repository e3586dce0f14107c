"""The scalar-to-scalar nets of Balduzzi et al. (2017): structure, initialization, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_lib.models import NetSpec, ResidualModule, ScalarNet


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_plain_net_has_depth_hidden_relu_layers(batch_norm):
    net = NetSpec(5, batch_norm=batch_norm).build(7)
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.modules()) == (5 if batch_norm else 0)
    shapes = [tuple(m.weight.shape) for m in _linears(net)]
    assert shapes == [(7, 1)] + [(7, 7)] * 4 + [(1, 7)]
    assert net(torch.linspace(-2, 2, 11)).shape == (11,)
    assert net.spec.family == "plain"


@pytest.mark.parametrize(("block_layers", "modules"), [(1, 6), (2, 3)])
def test_residual_net_depth_counts_branch_weight_layers(block_layers, modules):
    net = NetSpec(6, residual=True, batch_norm=True, block_layers=block_layers).build(5)
    assert sum(isinstance(m, ResidualModule) for m in net.modules()) == modules
    # input layer + 6 branch layers + output layer
    assert len(_linears(net)) == 8
    assert net(torch.linspace(-2, 2, 9).reshape(-1, 1)).shape == (9,)
    assert net.spec.family == "residual"
    assert net.spec.label == "6-layer ResNet + BN" + (", 2-layer blocks" if block_layers == 2 else "")


def test_residual_module_with_a_zero_branch_is_the_identity():
    module = ResidualModule(4, layers=2, batch_norm=True)
    nn.init.zeros_(module.branch[-1].weight)
    nn.init.zeros_(module.branch[-1].bias)
    x = torch.randn(10, 4)
    torch.testing.assert_close(module(x), x)


def test_he_initialization_and_default_biases():
    net = NetSpec(3).build(400, seed=0)
    first, hidden, head = _linears(net)[0], _linears(net)[1], _linears(net)[-1]
    # He et al.: weight variance 2 / fan_in; 160,000 draws give the std to well under 1%.
    assert hidden.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert first.weight.std().item() == pytest.approx(math.sqrt(2 / 1), rel=0.1)
    assert head.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.15)
    # PyTorch's default bias: uniform on +-1/sqrt(fan_in)
    assert first.bias.abs().max() <= 1.0 and first.bias.abs().max() > 0.9
    assert hidden.bias.abs().max() <= 1 / math.sqrt(400)


def test_zero_bias_net_is_linear_on_each_side_of_zero():
    net = NetSpec(8, zero_bias=True).build(50, seed=3)
    assert all(torch.all(m.bias == 0) for m in _linears(net))
    x = torch.tensor([0.3, 0.7, 1.9, -0.3, -0.7, -1.9], dtype=torch.float32)
    with torch.no_grad():
        y, y2 = net(x), net(2 * x)
    torch.testing.assert_close(y2, 2 * y, rtol=1e-4, atol=1e-6)  # positively homogeneous: f(2x) = 2 f(x)


def test_seed_gives_the_same_net_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = NetSpec(4, residual=True, batch_norm=True).build(6, seed=5)
    after = torch.rand(1)
    b = NetSpec(4, residual=True, batch_norm=True).build(6, seed=5)
    torch.testing.assert_close(after, expected)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth must be a positive"),
        ({"depth": 2.5}, "depth must be a positive"),
        ({"depth": 3, "units": 0}, "units must be a positive"),
        ({"depth": 4, "block_layers": 3}, "block_layers must be 1 or 2"),
        ({"depth": 5, "residual": True, "block_layers": 2}, "multiple of block_layers"),
    ],
)
def test_bad_arguments_raise_one_line_value_errors(kwargs, message):
    units = kwargs.pop("units", 200)
    with pytest.raises(ValueError, match=message) as info:
        ScalarNet(NetSpec(**kwargs), units)
    assert "\n" not in str(info.value)
