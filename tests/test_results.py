"""The results cache: keyed by everything that shaped a run, written atomically, corruption detected."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace

import pytest
import torch

import resnet_lib.results as results
import resnet_lib.runs as runs
from resnet_lib.profiles import CifarExperiment, DataSpec
from resnet_lib.recipe import Recipe
from resnet_lib.results import load_or_run, read_run, result_key
from resnet_lib.runs import cifar_run
from resnet_lib.training import History, resolve_precision

CONFIG = {"model": {"family": "residual", "depth": 8}, "recipe": {"lr": 0.1}, "seed": 0, "profile": "ci"}
EPOCH = {"epoch": 1, "step": 2, "lr": 0.1, "train_loss": 2.0, "train_error": 0.5, "test_loss": 2.1, "test_error": 0.25}
DATA = {"name": "standin", "label": "test data", "n_train": 64, "n_val": 0, "n_test": 32, "image_size": 8}


def run_record() -> dict:
    """What ``run`` returns besides weights: a history and a data description, as cifar_run's."""
    return {"history": History(epochs=[{**EPOCH, "seconds": 0.1}], step_losses=[2.3, 2.0]).to_dict(), "data": DATA}


class Runner:
    """A stand-in for training: counts its calls and returns a record and small weights."""

    def __init__(self, weights: bool = True):
        self.calls, self.checkpoints, self.weights = 0, [], weights

    def __call__(self, checkpoint):
        self.calls += 1
        self.checkpoints.append(checkpoint)
        checkpoint.write_bytes(b"half-way state")  # as fit() would, epoch by epoch
        state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)} if self.weights else None
        return run_record(), state


def test_a_finished_run_is_stored_and_then_loaded(tmp_path):
    runner = Runner()
    first = load_or_run("net", CONFIG, runner, directory=tmp_path)
    assert runner.calls == 1 and not first.from_cache
    key = result_key({"name": "net", **CONFIG})
    assert {p.name for p in tmp_path.iterdir()} == {f"net-{key}.json", f"net-{key}.pt"}  # no tmp, no checkpoint
    assert runner.checkpoints == [tmp_path / f"net-{key}.ckpt"]
    record = json.loads((tmp_path / f"net-{key}.json").read_text())
    assert record["complete"] is True and record["key"] == key and record["config"] == CONFIG
    assert record["library_hash"] == results.library_source_hash() and record["history"]["epochs"]
    assert {"platform", "python", "torch", "device", "threads"} <= set(record["machine"])
    second = load_or_run("net", CONFIG, runner, directory=tmp_path)
    assert runner.calls == 1 and second.from_cache and second.record == record
    state = torch.load(second.weights_path, weights_only=True)
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3)) and torch.equal(state["b"], torch.ones(2))


def test_load_weights_restores_a_model(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)

    def run(checkpoint):
        return run_record(), model.state_dict()

    stored = load_or_run("lin", {"x": 1}, run, directory=tmp_path)
    fresh = stored.load_weights(torch.nn.Linear(3, 2))
    assert torch.equal(fresh.weight, model.weight) and torch.equal(fresh.bias, model.bias)
    no_weights = load_or_run("none", {"x": 1}, Runner(weights=False), directory=tmp_path)
    assert no_weights.weights_path is None and no_weights.record["weights_sha256"] is None
    assert load_or_run("none", {"x": 1}, Runner(weights=False), directory=tmp_path).from_cache
    with pytest.raises(ValueError, match="stored no weights"):
        no_weights.load_weights(torch.nn.Linear(3, 2))


def test_results_go_to_the_folder_the_environment_names(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "cache"))
    load_or_run("net", CONFIG, Runner())
    assert len(list((tmp_path / "cache").glob("net-*.json"))) == 1


def _corrupt(json_path, how):
    weights = json_path.with_suffix(".pt")
    if how == "truncated json":
        json_path.write_bytes(json_path.read_bytes()[:40])
    elif how == "empty json":
        json_path.write_bytes(b"")
    elif how == "not a record":
        json_path.write_text("[1, 2, 3]")
    elif how in ("no complete flag", "complete false", "old format"):
        record = json.loads(json_path.read_text())
        if how == "no complete flag":
            del record["complete"]
        elif how == "complete false":
            record["complete"] = False
        else:
            record["format"] = -1
        json_path.write_text(json.dumps(record))
    elif how == "weights changed":
        data = bytearray(weights.read_bytes())
        data[-20] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif how == "weights truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "weights missing":
        weights.unlink()
    elif how == "binary garbage":
        json_path.write_bytes(bytes(range(256)))
    elif how in ("edited test_error", "edited config", "edited label", "no history", "history not a history"):
        record = json.loads(json_path.read_text())
        if how == "edited test_error":
            record["history"]["epochs"][-1]["test_error"] = 0.01
        elif how == "edited config":
            record["config"]["seed"] = 7
        elif how == "edited label":
            record["data"]["label"] = "CIFAR-10"
        elif how == "no history":
            del record["history"]
        else:
            record["history"] = {"epochs": "many"}
        json_path.write_text(json.dumps(record))


