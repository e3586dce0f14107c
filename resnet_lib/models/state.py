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
