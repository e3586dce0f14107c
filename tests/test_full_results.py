"""Reading finished full-profile results back, with where and how they were made."""

from __future__ import annotations

import json
import shutil

import pytest

import resnet_lib.reproduce as rp
from resnet_lib.data import load_dataset
from resnet_lib.full_results import FULL_RESULTS_ENV, full_results, full_results_dir, load_runs, provenance
from resnet_lib.threads import single_thread
from resnet_lib.training import evaluate

# The full profile's path (45k/5k-style split, validation error, 'full' in every record) at toy size.
TINY_FULL = [
    "--profile", "full", "--dataset", "standin", "--n-train", "256", "--n-val", "64", "--n-test", "128",
    "--image-size", "8", "--width", "4", "--epochs", "1", "--max-steps", "0", "--depths", "8", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    """A results folder made by the reproduction entry point at the full profile (toy sizes)."""
    out = tmp_path_factory.mktemp("full")
    with single_thread():
        assert rp.main([*TINY_FULL, "--families", "plain", "residual", "--seeds", "0", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Evaluate as the runs were trained (one thread), so stored and recomputed errors agree exactly."""
    with single_thread():
        yield


def test_no_results_means_none(tmp_path, monkeypatch):
    monkeypatch.setenv(FULL_RESULTS_ENV, str(tmp_path / "nothing-here"))
    assert full_results_dir() == tmp_path / "nothing-here"
    assert full_results("residual", 56) is None


def test_finished_runs_are_found_through_the_environment(full_dir, monkeypatch):
    monkeypatch.setenv(FULL_RESULTS_ENV, str(full_dir))
    runs = full_results("residual", 8, dataset="standin")
    assert [r.seed for r in runs] == [0, 1]
    assert all(r.profile == "full" and r.label == "ResNet-8" for r in runs)
    assert runs[0].final["step"] == 2 and runs[0].record["val_error"] is not None
    assert (
        full_results("plain", 8, dataset="standin") is not None
        and full_results("residual", 20, dataset="standin") is None
    )


def test_provenance_says_what_made_the_runs(full_dir):
    line = provenance(full_results("plain", 8, directory=full_dir, dataset="standin"))
    assert "procedural stand-in" in line and "'full' profile" in line and "2 seeds" in line
    assert "python -m resnet_lib.reproduce" in line and "cpu" in line
    created = json.loads((full_dir / "runs" / "plain-8-s0.json").read_text())["created"][:10]
    assert created in line
    info = full_results("plain", 8, directory=full_dir, dataset="standin")[0].provenance()
    assert info["world_size"] == 1 and info["command"].startswith("python -m resnet_lib.reproduce --profile full ")


def test_stand_in_runs_never_pass_for_the_papers_scale(full_dir):
    assert full_results("residual", 8, directory=full_dir) is None  # default: CIFAR-10 only
    assert len(full_results("residual", 8, directory=full_dir, dataset=None)) == 2


def test_only_full_profile_runs_count(full_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(full_dir, copy)
    from resnet_lib.results import seal

    for path in (copy / "runs").glob("*.json"):  # as if the sweep had been made at the ci profile
        record = json.loads(path.read_text())
        record["config"]["profile"] = "ci"
        path.write_text(json.dumps(seal(record)))
    assert full_results("residual", 8, directory=copy, dataset="standin") is None
    assert len(load_runs(copy)) == 4 and len(load_runs(copy, profile="ci")) == 4


def test_partial_or_corrupt_records_are_skipped(full_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(full_dir, copy)
    (copy / "runs" / "residual-8-s0.json").write_text('{"format": 1, "comp')
    partial = json.loads((copy / "runs" / "residual-8-s1.json").read_text())
    partial["complete"] = False
    (copy / "runs" / "residual-8-s1.json").write_text(json.dumps(partial))
    (copy / "runs" / "notes.json").write_text("[1, 2, 3]")
    assert full_results("residual", 8, directory=copy, dataset="standin") is None
    assert len(full_results("plain", 8, directory=copy, dataset="standin")) == 2


def test_stored_weights_reproduce_the_stored_test_error(full_dir):
    run = full_results("residual", 8, directory=full_dir, dataset="standin")[1]
    data = load_dataset(rp.make_plan(rp.build_parser().parse_args(TINY_FULL)).experiment.data, verbose=False)
    _, error = evaluate(run.model(), data.test_x, data.test_y)
    assert error == run.final["test_error"]


def test_histories_alone_suffice_but_model_needs_weights(full_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(full_dir, copy)
    for path in (copy / "runs").glob("*.pt"):
        path.unlink()
    (run, _) = full_results("residual", 8, directory=copy, dataset="standin")
    assert run.history.epochs
    with pytest.raises(ValueError, match="only the history is available"):
        run.model()


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of: plain, residual"):
        full_results("dense", 20)


def test_an_edited_record_is_refused_with_one_line_naming_it(full_dir, tmp_path, capsys):
    """Issue 18, finding 5: an edited test_error (or dataset label) was served as it was."""
    copy = tmp_path / "copy"
    shutil.copytree(full_dir, copy)
    path = copy / "runs" / "residual-8-s0.json"
    record = json.loads(path.read_text())
    record["data"]["label"] = "CIFAR-10"
    path.write_text(json.dumps(record))
    capsys.readouterr()
    runs = full_results("residual", 8, directory=copy, dataset=None)
    assert [r.seed for r in runs] == [1]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"skipping {path}:") and "checksum" in line


def test_changed_weights_are_refused_but_the_history_is_kept(full_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(full_dir, copy)
    weights = copy / "runs" / "residual-8-s0.pt"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    run = full_results("residual", 8, directory=copy, dataset="standin")[0]
    assert run.history.epochs
    with pytest.raises(ValueError, match=r"do not match weights_sha256; only the history is available"):
        run.model()
