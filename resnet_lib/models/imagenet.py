"""The ImageNet ResNets of He et al. (2016), Table 1, as torchvision builds them, from this library's blocks.

ResNet-18 and -34 stack the CIFAR nets' :class:`BasicBlock` with option-B (1x1 projection)
shortcuts where the shape changes, as torchvision does; He et al. trained the ResNet-18/34 of their
Table 2 with option-A (zero-padding) shortcuts, compared A, B and C on ResNet-34 (Table 3), and used B
from ResNet-50 on. ResNet-50 stacks :class:`Bottleneck` blocks (1x1 reduce, 3x3, 1x1 expand by 4). A
7x7 stride-2 stem and a 3x3 stride-2 max-pool come first; four stages of 64, 128, 256 and 512 filters
follow. The layers and their names are torchvision's (``conv1``, ``layer1.0.conv1``, ...), except
that a block's projection is called ``shortcut`` here and ``downsample`` there: see
:func:`load_torchvision_state`. Like torchvision's, a bottleneck downsamples in its 3x3
convolution (the "ResNet v1.5" variant), not in its first 1x1 convolution as the paper did.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from resnet_lib.models.cifar import BasicBlock, conv3x3, make_shortcut


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """1x1 conv to ``width`` filters, 3x3 conv (with the stride: "v1.5"), 1x1 conv to ``4 * width``; BN after each;
    ReLU after the sum."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, "B")

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))  # F(x)
        return self.relu(out + self.shortcut(x))


#: Blocks per stage (He et al. 2016, Table 1) and the block each net stacks.
IMAGENET_LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class ImageNetResNet(nn.Module):
    """ResNet-18, -34 or -50 for 224x224 ImageNet images (any size of at least 32x32 works)."""

    def __init__(self, depth: int, num_classes: int = 1000) -> None:
        super().__init__()
        if depth not in IMAGENET_LAYOUTS:
            raise ValueError(
                f"ImageNet ResNet depth must be one of {', '.join(map(str, IMAGENET_LAYOUTS))}, got {depth!r}"
            )
        kind, layers = IMAGENET_LAYOUTS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch, stages = 64, []
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                if kind == "basic":
                    blocks.append(BasicBlock(in_ch, width, stride, shortcut="B"))
                    in_ch = width
                else:
                    blocks.append(Bottleneck(in_ch, width, stride))
                    in_ch = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():  # as torchvision: He initialization, BatchNorm at scale 1 and shift 0
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def name(self) -> str:
        return f"ResNet-{self.depth}"

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def imagenet_resnet(depth: int, num_classes: int = 1000) -> ImageNetResNet:
    """``imagenet_resnet(50)``: ResNet-50 as torchvision builds it, from this library's blocks."""
    return ImageNetResNet(depth, num_classes)


def load_torchvision_state(net: ImageNetResNet, state: dict[str, Tensor]) -> ImageNetResNet:
    """Load a torchvision ResNet's ``state_dict()`` into ``net`` (``downsample`` is ``shortcut`` here); strict."""
    net.load_state_dict({key.replace(".downsample.", ".shortcut."): value for key, value in state.items()})
    return net
