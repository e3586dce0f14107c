"""Why residual nets train: layer responses, gradients per layer, and gradients along a line of images.

* :func:`layer_response_std`: He et al. (2016), Fig. 7. The response of a 3x3 layer is its
  output after BatchNorm, before the ReLU or the addition; its standard deviation (per
  channel over images and positions, averaged over channels) says how much each layer
  changes the signal. Residual nets' responses are smaller: their layers learn a
  correction F(x) to an identity, not the whole mapping.
* :func:`conv_gradient_norms`: ``|d loss / d W|`` for every 3x3 layer of a CIFAR net
  (the stem first), through :func:`resnet_lib.measure.gradients.gradient_norms_per_layer`.
* :func:`line_gradients`: the shattered-gradients measure of chapter 4 carried over to
  image classifiers: the derivative of one class logit along the straight line between
  two images, at ``n_points`` evenly spaced points.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from resnet_lib.measure.gradients import gradient_norms_per_layer, input_gradients
from resnet_lib.models import CifarNet
from resnet_lib.models.state import calibrate_batchnorm, preserved_state


def _check_net(net: nn.Module) -> CifarNet:
    if not isinstance(net, CifarNet):
        raise ValueError(f"expected a resnet_lib CifarNet (plain or residual), got {type(net).__name__}")
    return net


def response_layers(net: CifarNet) -> list[tuple[str, nn.BatchNorm2d]]:
    """The BatchNorm after every 3x3 convolution, input side first (stem, then bn1, bn2 of each block)."""
    _check_net(net)
    layers: list[tuple[str, nn.BatchNorm2d]] = [("stem", net.stem[1])]
    for s, stage in enumerate((net.stage1, net.stage2, net.stage3), start=1):
        for b, block in enumerate(stage):
            layers += [(f"stage{s}.{b}.bn1", block.bn1), (f"stage{s}.{b}.bn2", block.bn2)]
    return layers


@torch.no_grad()
def layer_response_std(net: nn.Module, x: Tensor, batch_size: int = 500) -> np.ndarray:
    """Standard deviation of every 3x3 layer's response (after BN, before ReLU/addition), in eval mode.

    Entry ``i`` is layer ``i + 1`` of :func:`response_layers`: the per-channel standard
    deviation over all images of ``x`` and all positions, averaged over channels. The
    model's mode is restored afterwards.
    """
    if x.dim() != 4 or len(x) < 2:
        raise ValueError(f"x must be a batch of at least 2 images (N, C, H, W), got shape {tuple(x.shape)}")
    return responses_and_logits(net, x, len(x), groups=1, batch_size=batch_size)[0][0]


@torch.no_grad()
def responses_and_logits(
    net: nn.Module, x: Tensor, n_responses: int, groups: int = 1, batch_size: int = 500
) -> tuple[np.ndarray, Tensor]:
    """One forward pass over ``x`` (eval mode): the logits of every image, and the response stds of
    :func:`layer_response_std` within each of ``groups`` equal consecutive parts of the first ``n_responses``.

    Returns ``(stds, logits)`` with ``stds`` of shape ``(groups, layers)``: the groups are disjoint sets of
    images, so their spread says how much the stds depend on which images were taken.
    """
    layers = response_layers(_check_net(net))
    if x.dim() != 4 or len(x) < 1:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    if not isinstance(groups, int) or groups < 1 or not isinstance(n_responses, int):
        raise ValueError(f"groups must be an int >= 1, got {groups!r} (n_responses {n_responses!r})")
    if not 2 * groups <= n_responses <= len(x):
        raise ValueError(f"n_responses must lie in [{2 * groups}, {len(x)}] for {groups} group(s), got {n_responses}")
    sums = [[torch.zeros(m.num_features, dtype=torch.float64) for _, m in layers] for _ in range(groups)]
    squares = [[torch.zeros(m.num_features, dtype=torch.float64) for _, m in layers] for _ in range(groups)]
    counts = [[0] * len(layers) for _ in range(groups)]
    current: list[int | None] = [None]  # the group being recorded, None: record nothing

    def hook(i: int):
        def record(module: nn.Module, inputs: tuple[Tensor], output: Tensor) -> None:
            g = current[0]
            if g is None:
                return
            out = output.detach()
            sums[g][i] += out.sum(dim=(0, 2, 3), dtype=torch.float64).cpu()
            squares[g][i] += (out * out).sum(dim=(0, 2, 3), dtype=torch.float64).cpu()
            counts[g][i] += out.numel() // out.shape[1]

        return record

    bounds = [round(g * n_responses / groups) for g in range(groups + 1)]
    chunks = [(g, a, b) for g in range(groups) for a, b in _batches(bounds[g], bounds[g + 1], batch_size)]
    chunks += [(None, a, b) for a, b in _batches(n_responses, len(x), batch_size)]
    handles = [m.register_forward_hook(hook(i)) for i, (_, m) in enumerate(layers)]
    device = next(net.parameters()).device
    logits = []
    try:
        with preserved_state(net):
            for g, a, b in chunks:
                current[0] = g
                logits.append(net(x[a:b].to(device)).cpu())
    finally:
        for h in handles:
            h.remove()
    stds = np.zeros((groups, len(layers)))
    for g in range(groups):
        for i in range(len(layers)):
            n = counts[g][i]
            mean = sums[g][i] / n
            var = (squares[g][i] / n - mean * mean).clamp_min(0) * n / (n - 1)
            stds[g, i] = var.sqrt().mean().item()
    return stds, torch.cat(logits)


def _batches(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def conv_gradient_norms(net: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    """``|d loss / d W|`` of every 3x3 convolution (stem first), BatchNorm in training mode.

    Cross-entropy on the batch ``(x, y)``; the model's mode, buffers and gradients are left
    as they were. Option-B projections and the classifier are left out, so entry ``i``
    belongs to layer ``i + 1`` of :func:`response_layers` for plain and residual nets alike.
    """
    _check_net(net)
    device = next(net.parameters()).device
    norms = gradient_norms_per_layer(net, x.to(device), y.to(device))
    names = [name for name, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    keep = [
        i
        for i, name in enumerate(names)
        if isinstance(net.get_submodule(name), nn.Conv2d) and net.get_submodule(name).kernel_size == (3, 3)
    ]
    return norms[keep]


#: Chapter 2's criteria (its check cell) for the ratio of the first layer's gradient to the last layer's:
#: below ``VANISHED_BELOW`` the gradient has *vanished* (chapter 2's sigmoid nets, 1e-13..1e-11), and within
#: a factor ``KEPT_WITHIN`` either way it is *kept* (its ReLU + BatchNorm nets after training: at most 6.5x).
VANISHED_BELOW = 1e-8
KEPT_WITHIN = 30.0


def gradient_flow(first_to_last: float) -> str:
    """Chapter 2's verdict on a first-to-last layer gradient ratio.

    ``"vanished"`` below :data:`VANISHED_BELOW`; ``"kept"`` within a factor :data:`KEPT_WITHIN` of 1;
    otherwise ``"shrunk"`` (smaller than that, not vanished) or ``"grown"`` (larger).
    """
    ratio = float(first_to_last)
    if not np.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"first_to_last must be a positive, finite ratio of gradient norms, got {first_to_last!r}")
    if ratio < VANISHED_BELOW:
        return "vanished"
    if 1 / KEPT_WITHIN <= ratio <= KEPT_WITHIN:
        return "kept"
    return "shrunk" if ratio < 1 else "grown"


@torch.no_grad()
def with_batch_statistics(net: nn.Module, x: Tensor) -> nn.Module:
    """A copy of ``net`` in eval mode whose BatchNorms normalize with the mean and variance of the batch ``x``.

    In eval mode the copy computes on ``x`` what ``net`` computes in training mode, but
    image by image, so it can be differentiated one input at a time. For an untrained
    net, whose running statistics are still 0 and 1, this is how to look at it "as
    trained with" data like ``x``.
    """
    _check_net(net)
    return calibrate_batchnorm(copy.deepcopy(net), x, batch_size=None, exact=True)


class _LineNet(nn.Module):
    """t -> logit ``target`` of ``net`` at the image ``start + t * (end - start)``: a scalar-to-scalar net."""

    def __init__(self, net: nn.Module, start: Tensor, end: Tensor, target: int) -> None:
        super().__init__()
        self.net, self.target = net, target
        self.register_buffer("start", start[None])
        self.register_buffer("direction", (end - start)[None])

    def forward(self, t: Tensor) -> Tensor:
        images = self.start + t.reshape(-1, 1, 1, 1) * self.direction
        return self.net(images)[:, self.target]


def line_gradients(
    net: nn.Module, start: Tensor, end: Tensor, target: int, n_points: int = 256, train_mode: bool | None = None
) -> Tensor:
    """``d logit_target / dt`` at ``n_points`` evenly spaced ``t`` in [0, 1] on the line from ``start`` to ``end``.

    ``train_mode`` (default: the net's current mode) chooses BatchNorm's statistics: in
    training mode, those of the ``n_points`` images on the line, held fixed while
    differentiating, as in chapter 4 (:func:`resnet_lib.measure.gradients.input_gradients`); in
    eval mode, the running statistics. The model's mode and buffers are left as they were.
    """

    _check_net(net)
    if start.shape != end.shape or start.dim() != 3:
        raise ValueError(
            f"start and end must be single images (C, H, W) of one shape, got {tuple(start.shape)}, {tuple(end.shape)}"
        )
    if not 0 <= target < net.fc.out_features:
        raise ValueError(f"target must be a class index in [0, {net.fc.out_features}), got {target}")
    device = next(net.parameters()).device
    with preserved_state(net, train=train_mode):
        line = _LineNet(net, start.to(device), end.to(device), target)
        t = torch.linspace(0.0, 1.0, n_points, device=device)
        return input_gradients(line, t).cpu()


__all__ = [
    "KEPT_WITHIN",
    "VANISHED_BELOW",
    "conv_gradient_norms",
    "gradient_flow",
    "layer_response_std",
    "line_gradients",
    "response_layers",
    "responses_and_logits",
    "with_batch_statistics",
]
