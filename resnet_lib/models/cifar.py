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

from resnet_lib.recipe import check_depth

SHORTCUT_OPTIONS = ("A", "B")
#: Where option A puts its zero channels: all after the existing ones, or half before and half after.
ZERO_PADDINGS = ("append", "split")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample with the block's stride, then pad the new channels with zeros. No parameters.

    ``zero_padding`` says where the zero channels go: ``"append"`` puts them all after the
    existing channels (this book's own nets); ``"split"`` puts half before and half after, as
    the widely used published CIFAR-10 weights (:mod:`resnet_lib.models.published`) were trained.
    The two are different functions of the same weights (the next block sees its channels moved).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, zero_padding: str = "append") -> None:
        super().__init__()
        check_zero_padding(zero_padding)
        self.stride = stride
        self.zero_padding = zero_padding
        extra = out_channels - in_channels
        self.pad_before = extra // 2 if zero_padding == "split" else 0
        self.pad_after = extra - self.pad_before

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


def check_zero_padding(zero_padding: str) -> str:
    """``zero_padding`` if it is one of :data:`ZERO_PADDINGS`, else a one-line ``ValueError``."""
    if zero_padding not in ZERO_PADDINGS:
        raise ValueError(f"unknown zero_padding {zero_padding!r}; choose one of: {', '.join(ZERO_PADDINGS)}")
    return zero_padding


def make_shortcut(
    in_channels: int, out_channels: int, stride: int, option: str, zero_padding: str = "append"
) -> nn.Module:
    """The shortcut of a residual block: identity where shapes match, else option A or B."""
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; choose one of: {', '.join(SHORTCUT_OPTIONS)}")
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride, zero_padding)
    return nn.Sequential(  # option B: a 1x1 projection
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; the shortcut is added *before* the final ReLU.

    ``shortcut=None`` gives the plain block: the same layers with nothing added.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: str | None = "A",
        zero_padding: str = "append",
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = (
            None if shortcut is None else make_shortcut(in_channels, out_channels, stride, shortcut, zero_padding)
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))  # F(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # F(x) + x
        return self.relu(out)


class PreActBlock(nn.Module):
    """He et al. (2016b), "Identity Mappings": BN-ReLU-conv-BN-ReLU-conv, and nothing after the sum.

    The shortcut path carries ``x`` itself from block to block, so ``x_L = x_l + sum of F``
    holds exactly. ``shortcut=None`` gives its plain twin.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: str | None = "A",
        zero_padding: str = "append",
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = (
            None if shortcut is None else make_shortcut(in_channels, out_channels, stride, shortcut, zero_padding)
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))  # F(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # F(x) + x, with nothing after it
        return out


class UnnormalizedBlock(nn.Module):
    """A pre-activation block without BatchNorm: ReLU-conv-ReLU-conv, its branch scaled by ``alpha``.

    ``branch_scale=None``: ``alpha`` is fixed at 1 (a ResNet without BatchNorm at He
    initialization); a number: ``alpha`` is learned and starts there (SkipInit, De & Smith
    2020, starts at 0, so every block starts as the identity). ``shortcut=None``: the plain twin.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: str | None = "A",
        branch_scale: float | None = None,
        zero_padding: str = "append",
    ) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = (
            None if shortcut is None else make_shortcut(in_channels, out_channels, stride, shortcut, zero_padding)
        )
        if branch_scale is None:
            self.register_buffer("alpha", torch.ones(()))
        else:
            self.alpha = nn.Parameter(torch.tensor(float(branch_scale)))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.relu(self.conv1(self.relu(x))))  # F(x)
        if self.shortcut is None:
            return out
        return self.shortcut(x) + self.alpha * out  # x + alpha F(x)


#: The blocks a CIFAR net can be built from: the paper's, pre-activation, and without BatchNorm.
BLOCKS = {"basic": BasicBlock, "preact": PreActBlock, "unnormalized": UnnormalizedBlock}


def blocks_per_stage(depth: int) -> int:
    """``n`` for a net of depth 6n+2; a clear error for any other depth."""
    return (check_depth("depth", depth) - 2) // 6


#: The two kinds of CIFAR net: without shortcuts (He et al.'s "plain") and with them.
FAMILIES = ("plain", "residual")


