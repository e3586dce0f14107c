"""Chapter 2's deep plain nets: a fully connected stack and a convolutional stack.

Both are a chain of ``depth`` weight layers (the last is the 10-way classifier), each
hidden layer optionally followed by BatchNorm and then an activation (``sigmoid``,
``tanh`` or ``relu``). There are no shortcuts: gradients must pass through every layer.

Initialization: weights are drawn from N(0, (init_scale * gain)^2 / fan_in), where
``gain`` is PyTorch's recommended gain for the activation (1 for sigmoid, 5/3 for tanh,
sqrt(2) for ReLU: He et al. 2015), and biases are zero. ``init_scale=1`` is the
well-chosen initialization; larger values make the signal grow layer after layer,
smaller ones make it shrink.
"""

from __future__ import annotations

import itertools
import math

from torch import Tensor, nn

ACTIVATIONS = ("sigmoid", "tanh", "relu")
ARCHITECTURES = ("mlp", "conv")


def _check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return activation


def _check_sizes(depth: int, width: int, init_scale: float) -> None:
    if not isinstance(depth, int) or depth < 2:
        raise ValueError(f"depth counts weight layers including the classifier and must be an int >= 2, got {depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    if not (isinstance(init_scale, int | float) and math.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be a finite number > 0, got {init_scale!r}")


def make_activation(activation: str) -> nn.Module:
    """The activation module for ``sigmoid``, ``tanh`` or ``relu``."""
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[_check_activation(activation)]()


def init_gain(activation: str) -> float:
    """The recommended gain for ``activation`` (``torch.nn.init.calculate_gain``)."""
    return nn.init.calculate_gain(_check_activation(activation))


def _init_layer(layer: nn.Linear | nn.Conv2d, std: float) -> None:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _fan_in(layer: nn.Linear | nn.Conv2d) -> int:
    return layer.weight[0].numel()


class DeepNet(nn.Module):
    """A plain chain of weight layers: ``features`` (the hidden layers, each followed by
    BatchNorm or nothing, then the activation) and a linear ``classifier``."""

    arch: str = ""

    def __init__(self, depth: int, width: int, activation: str, batch_norm: bool, init_scale: float) -> None:
        super().__init__()
        _check_sizes(depth, width, init_scale)
        self.depth, self.width = depth, width
        self.activation, self.batch_norm, self.init_scale = _check_activation(activation), bool(batch_norm), init_scale

    def _finish(self, hidden: list[nn.Module], norms: list[nn.Module], classifier: nn.Linear) -> None:
        gain = init_gain(self.activation)
        body: list[nn.Module] = []
        for layer, norm in zip(hidden, norms, strict=True):
            _init_layer(layer, self.init_scale * gain / math.sqrt(_fan_in(layer)))
            body += [layer, norm, make_activation(self.activation)]
        _init_layer(classifier, self.init_scale / math.sqrt(_fan_in(classifier)))
        self.features = nn.Sequential(*body)
        self.classifier = classifier

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch}, depth={self.depth}, width={self.width}, activation={self.activation}, "
            f"batch_norm={self.batch_norm}, init_scale={self.init_scale}"
        )


class DeepMLP(DeepNet):
    """A fully connected net on flattened images: ``depth - 1`` hidden layers of ``width`` units."""

    arch = "mlp"

    def __init__(
        self,
        in_features: int,
        depth: int = 20,
        width: int = 64,
        activation: str = "relu",
        batch_norm: bool = False,
        init_scale: float = 1.0,
        num_classes: int = 10,
    ) -> None:
        super().__init__(depth, width, activation, batch_norm, init_scale)
        sizes = [in_features] + [width] * (depth - 1)
        hidden = [nn.Linear(a, b, bias=not batch_norm) for a, b in itertools.pairwise(sizes)]
        norms = [nn.BatchNorm1d(width) if batch_norm else nn.Identity() for _ in hidden]
        self._finish(hidden, norms, nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x.flatten(1)))


class DeepConvNet(DeepNet):
    """``depth - 1`` 3x3 convolutions of ``width`` channels at the input's resolution,
    global average pooling, and a linear classifier."""

    arch = "conv"

    def __init__(
        self,
        in_channels: int = 3,
        depth: int = 20,
        width: int = 16,
        activation: str = "relu",
        batch_norm: bool = False,
        init_scale: float = 1.0,
        num_classes: int = 10,
    ) -> None:
        super().__init__(depth, width, activation, batch_norm, init_scale)
        channels = [in_channels] + [width] * (depth - 1)
        hidden = [
            nn.Conv2d(a, b, kernel_size=3, padding=1, bias=not batch_norm) for a, b in itertools.pairwise(channels)
        ]
        norms = [nn.BatchNorm2d(width) if batch_norm else nn.Identity() for _ in hidden]
        self._finish(hidden, norms, nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def deep_net(
    arch: str,
    depth: int = 20,
    width: int = 64,
    activation: str = "relu",
    batch_norm: bool = False,
    init_scale: float = 1.0,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
) -> DeepNet:
    """A :class:`DeepMLP` (``arch="mlp"``) or :class:`DeepConvNet` (``arch="conv"``) for images
    of ``in_channels`` x ``image_size`` x ``image_size``."""
    if arch == "mlp":
        return DeepMLP(in_channels * image_size**2, depth, width, activation, batch_norm, init_scale, num_classes)
    if arch == "conv":
        return DeepConvNet(in_channels, depth, width, activation, batch_norm, init_scale, num_classes)
    raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
