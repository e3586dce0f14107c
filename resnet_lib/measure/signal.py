"""Forward-signal statistics of CIFAR nets: the mean square after every block, and how exactly a
block adds its residual branch to its shortcut (He et al. 2016b's clean identity path).

Every function takes a network and a batch, runs it without gradients, and returns NumPy arrays.
BatchNorm runs in whatever mode the network is in: at initialization use ``net.train()`` (batch
statistics, as in the first training step); for a trained net use ``net.eval()``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from resnet_lib.models.cifar import BasicBlock, CifarNet, PreActBlock, UnnormalizedBlock


def mean_square(x: Tensor) -> float:
    """The mean of ``x**2`` over every element (batch, channels and pixels), as a float (in float64)."""
    return float(x.detach().double().pow(2).mean())


@torch.no_grad()
def block_mean_squares(net: CifarNet, x: Tensor) -> np.ndarray:
    """The mean square of the stem's output, then of every block's output, input to output.

    Entry 0 is the stem, entry ``i`` block ``i`` (27 blocks for ResNet-56, so 28 entries).
    """
    maps = net.feature_maps(x)
    return np.array([mean_square(v) for v in maps.values()])


@torch.no_grad()
def signal_growth(net: CifarNet, x: Tensor) -> float:
    """How much the forward signal's mean square grew from the stem's output to the last block's."""
    ms = block_mean_squares(net, x)
    return float(ms[-1] / ms[0])


def residual_branch(block: nn.Module, x: Tensor) -> Tensor:
    """The residual branch F(x) of one block, computed from its layers (without the shortcut or anything after)."""
    if isinstance(block, BasicBlock):
        return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    if isinstance(block, PreActBlock):
        return block.conv2(block.relu(block.bn2(block.conv1(block.relu(block.bn1(x))))))
    if isinstance(block, UnnormalizedBlock):
        return block.alpha * block.conv2(block.relu(block.conv1(block.relu(x))))
    raise ValueError(
        f"no residual branch known for a {type(block).__name__}; use a BasicBlock, PreActBlock or UnnormalizedBlock"
    )


@torch.no_grad()
def identity_defects(net: CifarNet, x: Tensor) -> np.ndarray:
    """Per block: ``||x_{l+1} - (s(x_l) + F(x_l))|| / ||x_{l+1}||``, how far a block is from adding its branch.

    ``s`` is the shortcut (the identity, or option A's subsample and zero-pad). A pre-activation
    block has nothing after the sum, so its defect is 0 and ``x_L = x_l + sum of F`` holds exactly
    along a stage; the 2016 block's ReLU after the sum clips the negative part of every sum.
    """
    if not net.residual:
        raise ValueError("identity_defects needs a residual net (a plain block has no shortcut)")
    defects, h = [], net.stem(x)
    for block in net.blocks():
        out = block(h)
        expected = block.shortcut(h) + residual_branch(block, h)
        defects.append(float((out - expected).double().norm() / out.double().norm().clamp_min(1e-300)))
        h = out
    return np.array(defects)


__all__ = ["block_mean_squares", "identity_defects", "mean_square", "residual_branch", "signal_growth"]
