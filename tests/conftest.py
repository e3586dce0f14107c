"""Shared fixtures: every test runs hermetically, with its own cache and data folders.

* ``RESNET_BOOK_RESULTS`` and ``RESNET_BOOK_DATA`` point at fresh temporary folders, so no
  test reads or writes the reader's ``~/.cache/resnet_book``.
* ``RESNET_BOOK_PROFILE`` and ``RESNET_BOOK_DATASET`` are unset and the profile override
  cleared, before and after.
* Downloading CIFAR-10 fails at once (no test touches the network); a test that wants
  another behaviour patches ``resnet_lib.data._download_cifar10`` itself.
* PyTorch uses one intra-op thread: unit tests run on tiny tensors, where a second thread
  gains nothing, and on a shared, oversubscribed machine two spinning threads made a tiny
  ``fit`` 6x slower (7.4 s instead of 1.1 s of CPU time, measured).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import resnet_lib.data
import resnet_lib.profiles
import resnet_lib.results

# _config.yml loads the Sphinx extension _ext/kernel_wakeup.py (the widget-book hang of issue 31) from beside
# itself; a test that builds a small book from a copy of _config.yml finds it through PYTHONPATH instead.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(Path(__file__).resolve().parents[1] / "_ext"), os.environ.get("PYTHONPATH")) if p
)

#: nbval's per-cell timeout when `make test` runs the notebooks (``pytest tests book --nbval-lax``): the
#: book build's own (``_config.yml``, ``execute.timeout``) instead of nbval's default of 2000 s, so a cell that
#: hangs fails in 15 minutes, well inside CI's 90-minute limit. An explicit ``--nbval-cell-timeout`` wins.
NBVAL_CELL_TIMEOUT_S = 900
_NBVAL_DEFAULT_CELL_TIMEOUT_S = 2000


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "nbval_cell_timeout", None) == _NBVAL_DEFAULT_CELL_TIMEOUT_S:
        config.option.nbval_cell_timeout = NBVAL_CELL_TIMEOUT_S


def _no_network(root, timeout_s):
    raise OSError("network disabled in tests")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One intra-op thread for the whole session, restored at the end."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory, monkeypatch):
    """Temporary results and data folders, the default profile, and no downloads."""
    monkeypatch.setenv(resnet_lib.results.RESULTS_ENV, str(tmp_path_factory.mktemp("results")))
    monkeypatch.setenv(resnet_lib.data.DATA_ENV, str(tmp_path_factory.mktemp("data")))
    monkeypatch.delenv(resnet_lib.profiles.PROFILE_ENV, raising=False)
    monkeypatch.delenv(resnet_lib.data.DATASET_ENV, raising=False)  # `make test`'s stand-in pass sets it
    monkeypatch.setattr(resnet_lib.profiles, "_override", None)  # as set_profile(None), undone afterwards
    monkeypatch.setattr(resnet_lib.data, "_download_cifar10", _no_network)