CORRUPTIONS = [
    "truncated json",
    "empty json",
    "not a record",
    "no complete flag",
    "complete false",
    "old format",
    "weights changed",
    "weights truncated",
    "weights missing",
    "binary garbage",
    # Issue 18, finding 5: these were served as they were (or raised KeyError on every load).
    "edited test_error",
    "edited config",
    "edited label",
    "no history",
    "history not a history",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_a_corrupt_or_partial_result_is_detected_and_recomputed(tmp_path, capsys, how):
    runner = Runner()
    stored = load_or_run("net", CONFIG, runner, directory=tmp_path)
    json_path = tmp_path / f"net-{stored.record['key']}.json"
    _corrupt(json_path, how)
    assert read_run(json_path) is None
    capsys.readouterr()
    again = load_or_run("net", CONFIG, runner, directory=tmp_path)
    assert runner.calls == 2 and not again.from_cache
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{json_path.name} is corrupt or partial (") and line.endswith("); running it again")
    third = load_or_run("net", CONFIG, runner, directory=tmp_path)
    assert runner.calls == 2 and third.from_cache  # repaired


def test_an_interrupted_run_stores_nothing_and_keeps_its_checkpoint(tmp_path):
    def interrupted(checkpoint):
        checkpoint.write_bytes(b"epoch 1 state")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_or_run("net", CONFIG, interrupted, directory=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"net-{result_key({'name': 'net', **CONFIG})}.ckpt"]
    found = []

    def resume(checkpoint):
        found.append(checkpoint.read_bytes())
        return run_record(), None

    load_or_run("net", CONFIG, resume, directory=tmp_path)
    assert found == [b"epoch 1 state"]  # the second attempt saw the first one's checkpoint
    assert not any(p.suffix == ".ckpt" for p in tmp_path.iterdir())


def test_the_key_changes_with_anything_that_shaped_the_run(monkeypatch):
    base = result_key(CONFIG)
    assert result_key(dict(reversed(list(CONFIG.items())))) == base  # order does not matter
    for change in (
        {"seed": 1},
        {"profile": "default"},
        {"recipe": {"lr": 0.01}},
        {"model": {"family": "plain", "depth": 8}},
        {"extra": None},
    ):
        assert result_key({**CONFIG, **change}) != base, change
    monkeypatch.setattr(results, "library_source_hash", lambda: "0" * 64)
    assert result_key(CONFIG) != base  # another library source, another key


def test_the_library_hash_covers_its_source(tmp_path, monkeypatch):
    copy = tmp_path / "resnet_lib"
    shutil.copytree(results.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def fresh_hash() -> str:
        results.library_source_hash.cache_clear()
        return results.library_source_hash()

    try:
        with monkeypatch.context() as m:
            m.setattr(results, "PACKAGE_DIR", copy)
            original = fresh_hash()
            assert fresh_hash() == original  # stable
            (copy / "training.py").write_text((copy / "training.py").read_text() + "\n# a comment\n")
            edited = fresh_hash()
            (copy / "models" / "new_model.py").write_text("X = 1\n")
            added = fresh_hash()
        assert len({original, edited, added}) == 3
    finally:
        results.library_source_hash.cache_clear()  # back to the real package's hash


def test_cifar_run_trains_once_then_loads(capsys):
    experiment = CifarExperiment(
        data=DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8),
        recipe=Recipe(epochs=1, batch_size=32),
        width=4,
        depths=(8,),
    )
    first = cifar_run("plain", 8, experiment, progress=False)
    assert not first.stored.from_cache and first.label == "plain-8"
    assert first.dataset_label.startswith("procedural stand-in")  # the figure titles' source
    assert first.stored.record["data"]["name"] == "standin"
    second = cifar_run("plain", 8, experiment, progress=False)
    assert second.stored.from_cache and second.history == first.history
    assert second.stored.record["config"]["profile"] == "default"
    model = second.model()
    assert not model.training and model.name == "plain-8"
    residual = cifar_run("residual", 8, experiment, progress=False)
    assert not residual.stored.from_cache  # another family, another key


def test_cifar_run_keys_what_changes_the_arithmetic(monkeypatch):
    """Threads and precision change a run's numbers, so they are part of its key (and recorded)."""
    experiment = CifarExperiment(
        data=DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8),
        recipe=Recipe(epochs=1, batch_size=32, precision="auto"),
        width=4,
        depths=(8,),
    )
    first = cifar_run("plain", 8, experiment, progress=False)
    config = first.stored.record["config"]
    assert config["numerics"] == {"device": "cpu", "threads": torch.get_num_threads()}
    assert config["recipe"]["precision"] == resolve_precision("auto", "cpu")  # resolved, never "auto"
    assert first.history.precision == config["recipe"]["precision"]
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        assert not cifar_run("plain", 8, experiment, progress=False).stored.from_cache
    finally:
        torch.set_num_threads(before)
    assert cifar_run("plain", 8, experiment, progress=False).stored.from_cache
    monkeypatch.setattr(runs, "resolve_precision", lambda precision, device: "fp32")
    fp32 = cifar_run("plain", 8, experiment, progress=False)
    assert fp32.stored.record["config"]["recipe"]["precision"] == "fp32"
    assert fp32.stored.from_cache == (config["recipe"]["precision"] == "fp32")


