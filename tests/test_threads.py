"""The thread limiter restores the setting it found. Every test starts from 3 threads, not the
session's 1 (tests/conftest.py), so that a limiter that forgot to restore would be seen."""

from __future__ import annotations

import pytest
import torch

from resnet_lib.measure import probes
from resnet_lib.threads import single_thread, thread_limit


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_single_thread_sets_one_and_restores_three_also_after_an_error(three_threads):
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(RuntimeError, match="boom"), single_thread():
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize(("threads", "inside"), [(1, 1), (2, 2), (None, 3)])
def test_thread_limit_sets_the_count_or_leaves_it(three_threads, threads, inside):
    with thread_limit(threads):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("threads", [1, "auto", None])
def test_a_linear_probe_leaves_three_threads_as_it_found_them(three_threads, threads):
    x, y = torch.randn(20, 3), torch.arange(20) % 2
    probes.logistic_regression(x, y, num_classes=2, threads=threads)
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "two"])
def test_a_bad_thread_count_is_one_line_error(bad):
    with pytest.raises(ValueError, match="threads must be a positive int or None") as info, thread_limit(bad):
        pass
    assert "\n" not in str(info.value)
