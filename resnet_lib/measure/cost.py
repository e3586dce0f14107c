"""What a network costs: multiply-adds per image, counted layer by layer on one forward pass."""

from __future__ import annotations

import torch
from torch import nn

from resnet_lib.models.state import preserved_state


@torch.no_grad()
def multiply_adds(net: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulate operations of one ``image_size`` x ``image_size`` image through ``net``.

    Counts every convolution (output elements x input channels per group x kernel area) and every
    fully connected layer (inputs x outputs), the operations torchvision's model tables call FLOPS;
    BatchNorm, ReLU, pooling and additions are not counted (they are under 1% of the total).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a whole number of pixels >= 1, got {image_size!r}")
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    hooks = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        with preserved_state(net):
            net(torch.zeros(1, in_channels, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
    return total


__all__ = ["multiply_adds"]
