"""CPU thread control shared by the measurement modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """Run PyTorch on one CPU thread inside the block (the previous setting is restored after).

    The nets measured in chapters 2 and 4 are small: a second thread buys little, and on a
    busy 2-core machine threads waiting for each other made a step ten to a hundred times
    slower. One thread also makes runs repeat exactly across machines with different core counts.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
