"""CPU thread control: the library's one thread limiter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run PyTorch on ``threads`` intra-op CPU threads inside the block (``None``: leave the setting alone).

    The previous setting is restored on exit, also after an error.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run PyTorch on one CPU thread inside the block (the previous setting is restored after).

    The nets measured in chapters 2 and 4 are small: a second thread buys little, and on a
    busy 2-core machine threads waiting for each other made a step ten to a hundred times
    slower. One thread also makes runs repeat exactly across machines with different core counts.
    """
    with thread_limit(1):
        yield
