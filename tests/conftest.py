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

import pytest
import torch

import resnet_lib.data
import resnet_lib.profiles
import resnet_lib.results


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