def net_label(family: str, depth: int) -> str:
    """``"plain-56"`` or ``"ResNet-56"``: how the book names a CIFAR net of a family and depth."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose 'plain' or 'residual'")
    return f"{'ResNet' if family == 'residual' else 'plain'}-{depth}"


class CifarNet(nn.Module):
    """A depth-(6n+2) CIFAR network; ``residual`` chooses ResNet or plain net.

    ``block`` (see :data:`BLOCKS`): ``"basic"``, the paper's; ``"preact"``, He et al. (2016b),
    whose stem is a bare convolution and which ends in BN-ReLU before the pooling;
    ``"unnormalized"``, without BatchNorm, its branches scaled as ``branch_scale`` says.
    ``zero_init_residual`` starts each basic block's last BatchNorm scale (gamma) at 0, so each
    block starts as the identity (Goyal et al. 2017). ``zero_padding`` places option A's zero
    channels (see :class:`ZeroPadShortcut`): ``"append"`` for the book's own nets, ``"split"``
    for the published CIFAR-10 weights.
    """

    def __init__(
        self,
        depth: int,
        residual: bool = True,
        shortcut: str = "A",
        width: int = 16,
        num_classes: int = 10,
        in_channels: int = 3,
        block: str = "basic",
        zero_init_residual: bool = False,
        branch_scale: float | None = None,
        zero_padding: str = "append",
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        check_zero_padding(zero_padding)
        if residual and shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"unknown shortcut option {shortcut!r}; choose one of: {', '.join(SHORTCUT_OPTIONS)}")
        if width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width!r}")
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of: {', '.join(BLOCKS)}")
        if zero_init_residual and (block != "basic" or not residual):
            raise ValueError("zero_init_residual needs residual basic blocks (it zeroes their last BatchNorm's gamma)")
        if branch_scale is not None and (block != "unnormalized" or not residual):
            raise ValueError("branch_scale is for residual nets of unnormalized blocks (block='unnormalized')")
        self.depth, self.residual, self.width, self.block = depth, residual, width, block
        self.config = {
            "depth": depth, "residual": residual, "shortcut": shortcut, "width": width, "num_classes": num_classes,
            "in_channels": in_channels, "block": block, "zero_init_residual": zero_init_residual,
            "branch_scale": branch_scale, "zero_padding": zero_padding,
        }  # fmt: skip
        self.shortcut_option = shortcut if residual else None
        self.branch_scale = branch_scale
        if block == "basic":
            self.stem = nn.Sequential(conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        else:  # pre-activation order: the first block normalizes and activates the stem's output
            self.stem = nn.Sequential(conv3x3(in_channels, width))
        extra = {"branch_scale": branch_scale} if block == "unnormalized" and residual else {}
        channels = [width, 2 * width, 4 * width]
        stages, in_ch = [], width
        for i, out_ch in enumerate(channels):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(
                    BLOCKS[block](in_ch, out_ch, stride, self.shortcut_option, zero_padding=zero_padding, **extra)
                )
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        if block == "preact":
            self.head = nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True))
        elif block == "unnormalized":
            self.head = nn.ReLU()
        else:
            self.head = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool = False) -> None:
        for m in self.modules():  # He et al. (2015) initialization, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for b in self.blocks():
                nn.init.zeros_(b.bn2.weight)

    @property
    def family(self) -> str:
        """``"residual"`` or ``"plain"`` (the key of the book's colours)."""
        return "residual" if self.residual else "plain"

    def fresh_copy(self, depth: int | None = None) -> CifarNet:
        """A newly initialized net of this architecture (at ``depth``, if given), drawn from the global RNG."""
        return CifarNet(**{**self.config, **({} if depth is None else {"depth": depth})})

    @property
    def name(self) -> str:
        base = net_label(self.family, self.depth)
        if self.block == "preact":
            return f"pre-activation {base}"
        if self.block == "unnormalized":
            start = "" if self.branch_scale is None else f", branches start at {self.branch_scale:g}"
            return f"{base} without BN{start}"
        return base

    def blocks(self) -> list[nn.Module]:
        """All basic blocks, input to output."""
        return [*self.stage1, *self.stage2, *self.stage3]

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.stage3(self.stage2(self.stage1(self.stem(x)))))
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
