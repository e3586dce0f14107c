"""Runs: one call trains or loads a net; several train in one process per core, exactly as one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import resnet_lib.runs as runs_mod
from resnet_lib.profiles import CifarExperiment, DataSpec, profile_name, set_profile
from resnet_lib.recipe import Recipe
from resnet_lib.results import results_dir

TINY = CifarExperiment(
    data=DataSpec(dataset="standin", n_train=96, n_test=32, image_size=8),
    recipe=Recipe(epochs=2, batch_size=32),
    width=4,
    depths=(8,),
    seeds=(0, 1),
)


def _histories(runs):
    """What each run computed: every epoch's numbers but its wall time, and every step's loss."""
    epochs = [[{k: v for k, v in e.items() if k != "seconds"} for e in r.history.epochs] for r in runs]
    return [(r.family, r.depth, r.seed, e, r.history.step_losses) for r, e in zip(runs, epochs, strict=True)]


def test_worker_count_is_one_per_core_only_where_torch_runs_one_thread(monkeypatch):
    monkeypatch.setattr(runs_mod.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert torch.get_num_threads() == 1  # the test session runs PyTorch on one thread (conftest)
    assert runs_mod.worker_count(8) == 2 and runs_mod.worker_count(1) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert runs_mod.worker_count(8) == 1  # PyTorch's own threads use the cores already


@pytest.mark.slow
def test_runs_trained_in_worker_processes_equal_runs_trained_here(tmp_path, monkeypatch):
    jobs = [("residual", 8, 0), ("plain", 8, 1), ("residual", 8, 1)]
    assert not any(runs_mod.is_stored(f, d, TINY, seed=s) for f, d, s in jobs)
    pooled = runs_mod.train_runs(jobs, TINY, progress=False, workers=2)
    assert all(runs_mod.is_stored(f, d, TINY, seed=s) for f, d, s in jobs)
    assert all(r.stored.from_cache for r in pooled)  # trained by the workers, read back here
    assert [(r.family, r.depth, r.seed) for r in pooled] == jobs  # in the order asked for
    monkeypatch.setenv("RESNET_BOOK_RESULTS", str(tmp_path / "elsewhere"))
    here = runs_mod.train_runs(jobs, TINY, progress=False, workers=1)
    assert not any(r.stored.from_cache for r in here)
    assert _histories(here) == _histories(pooled)  # bit for bit: same seeds, one thread each
    for a, b in zip(here, pooled, strict=True):
        wa, wb = a.model().state_dict(), b.model().state_dict()
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert results_dir() == tmp_path / "elsewhere"


def test_train_experiment_asks_for_both_families_every_depth_and_seed(monkeypatch):
    asked = []
    monkeypatch.setattr(runs_mod, "train_runs", lambda jobs, experiment, progress: asked.extend(jobs) or [])
    runs_mod.train_experiment(TINY)
    assert asked == [("plain", 8, 0), ("plain", 8, 1), ("residual", 8, 0), ("residual", 8, 1)]


def _write_what_the_worker_runs_at(path: str) -> None:
    """A job of the tests below: the worker's profile and thread count, in a file."""
    Path(path).write_text(f"{profile_name()} {torch.get_num_threads()}")


def _fail_if(message: str) -> None:
    if message:
        raise ValueError(message)


def test_train_in_workers_leaves_one_worker_or_one_job_to_the_caller():
    never = lambda *job: pytest.fail("trained in a worker")
    assert runs_mod.train_in_workers([(1,), (2,)], never, workers=1, progress=False) is False
    assert runs_mod.train_in_workers([(1,)], never, workers=2, progress=False) is False
    assert runs_mod.train_in_workers([], never, workers=2, progress=False) is False


@pytest.mark.slow
def test_train_in_workers_runs_every_job_on_one_thread_at_this_profile(tmp_path):
    set_profile("ci")
    paths = [tmp_path / f"job{i}" for i in range(3)]
    jobs = [(str(p),) for p in paths]
    assert runs_mod.train_in_workers(jobs, _write_what_the_worker_runs_at, workers=2, progress=False) is True
    assert [p.read_text() for p in paths] == ["ci 1"] * 3
    with pytest.raises(ValueError, match="a worker's error"):
        runs_mod.train_in_workers([("a worker's error",), ("",)], _fail_if, workers=2, progress=False)
