"""Borrow a net for a measurement and give it back as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def preserved_state(net: nn.Module, train: bool | None = False, buffers: bool = False) -> Iterator[nn.Module]:
    """Inside the block ``net`` is in training mode ``train`` (``False``: eval, ``None``: as it was).

    On exit, also after an error, ``net`` is back in the mode it had; with ``buffers=True`` its
    buffers (BatchNorm running statistics, batch counters) hold their values from before the block.
    """
    was_training = net.training
    saved = [(b, b.detach().clone()) for b in net.buffers()] if buffers else []
    if train is not None:
        net.train(train)
    try:
        yield net
    finally:
        net.train(was_training)
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


@torch.no_grad()
def calibrate_batchnorm(
    net: nn.Module, x: torch.Tensor, batch_size: int | None = 500, exact: bool = False
) -> nn.Module:
    """Set every BatchNorm's running mean and variance from the images ``x`` (no weight changes); ``net`` in eval mode.

    The statistics are the cumulative average over batches of ``batch_size`` images (``None``: one
    batch), as training leaves them. ``exact=True`` (one batch only) stores the biased variance that
    a training-mode BatchNorm normalizes with, so that in eval mode ``net`` computes on ``x``, image by
    image, exactly what it computes in training mode on the batch ``x``.
    """
    if exact and batch_size is not None and batch_size < len(x):
        raise ValueError(f"exact=True needs x in one batch (batch_size=None), got batch_size={batch_size} < {len(x)}")
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    counts: dict[nn.Module, int] = {}

    def count(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        counts[module] = inputs[0].numel() // inputs[0].shape[1]

    handles = [m.register_forward_pre_hook(count) for m in norms]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over all batches
    step = len(x) if batch_size is None else batch_size
    device = next(net.parameters()).device
    try:
        net.train()
        for i in range(0, len(x), step):
            net(x[i : i + step].to(device))
    finally:
        for h in handles:
            h.remove()
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    if exact:
        for m in norms:
            n = counts[m]
            m.running_var.mul_((n - 1) / n)  # BatchNorm stores the unbiased variance; it normalizes with the biased one
    return net.eval()