def test_cifar_run_trains_deep_nets_with_the_experiments_deep_warmup():
    experiment = CifarExperiment(
        data=DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8),
        recipe=Recipe(epochs=1, batch_size=32),
        width=4,
        depths=(8,),
        deep_warmup_from=8,
        deep_warmup_steps=1,
    )
    recipe = cifar_run("residual", 8, experiment, progress=False).stored.record["config"]["recipe"]
    assert (recipe["warmup_steps"], recipe["warmup_lr"]) == (1, 0.01)
    shallow = replace(experiment, deep_warmup_from=14)  # ResNet-8 is not deep enough to need it there
    assert cifar_run("residual", 8, shallow, progress=False).stored.record["config"]["recipe"]["warmup_lr"] is None


# ----------------------------------------------------------------------------- issue 18: runs that never lie

TINY = CifarExperiment(
    data=DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8),
    recipe=Recipe(epochs=1, batch_size=32),
    width=4,
    depths=(8,),
)


def test_cifar_run_records_the_images_it_used(monkeypatch):
    """Finding 3: the key recorded the size asked for, not the one used (n_train=None: all there are)."""
    from pathlib import Path

    from tests.test_data import write_cifar_folder

    write_cifar_folder(Path(os.environ["RESNET_BOOK_DATA"]))  # 20 training and 6 test images
    runs.experiment_data.cache_clear()
    every = replace(TINY, data=DataSpec(dataset="cifar10", n_train=None, n_test=None, image_size=8))
    try:
        run = cifar_run("plain", 8, every, progress=False)
        assert run.stored.record["config"]["data"]["used"] == {"n_train": 20, "n_val": 0, "n_test": 6}
        too_many = replace(TINY, data=DataSpec(dataset="cifar10", n_train=1000, image_size=8))
        with pytest.raises(ValueError, match="holds only 20"):
            cifar_run("plain", 8, too_many, progress=False)
    finally:
        runs.experiment_data.cache_clear()


def test_identical_runs_write_identical_weight_bytes(tmp_path, monkeypatch):
    """Finding 6: the temporary file's name (with the process id) ended up inside the .pt."""
    shas, blobs = [], []
    for pid in (1111, 2222):  # two processes, as two sessions would be
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / str(pid)))
        run = cifar_run("plain", 8, TINY, progress=False)
        assert not run.stored.from_cache
        shas.append(run.stored.record["weights_sha256"])
        blobs.append(run.stored.weights_path.read_bytes())
    assert blobs[0] == blobs[1] and shas[0] == shas[1]


