"""Chapter 2's deep plain nets: shapes, layer counts, BatchNorm placement, initialization, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_lib.measure.gradients import weight_layers
from resnet_lib.models import ACTIVATIONS, DeepConvNet, DeepMLP, deep_net
from resnet_lib.models.deep import init_gain


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("image_size", [8, 16])
def test_output_shape_and_depth_counts_weight_layers(arch, image_size):
    net = deep_net(arch, depth=7, width=6, activation="tanh", image_size=image_size)
    assert net(torch.randn(5, 3, image_size, image_size)).shape == (5, 10)
    layers = weight_layers(net)
    assert len(layers) == 7 and layers[-1][1] is net.classifier  # input side first, classifier last
    first = layers[0][1]
    assert (first.in_features if arch == "mlp" else first.in_channels) == (3 * image_size**2 if arch == "mlp" else 3)


@pytest.mark.parametrize("cls", [DeepMLP, DeepConvNet])
def test_batchnorm_follows_every_hidden_layer_and_replaces_its_bias(cls):
    args = (3 * 8 * 8,) if cls is DeepMLP else (3,)
    with_bn, without = cls(*args, depth=5, width=4, batch_norm=True), cls(*args, depth=5, width=4)
    norms = [m for m in with_bn.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert len(norms) == 4 and not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in without.modules())
    hidden_bn = [m for _, m in weight_layers(with_bn)][:-1]
    hidden_plain = [m for _, m in weight_layers(without)][:-1]
    assert all(m.bias is None for m in hidden_bn) and all(m.bias is not None for m in hidden_plain)
    order = [type(m).__name__ for m in with_bn.features][:3]
    assert order[1].startswith("BatchNorm") and order[2] == "ReLU"  # layer -> BN -> activation


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("init_scale", [0.5, 1.0, 2.0])
def test_weights_have_the_documented_standard_deviation(activation, init_scale):
    torch.manual_seed(0)
    net = DeepMLP(400, depth=3, width=400, activation=activation, init_scale=init_scale)
    layers = [m for _, m in weight_layers(net)]
    hidden, classifier = layers[1], layers[-1]
    expected = init_scale * init_gain(activation) / math.sqrt(400)
    assert hidden.weight.std().item() == pytest.approx(expected, rel=0.02)  # 160k samples: ~0.2% noise
    assert classifier.weight.std().item() == pytest.approx(init_scale / math.sqrt(400), rel=0.05)
    assert torch.count_nonzero(hidden.bias) == 0


def test_gains_are_pytorchs():
    assert init_gain("sigmoid") == 1.0
    assert init_gain("tanh") == pytest.approx(5 / 3)
    assert init_gain("relu") == pytest.approx(math.sqrt(2))


def test_conv_fan_in_counts_the_kernel():
    torch.manual_seed(0)
    net = DeepConvNet(depth=3, width=64, activation="relu")
    conv = [m for _, m in weight_layers(net)][1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)


def test_same_seed_same_net():
    torch.manual_seed(3)
    a = deep_net("conv", depth=4, width=4, activation="sigmoid", batch_norm=True, image_size=8)
    torch.manual_seed(3)
    b = deep_net("conv", depth=4, width=4, activation="sigmoid", batch_norm=True, image_size=8)
    for (_, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q)


def test_he_init_keeps_a_deep_relu_net_alive_and_a_large_one_blows_up():
    torch.manual_seed(0)
    x = torch.randn(256, 3, 8, 8)
    well = deep_net("mlp", depth=30, width=256, activation="relu", image_size=8)
    big = deep_net("mlp", depth=30, width=256, activation="relu", init_scale=2.0, image_size=8)
    with torch.no_grad():
        assert 0.1 < well(x).std().item() < 10
        assert big(x).std().item() > 1e6  # 2^29 times the well-scaled output, give or take


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "rnn"}, "unknown architecture 'rnn'; choose one of: mlp, conv"),
        ({"activation": "gelu"}, "unknown activation 'gelu'; choose one of: sigmoid, tanh, relu"),
        ({"depth": 1}, "depth counts weight layers including the classifier and must be an int >= 2, got 1"),
        ({"depth": 3.0}, "must be an int >= 2, got 3.0"),
        ({"width": 0}, "width must be an int >= 1, got 0"),
        ({"init_scale": 0.0}, "init_scale must be a finite number > 0, got 0.0"),
        ({"init_scale": float("nan")}, "init_scale must be a finite number > 0, got nan"),
    ],
)
def test_bad_arguments_get_one_line_errors(kwargs, message):
    args = {"arch": "mlp", "depth": 4, "width": 4, "image_size": 8, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        deep_net(**args)
    assert "\n" not in str(err.value)
