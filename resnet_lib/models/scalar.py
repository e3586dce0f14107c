"""The scalar-to-scalar ReLU nets of Balduzzi et al. (2017), "The shattered gradients problem".

Every net maps one number to one number through hidden layers of ``units`` (200 in the
paper) rectifier units, with He et al. (2015) initialization (normal, variance
``2 / fan_in``) of every weight matrix.

* **Plain net of depth L**: ``L`` hidden layers ``Linear -> [BatchNorm] -> ReLU`` (the first
  maps 1 -> units, the others units -> units), then an output layer ``Linear(units, 1)``.
* **Residual net of depth L**: an input layer ``Linear(1, units)``, then residual modules
  whose branches hold ``L`` weight layers in all, then ``[BatchNorm] -> ReLU -> Linear(units, 1)``.
  With ``block_layers=1`` (the default, the module of Balduzzi et al.'s analysis) each of
  the ``L`` modules is ``x + W relu(BN(x))``; with ``block_layers=2`` each of the ``L/2``
  modules is ``x + W2 relu(BN(W1 relu(BN(x))))`` (He et al. 2016, "Identity mappings").
  The shortcut is a pure identity: each module *adds* a normalized branch to a running sum.

Biases use PyTorch's default initialization, uniform on ``±1/sqrt(fan_in)`` (so ``±1`` in the
first layer, whose kinks then fall inside the input range), unless ``zero_bias=True``. With
all biases zero and no BatchNorm every layer is positively homogeneous, so the whole net is
linear on each side of ``x = 0``: one kink, and nothing to shatter. (With BatchNorm the
biases do not matter: centring over the batch removes them.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

BLOCK_LAYERS = (1, 2)


def _he_init_(layer: nn.Linear, zero_bias: bool) -> None:
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    if zero_bias:
        nn.init.zeros_(layer.bias)


class ResidualModule(nn.Module):
    """``x + branch(x)``, the branch ``[BN -> ReLU -> Linear] x layers`` (pre-activation order)."""

    def __init__(self, units: int, layers: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        branch: list[nn.Module] = []
        for _ in range(layers):
            branch += [nn.BatchNorm1d(units) if batch_norm else nn.Identity(), nn.ReLU(), nn.Linear(units, units)]
        self.branch = nn.Sequential(*branch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


@dataclass(frozen=True)
class NetSpec:
    """Which scalar net: depth (hidden layers), plain or residual, BatchNorm or not, biases, block size.

    The one place these five choices are spelled: :class:`ScalarNet` is built from a spec.
    """

    depth: int
    residual: bool = False
    batch_norm: bool = False
    zero_bias: bool = False
    block_layers: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 1:
            raise ValueError(f"depth must be a positive number of hidden layers, got {self.depth!r}")
        if self.block_layers not in BLOCK_LAYERS:
            raise ValueError(f"block_layers must be 1 or 2, got {self.block_layers!r}")
        if self.residual and self.depth % self.block_layers:
            raise ValueError(f"depth must be a multiple of block_layers={self.block_layers}, got {self.depth}")

    @property
    def family(self) -> str:
        """``"residual"`` or ``"plain"`` (the key of the book's colours)."""
        return "residual" if self.residual else "plain"

    @property
    def kind(self) -> str:
        """The net without its depth: ``"plain"``, ``"plain + BN"``, ``"ResNet + BN"``, ..."""
        name = "ResNet" if self.residual else "plain"
        name += " + BN" if self.batch_norm else " (no BN)"
        if self.residual and self.block_layers == 2:
            name += ", 2-layer blocks"
        return name + (", zero biases" if self.zero_bias else "")

    @property
    def label(self) -> str:
        return f"{self.depth}-layer {self.kind}"

    def at_depth(self, depth: int) -> NetSpec:
        """The same kind of net at another depth."""
        return replace(self, depth=depth)

    def build(self, units: int = 200, seed: int | None = None) -> ScalarNet:
        """The net; with ``seed`` its weights come from ``torch.manual_seed(seed)`` (global RNG untouched)."""
        if seed is None:
            return ScalarNet(self, units)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ScalarNet(self, units)


class ScalarNet(nn.Module):
    """A Balduzzi et al. scalar-to-scalar net; input ``(M,)`` or ``(M, 1)``, output ``(M,)``."""

    def __init__(self, spec: NetSpec, units: int = 200) -> None:
        super().__init__()
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"units must be a positive number of hidden units, got {units!r}")
        self.spec, self.units = spec, units
        if spec.residual:
            self.body = nn.Sequential(
                nn.Linear(1, units),
                *[
                    ResidualModule(units, spec.block_layers, spec.batch_norm)
                    for _ in range(spec.depth // spec.block_layers)
                ],
                nn.BatchNorm1d(units) if spec.batch_norm else nn.Identity(),
                nn.ReLU(),
            )
        else:
            layers: list[nn.Module] = []
            for i in range(spec.depth):
                layers.append(nn.Linear(1 if i == 0 else units, units))
                if spec.batch_norm:
                    layers.append(nn.BatchNorm1d(units))
                layers.append(nn.ReLU())
            self.body = nn.Sequential(*layers)
        self.head = nn.Linear(units, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                _he_init_(m, spec.zero_bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x.reshape(-1, 1))).reshape(-1)