def _refuse_writes(monkeypatch, folder):
    """Make ``folder`` unwritable: by its mode, or (as root, whom modes do not stop) by failing renames into it."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o500)
    probe = folder / "probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return  # the mode works
    real_replace = os.replace

    def replace_(src, dst, *args, **kwargs):
        if str(dst).startswith(str(folder)):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_)


def test_an_unwritable_results_folder_is_refused_before_any_training(tmp_path, monkeypatch):
    """Finding 6: a read-only results folder cost a full epoch before a Permission denied naming no file."""
    folder = tmp_path / "read-only"
    _refuse_writes(monkeypatch, folder)
    monkeypatch.setenv(results.RESULTS_ENV, str(folder))

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the results folder")

    monkeypatch.setattr(runs, "fit", no_training)
    try:
        with pytest.raises(results.ResultsFolderError, match=r"results folder .*read-only is not writable") as err:
            cifar_run("plain", 8, TINY, progress=False)
        assert "\n" not in str(err.value)
    finally:
        folder.chmod(0o700)


# ----------------------------------------------------------------------------- a named store (reproduce's)


def test_a_named_store_refuses_a_run_made_with_other_settings(tmp_path, capsys):
    """``RunStore(by_key=False)``: files named after the run, keyed by its configuration alone; another
    configuration under the same name is a one-line conflict, never replaced or retrained silently."""
    store = results.RunStore(tmp_path, by_key=False)
    assert store.key("net", CONFIG) == results.config_key(CONFIG)
    assert store.record_path("net", CONFIG) == tmp_path / "net.json"
    checkpoint = store.checkpoint_path("net", CONFIG)
    assert checkpoint == tmp_path / f"net-{results.config_key(CONFIG)}.ckpt"
    checkpoint.write_bytes(b"half-way state")
    written = store.write("net", CONFIG, run_record(), {"w": torch.ones(2)})
    assert not checkpoint.exists(), "a stored run's checkpoint is removed"
    assert {p.name for p in tmp_path.iterdir()} == {"net.json", "net.pt"}
    found = store.find("net", CONFIG)
    assert found.from_cache and found.record == written.record and found.record["key"] == store.key("net", CONFIG)
    other = {**CONFIG, "recipe": {"lr": 0.01}}
    with pytest.raises(results.RunConflictError) as err:
        store.find("net", other)
    assert str(err.value) == f"{tmp_path / 'net.json'} was made with other settings (recipe.lr: 0.1 there, 0.01 now)"
    (tmp_path / "net.pt").unlink()
    capsys.readouterr()
    lines = []
    assert store.find("net", CONFIG, say=lines.append) is None  # its weights are lost: made again
    assert len(lines) == 1 and lines[0].startswith("net.json is corrupt or partial (") and "net.pt" in lines[0]
    assert [r.record["name"] for r in store.runs()] == ["net"]  # a history alone is still read back
    assert store.runs(weights="required", say=lines.append) == [] and lines[1].startswith("skipping ")


def test_a_stored_run_that_is_not_a_cifar_run_is_refused_as_one(tmp_path, capsys):
    from resnet_lib.full_results import load_runs, sweep_store

    stored = sweep_store(tmp_path).write("net", CONFIG, run_record(), None)  # no width, no shortcut
    with pytest.raises(results.RunRecordError, match=r"net\.json: its config is not a CIFAR run's"):
        runs.CifarRun.from_stored(stored)
    cifar = {"model": {"family": "dense", "depth": 8, "width": 4, "shortcut": "A"}, "seed": 0, "profile": "ci"}
    dense = sweep_store(tmp_path).write("dense", cifar, run_record(), None)  # a family the book does not have
    with pytest.raises(results.RunRecordError, match=r"dense\.json: its config is not a CIFAR run's"):
        runs.CifarRun.from_stored(dense)
    good = sweep_store(tmp_path).write(
        "plain", {**cifar, "model": {**cifar["model"], "family": "plain"}}, run_record(), None
    )
    assert runs.CifarRun.from_stored(good).label == "plain-8"
    capsys.readouterr()
    assert [r.label for r in load_runs(tmp_path)] == ["plain-8"]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"skipping {tmp_path / 'runs' / n}.json" for n in ("dense", "net")
    ]
    assert all(line.endswith("its config is not a CIFAR run's (model, seed, profile)") for line in lines)


def test_sealed_files_are_read_back_only_while_they_verify(tmp_path):
    path = tmp_path / "sweep.json"
    sealed = results.write_sealed(path, {"settings": {"width": 4}, "depths": (8, 20)})
    assert results.read_sealed(path) == sealed and sealed["depths"] == [8, 20]  # as JSON reads it back
    path.write_text(path.read_text().replace('"width": 4', '"width": 5'))
    assert results.read_sealed(path) is None
    path.write_text('{"settings": {"prof')
    assert results.read_sealed(path) is None and results.read_sealed(tmp_path / "missing.json") is None


# ----------------------------------------------------------------------------- issue 31: nothing unverified is loaded


def test_a_deeply_nested_record_is_refused_in_one_line(tmp_path, capsys):
    """Row 13: a record of 100,000 nested ``[`` raised a RecursionError traceback from json.loads."""
    runner = Runner()
    stored = load_or_run("net", CONFIG, runner, directory=tmp_path)
    json_path = tmp_path / f"net-{stored.record['key']}.json"
    json_path.write_text("[" * 100_000)
    with pytest.raises(results.RunRecordError) as err:
        results.verify_run(json_path)
    assert str(err.value) == f"{json_path}: not readable JSON (nested too deeply)"
    assert results.read_sealed(json_path) is None
    capsys.readouterr()
    load_or_run("net", CONFIG, runner, directory=tmp_path)  # served? no: made again, with one line
    assert runner.calls == 2 and "nested too deeply" in capsys.readouterr().out


def test_the_atomic_writer_never_writes_through_a_planted_symlink(tmp_path):
    """Row 15: a symlink planted at the writer's temporary name (``.<name>.<pid>.tmp``) was written through."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    target = tmp_path / "record.json"
    for name in (f".{target.name}.{os.getpid()}.tmp", f".{target.name}.tmp", f"{target.name}.tmp"):
        (tmp_path / name).symlink_to(victim)
    results.atomic_write_bytes(target, b"new contents")
    assert victim.read_bytes() == b"precious", "the symlink's target was clobbered"
    assert target.read_bytes() == b"new contents" and not target.is_symlink()
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~results._UMASK)  # as open() would make it
    leftovers = {p.name for p in tmp_path.iterdir()} - {"victim.txt", "record.json"}
    assert all((tmp_path / n).is_symlink() for n in leftovers), "no temporary file is left behind"


