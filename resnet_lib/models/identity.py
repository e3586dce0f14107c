"""The identity-mapping construction of He et al. (2016): a deeper net that can do no worse.

Take a trained CIFAR net of depth 6n+2 and build one of depth 6m+2 (m >= n) that computes
*exactly* the same function: keep every trained layer, and append m - n extra blocks to each
stage that compute the identity. A plain block is conv-BN-ReLU-conv-BN-ReLU; it passes its
input through unchanged when

* each 3x3 kernel is a Dirac delta (output channel c copies input channel c at the centre tap),
* each BatchNorm, in eval mode, has running mean 0, running variance 1 - eps, scale 1, shift 0,
* and each ReLU sees non-negative inputs, which it does: a block's input is the previous
  block's ReLU output.

A residual block passes its input through when its second BatchNorm's scale and shift are 0,
so the residual branch adds nothing. The deeper net is returned in eval mode: in training mode
BatchNorm would use batch statistics instead, and the extra blocks would no longer be exact
identities.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from resnet_lib.models import BasicBlock, CifarNet, blocks_per_stage


@torch.no_grad()
def dirac_conv_(conv: nn.Conv2d) -> nn.Conv2d:
    """Make a square (in = out channels), stride-1 convolution copy its input; in place."""
    if conv.in_channels != conv.out_channels or conv.stride != (1, 1) or conv.groups != 1:
        raise ValueError(
            f"an identity convolution needs in_channels == out_channels, stride 1 and groups 1, got "
            f"{conv.in_channels}->{conv.out_channels}, stride {conv.stride}, groups {conv.groups}"
        )
    nn.init.dirac_(conv.weight)
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


@torch.no_grad()
def pass_through_bn_(bn: nn.BatchNorm2d, scale: float = 1.0) -> nn.BatchNorm2d:
    """Make a BatchNorm compute ``scale * x`` in eval mode (mean 0, variance 1 - eps); in place."""
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    bn.weight.fill_(scale)
    bn.bias.zero_()
    return bn


def identity_block(channels: int, residual: bool = False) -> BasicBlock:
    """A basic block that returns its (non-negative) input unchanged in eval mode.

    Plain (``residual=False``): Dirac kernels and pass-through BatchNorms in both layers.
    Residual: the same, with the second BatchNorm's scale set to 0, so F(x) = 0 and the
    block returns ReLU(0 + x) = x.
    """
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    block = BasicBlock(channels, channels, stride=1, shortcut="A" if residual else None)
    dirac_conv_(block.conv1)
    dirac_conv_(block.conv2)
    pass_through_bn_(block.bn1)
    pass_through_bn_(block.bn2, scale=0.0 if residual else 1.0)
    return block.eval()


def deepen_with_identity(net: CifarNet, depth: int) -> CifarNet:
    """A depth-``depth`` copy of ``net`` whose extra blocks compute the identity.

    Each stage keeps ``net``'s trained blocks first, then gets identity blocks up to the
    new depth's blocks per stage; the stem and the classifier are copied. The result is a
    new :class:`CifarNet` (``net`` is not modified), on ``net``'s device, in eval mode,
    and computes the same outputs as ``net`` in eval mode, up to float rounding.
    """
    if not isinstance(net, CifarNet):
        raise ValueError(f"deepen_with_identity needs a resnet_lib CifarNet, got {type(net).__name__}")
    n_old, n_new = blocks_per_stage(net.depth), blocks_per_stage(depth)
    if n_new < n_old:
        raise ValueError(f"depth must be at least the net's depth {net.depth} (6n+2), got {depth}")
    device = next(net.parameters()).device
    deeper = net.fresh_copy(depth)
    deeper.stem = copy.deepcopy(net.stem)
    deeper.fc = copy.deepcopy(net.fc)
    for name in ("stage1", "stage2", "stage3"):
        old_blocks = list(getattr(net, name))
        channels = old_blocks[-1].conv2.out_channels
        extra = [identity_block(channels, residual=net.residual) for _ in range(n_new - n_old)]
        setattr(deeper, name, nn.Sequential(*[copy.deepcopy(b) for b in old_blocks], *extra))
    return deeper.to(device).eval()


__all__ = ["deepen_with_identity", "dirac_conv_", "identity_block", "pass_through_bn_"]
