"""The shortcut variants of He et al. (2016b), "Identity Mappings", section 3 (their Fig. 2 and Table 1).

A block computes ``x_{l+1} = h(x_l) + F(x_l)``, or for exclusive gating ``(1 - g) * x_l + g * F(x_l)``, with
nothing after the sum, so that their section 3 derivation holds as written. ``F`` is chapter 8's pre-activation
branch (BN-ReLU-conv-BN-ReLU-conv: :class:`~resnet_lib.models.cifar.PreActBlock` without its shortcut). ``h`` is
one of :data:`SHORTCUT_KINDS`:

* ``identity``: ``h(x) = x`` (their Fig. 2a);
* ``scaling``: ``h(x) = scale * x`` (constant scaling, Fig. 2b);
* ``exclusive_gating``: ``(1 - g(x)) * x + g(x) * F(x)``, ``g(x) = sigmoid(W_g x + b_g)`` with a 1x1 convolution
  ``W_g`` and its bias started at ``gate_bias`` (Fig. 2c, after highway networks);
* ``shortcut_gating``: ``(1 - g(x)) * x + F(x)`` (shortcut-only gating, Fig. 2d);
* ``conv1x1``: ``h(x) = W x``, a 1x1 convolution (Fig. 2e);
* ``dropout``: ``h(x) = m * x`` with ``m`` a fresh 0/1 mask that keeps each entry with probability ``keep``
  in training mode, and ``keep * x`` in evaluation mode (Fig. 2f; not rescaled, so that the shortcut is
  ``keep * x`` on average, as the paper reads it).

:class:`ShortcutStack` is a CIFAR-style net made of such blocks: a 3x3 stem, ``blocks`` blocks at one width and
resolution (no downsampling, so the shortcut is the only thing that varies), BN-ReLU, pooling and a classifier.
``zero_branch=True`` starts the last convolution of every branch at 0, so that ``F`` and its derivative are 0
and only the shortcut path is left.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from resnet_lib.models.cifar import PreActBlock, conv3x3

SHORTCUT_KINDS = ("identity", "scaling", "exclusive_gating", "shortcut_gating", "conv1x1", "dropout")
GATED = ("exclusive_gating", "shortcut_gating")


def check_shortcut(kind: str, scale: float = 0.5, keep: float = 0.5) -> str:
    """``kind`` when it and its number are allowed, else a one-line ``ValueError``."""
    if kind not in SHORTCUT_KINDS:
        raise ValueError(f"unknown shortcut kind {kind!r}; choose one of: {', '.join(SHORTCUT_KINDS)}")
    if kind == "scaling" and not (isinstance(scale, int | float) and scale > 0):
        raise ValueError(f"a constant-scaling shortcut needs scale > 0, got {scale!r}")
    if kind == "dropout" and not (isinstance(keep, int | float) and 0 < keep <= 1):
        raise ValueError(f"a dropout shortcut needs a keep probability in (0, 1], got {keep!r}")
    return kind


class ScaledShortcut(nn.Module):
    """``h(x) = scale * x``."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x


class DropoutShortcut(nn.Module):
    """``h(x) = m * x``: each entry kept with probability ``keep`` (training mode), else ``keep * x``."""

    def __init__(self, keep: float) -> None:
        super().__init__()
        self.keep = float(keep)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self.keep * x
        mask = torch.bernoulli(torch.full_like(x, self.keep))
        return mask * x


class Gate(nn.Module):
    """``g(x) = sigmoid(W_g x + b_g)``: a 1x1 convolution with a bias that starts at ``bias``."""

    def __init__(self, channels: int, bias: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=True)
        self.initial_bias = float(bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.conv(x))


class ShortcutBlock(nn.Module):
    """One block of He et al. (2016b)'s Fig. 2: a pre-activation branch ``F`` and the shortcut ``kind``."""

    def __init__(
        self, channels: int, kind: str = "identity", scale: float = 0.5, gate_bias: float = -6.0, keep: float = 0.5
    ) -> None:
        super().__init__()
        self.kind = check_shortcut(kind, scale, keep)
        self.branch = PreActBlock(channels, channels, shortcut=None)  # F(x)
        self.gate = Gate(channels, gate_bias) if kind in GATED else None
        if kind == "scaling":
            self.shortcut = ScaledShortcut(scale)
        elif kind == "conv1x1":
            self.shortcut = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        elif kind == "dropout":
            self.shortcut = DropoutShortcut(keep)
        else:  # identity, and the gated kinds (their shortcut is x, multiplied by 1 - g)
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        f = self.branch(x)
        if self.kind == "exclusive_gating":
            g = self.gate(x)
            return (1 - g) * x + g * f
        if self.kind == "shortcut_gating":
            return (1 - self.gate(x)) * x + f
        return self.shortcut(x) + f  # h(x) + F(x), nothing after the sum


class ShortcutStack(nn.Module):
    """A stem, ``blocks`` :class:`ShortcutBlock` of one ``kind`` at ``width`` channels, BN-ReLU, pooling, classifier."""

    def __init__(
        self,
        blocks: int,
        kind: str = "identity",
        width: int = 16,
        scale: float = 0.5,
        gate_bias: float = -6.0,
        keep: float = 0.5,
        zero_branch: bool = False,
        in_channels: int = 3,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        check_shortcut(kind, scale, keep)
        if not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"blocks must be a positive whole number, got {blocks!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width!r}")
        self.kind, self.zero_branch = kind, zero_branch
        self.stem = conv3x3(in_channels, width)
        self.blocks = nn.Sequential(*[ShortcutBlock(width, kind, scale, gate_bias, keep) for _ in range(blocks)])
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():  # He et al. (2015) initialization, as CifarNet's
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            if block.gate is not None:
                nn.init.constant_(block.gate.conv.bias, block.gate.initial_bias)
            if self.zero_branch:
                nn.init.zeros_(block.branch.conv2.weight)  # F = 0, and so is its derivative

    def classify(self, x: Tensor) -> Tensor:
        """The logits from the last block's output."""
        return self.fc(torch.flatten(self.pool(self.head(x)), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.blocks(self.stem(x)))

    def block_outputs(self, x: Tensor) -> list[Tensor]:
        """``[x_0, x_1, ..., x_L]``: the stem's output and every block's."""
        out = [self.stem(x)]
        for block in self.blocks:
            out.append(block(out[-1]))
        return out


__all__ = [
    "GATED",
    "SHORTCUT_KINDS",
    "DropoutShortcut",
    "Gate",
    "ScaledShortcut",
    "ShortcutBlock",
    "ShortcutStack",
    "check_shortcut",
]
