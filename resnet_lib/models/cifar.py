"""The CIFAR-10 networks of He et al. (2016), section 4.2: plain and residual, depth 6n+2.

A 3x3 convolution, then three stages of ``n`` basic blocks on 32x32, 16x16 and 8x8 maps
with ``width``, ``2*width`` and ``4*width`` filters (16/32/64 in the paper), stride-2
downsampling at the first block of stages 2 and 3, global average pooling and a 10-way
fully connected layer. Plain and residual nets share every line but the shortcut.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHORTCUT_OPTIONS = ("A", "B")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample with the block's stride, then append zero channels. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(in_channels: int, out_channels: int, stride: int, option: str) -> nn.Module:
    """The shortcut of a residual block: identity where shapes match, else option A or B."""
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; choose one of: {', '.join(SHORTCUT_OPTIONS)}")
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Sequential(  # option B: a 1x1 projection
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; the shortcut is added *before* the final ReLU.

    ``shortcut=None`` gives the plain block: the same layers with nothing added.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | None = "A") -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = None if shortcut is None else make_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))  # F(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # F(x) + x
        return self.relu(out)


def blocks_per_stage(depth: int) -> int:
    """``n`` for a net of depth 6n+2; a clear error for any other depth."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}")
    return (depth - 2) // 6


class CifarNet(nn.Module):
    """A depth-(6n+2) CIFAR network; ``residual`` chooses ResNet or plain net."""

    def __init__(
        self,
        depth: int,
        residual: bool = True,
        shortcut: str = "A",
        width: int = 16,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        if residual and shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"unknown shortcut option {shortcut!r}; choose one of: {', '.join(SHORTCUT_OPTIONS)}")
        if width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width!r}")
        self.depth, self.residual, self.width = depth, residual, width
        self.shortcut_option = shortcut if residual else None
        self.stem = nn.Sequential(conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        channels = [width, 2 * width, 4 * width]
        stages, in_ch = [], width
        for i, out_ch in enumerate(channels):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride, self.shortcut_option))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():  # He et al. (2015) initialization, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def family(self) -> str:
        """``"residual"`` or ``"plain"`` (the key of the book's colours)."""
        return "residual" if self.residual else "plain"

    @property
    def name(self) -> str:
        return f"{'ResNet' if self.residual else 'plain'}-{self.depth}"

    def blocks(self) -> list[BasicBlock]:
        """All basic blocks, input to output."""
        return [*self.stage1, *self.stage2, *self.stage3]

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))

    def feature_maps(self, x: Tensor) -> OrderedDict[str, Tensor]:
        """The output of the stem and of every block, keyed ``stem``, ``stage1.0``, ..."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        x = out["stem"] = self.stem(x)
        for s, stage in enumerate((self.stage1, self.stage2, self.stage3), start=1):
            for b, block in enumerate(stage):
                x = out[f"stage{s}.{b}"] = block(x)
        return out


def cifar_resnet(depth: int, shortcut: str = "A", width: int = 16, num_classes: int = 10) -> CifarNet:
    """ResNet-``depth`` for CIFAR-10 (He et al. 2016, section 4.2)."""
    return CifarNet(depth, residual=True, shortcut=shortcut, width=width, num_classes=num_classes)


def plain_cifar_net(depth: int, width: int = 16, num_classes: int = 10) -> CifarNet:
    """The plain counterpart of :func:`cifar_resnet`: the same layers, no shortcuts."""
    return CifarNet(depth, residual=False, width=width, num_classes=num_classes)


#: The two kinds of CIFAR net: without shortcuts (He et al.'s "plain") and with them.
FAMILIES = ("plain", "residual")


def cifar_net(family: str, depth: int, width: int = 16, shortcut: str = "A") -> CifarNet:
    """``cifar_net("plain" | "residual", depth)``: the network a results key names."""
    if family == "residual":
        return cifar_resnet(depth, shortcut=shortcut, width=width)
    if family == "plain":
        return plain_cifar_net(depth, width=width)
    raise ValueError(f"unknown model family {family!r}; choose 'plain' or 'residual'")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