def test_the_results_folder_from_the_environment_is_expanded_and_absolute(tmp_path, monkeypatch):
    """Row 16: RESNET_BOOK_RESULTS='~/c' made a literal ./~ folder; a relative one moved with the working directory."""
    from resnet_lib.full_results import FULL_RESULTS_ENV, full_results_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(results.RESULTS_ENV, "~/c")
    assert results.results_dir() == tmp_path / "home" / "c"
    monkeypatch.setenv(FULL_RESULTS_ENV, "~/full")
    assert full_results_dir() == tmp_path / "home" / "full"
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv(results.RESULTS_ENV, "relative-cache")
    first = results.results_dir()
    assert first.is_absolute() and first == tmp_path / "here" / "relative-cache"
    monkeypatch.chdir(tmp_path / "there")
    assert results.results_dir() == first, "the cache moved with the working directory"
    load_or_run("net", CONFIG, Runner())
    assert len(list(first.glob("net-*.json"))) == 1 and not (tmp_path / "there" / "relative-cache").exists()


def _reject_constant(name: str):
    raise ValueError(f"bare {name} is not JSON")


def test_non_finite_numbers_are_written_as_strict_json_and_read_back(tmp_path):
    """Row 17: a diverged run's NaN was written as a bare NaN, which strict JSON readers refuse."""
    history = History(epochs=[{**EPOCH, "seconds": 0.1, "test_loss": float("inf")}], step_losses=[2.3, float("nan")])
    history.mark_diverged(1, "training loss is nan")

    def diverged(checkpoint):
        return {"history": history.to_dict(), "data": DATA, "val_loss": float("-inf")}, None

    stored = load_or_run("nan", CONFIG, diverged, directory=tmp_path)
    text = stored.json_path.read_text()
    strict = json.loads(text, parse_constant=_reject_constant)  # what a strict reader sees: no NaN, no Infinity
    assert strict["history"]["step_losses"][1] == {"$float": "NaN"}
    assert strict["history"]["epochs"][0]["test_loss"] == {"$float": "Infinity"}
    assert strict["val_loss"] == {"$float": "-Infinity"}
    back = results.verify_run(stored.json_path)  # checksum and schema hold, the floats come back
    assert math.isnan(back.record["history"]["step_losses"][1]) and back.record["val_loss"] == float("-inf")
    assert back.record["history"]["epochs"][0]["test_loss"] == float("inf")
    # A record written before (bare NaN, same checksum) is still read.
    stored.json_path.write_text(json.dumps(back.record))
    assert "NaN" in stored.json_path.read_text()
    assert math.isnan(results.verify_run(stored.json_path).record["history"]["step_losses"][1])
