"""``python -m resnet_lib.reproduce``: options, one results file per run, resuming, and 2-process DDP (gloo).

Every sweep here is tiny (8x8 stand-in images, width 4, depth 8, 2 epochs of 2 iterations):
the point is the machinery, not the numbers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import resnet_lib.reproduce as rp
from resnet_lib.threads import single_thread
from resnet_lib.training import resolve_precision

TINY = [
    "--profile", "ci", "--dataset", "standin", "--n-train", "256", "--n-test", "128", "--image-size", "8",
    "--width", "4", "--epochs", "2", "--depths", "8", "--seeds", "0", "--no-progress",
    "--batch-size", "128", "--warmup-steps", "0",
]  # fmt: skip
# The recipe is pinned here (2 iterations per epoch, the peak rate from the first step), so these
# tests do not move when the ci profile's recipe is retuned for the book.


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets are all overhead; one thread keeps them fast and steady on a busy 2-core machine."""
    with single_thread():
        yield


def _sweep(out: Path, *extra: str) -> None:
    assert rp.main([*TINY, "--out", str(out), *extra]) == 0


def _history_without_times(path: Path) -> dict:
    history = json.loads(path.read_text())["history"]
    for epoch in history["epochs"]:
        epoch.pop("seconds")
    return history


# ----------------------------------------------------------------------------- options


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        rp.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in rp.build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text, f"{flag} is missing from --help"
        assert action.help, f"{action.option_strings} has no help text"
    for topic in ("torchrun", "resuming", "summary.md", "fig6.png", "Table 6"):
        assert topic in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--depths", "21"], "depth must be 6n+2"),
        (["--seeds", "-1"], "expected a number >= 0"),
        (["--profile", "huge"], "invalid choice: 'huge'"),
        (["--image-size", "12"], "invalid choice: 12"),
        (["--lr", "0"], "expected a positive number"),
        (["--epochs", "two"], "expected a whole number"),
        (["--families", "dense"], "invalid choice: 'dense'"),
        (["--n-train", "100", "--batch-size", "128"], "smaller than one batch"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--precision", "fp16"], "invalid choice: 'fp16'"),
        # Issue 31, row 12: each of these failed deep inside training (or overflowed) with a traceback.
        (["--lr", "1e308"], "expected a positive number at most 1000, got '1e308'"),
        (["--width", "100000"], "expected a number from 1 to 256, got 100000"),
        (["--seeds", str(2**63 - 1)], "expected a number from 0 to 4294967295, got 9223372036854775807"),
        (["--rendezvous-timeout", "0"], "expected a positive number"),
        # Issue 34: several runs at once.
        (["--runs-per-gpu", "0"], "argument --runs-per-gpu: expected a number >= 1, got 0"),
        (["--runs-per-gpu", "33"], "expected a number from 1 to 32, got 33"),
        (["--runs-per-gpu", "two"], "expected a whole number, got 'two'"),
        (["--worker", "2/2"], "expected I/N with 0 <= I < N, got '2/2'"),
    ],
)
def test_bad_options_get_one_clear_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        rp.main([*argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, "one line, not a usage block or a traceback"
    assert err[0].startswith("python -m resnet_lib.reproduce: error:") and message in err[0], err
    assert not (tmp_path / "out").exists(), "nothing is written for a bad command"


def test_the_full_profile_is_the_papers_recipe():
    plan = rp.make_plan(rp.build_parser().parse_args(["--profile", "full"]))
    recipe, data = plan.experiment.recipe, plan.experiment.data
    assert (data.dataset, data.n_val, data.image_size, plan.experiment.width) == ("cifar10", 5000, 32, 16)
    assert (recipe.batch_size, recipe.lr, recipe.momentum, recipe.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert recipe.total_steps(352) == 64_000  # 45k images / 128 = 352 iterations per epoch
    lrs = [recipe.lr_at(s, 64_000) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert plan.depths == (20, 32, 44, 56, 110)
    warm = plan.experiment.recipe_for(110)  # the paper's ResNet-110 warm-up: 0.01 for 400 iterations, then 0.1
    assert [warm.lr_at(s, 64_000) for s in (0, 399, 400)] == pytest.approx([0.01, 0.01, 0.1])
    assert plan.experiment.recipe_for(56) == recipe
    assert recipe.precision == "fp32"  # the paper's arithmetic, unless --precision says otherwise


def test_auto_precision_is_resolved_before_any_run_is_keyed():
    parse = rp.build_parser().parse_args
    auto = rp.make_plan(parse(["--profile", "ci", "--precision", "auto"])).experiment.recipe.precision
    assert auto == resolve_precision("auto", "cpu")
    plan = rp.make_plan(parse(["--profile", "full", "--precision", "auto", "--device", "cpu"]))
    assert plan.config("residual", 20, 0)["recipe"]["precision"] == resolve_precision("auto", "cpu")
    assert rp.make_plan(parse(["--profile", "ci", "--precision", "fp32"])).experiment.recipe.precision == "fp32"


# ----------------------------------------------------------------------------- one process


def test_sweep_writes_one_file_per_run_a_summary_and_a_plot(tmp_path):
    out = tmp_path / "out"
    _sweep(out, "--families", "plain", "residual", "--seeds", "0", "1")
    names = sorted(p.name for p in (out / "runs").iterdir())
    expected = [f"{f}-8-s{s}.{ext}" for f in ("plain", "residual") for s in (0, 1) for ext in ("json", "pt")]
    assert names == sorted(expected), "one results file (and weights) per run, no checkpoints left"
    record = json.loads((out / "runs" / "residual-8-s1.json").read_text())
    assert record["complete"] and record["config"]["seed"] == 1 and record["machine"]["world_size"] == 1
    assert [e["step"] for e in record["history"]["epochs"]] == [2, 4]
    summary = (out / "summary.md").read_text()
    assert "| ResNet-8 | 5,006 | 2 | 4 |" in summary and "not CIFAR-10" in summary and "±" in summary
    csv_rows = (out / "summary.csv").read_text().splitlines()
    assert len(csv_rows) == 3 and csv_rows[0].startswith("model,family,depth,parameters,seeds")
    assert (out / "fig6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bf16_sweep_records_its_arithmetic(tmp_path):
    out = tmp_path / "out"
    _sweep(out, "--families", "residual", "--precision", "bf16")
    record = json.loads((out / "runs" / "residual-8-s0.json").read_text())
    assert record["config"]["recipe"]["precision"] == record["history"]["precision"] == "bf16"
    assert all(math.isfinite(v) for v in record["history"]["step_losses"])
    assert json.loads((out / "sweep.json").read_text())["settings"]["recipe"]["precision"] == "bf16"


def test_summary_sits_beside_the_papers_table_6():
    from resnet_lib.results import StoredRun
    from resnet_lib.runs import CifarRun
    from resnet_lib.training import History

    run = {"config": {"profile": "full"}, "data": {"label": "CIFAR-10", "name": "cifar10"}, "parameters": 853_018}
    runs = []
    for seed, err in enumerate((0.07, 0.08)):
        epochs = [{"epoch": 1, "step": 64_000, "train_error": 0.01, "test_error": err}]
        stored = StoredRun({**run, "val_error": None}, None, True)
        runs.append(CifarRun("residual", 56, seed, History(epochs=epochs), stored, 16, "A"))
    (row,) = rp.summary_rows(runs)
    assert row["paper_test_error"] == 6.97 and row["test_error"] == "7.50 ± 0.71"
    assert row["test_error_mean"] == pytest.approx(7.5)


def test_a_finished_sweep_is_read_back_not_redone(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _sweep(out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("resnet_lib.reproduce.sweep.fit", no_training)
    capsys.readouterr()
    _sweep(out)
    text = capsys.readouterr().out
    assert "0 trained, 2 finished before" in text
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == before


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _sweep(whole, "--families", "residual")
    _sweep(cut, "--families", "residual", "--stop-after-epochs", "1")
    assert "1 interrupted" in capsys.readouterr().out
    assert not (cut / "runs" / "residual-8-s0.json").exists()
    assert len(list((cut / "runs").glob("residual-8-s0-*.ckpt"))) == 1
    _sweep(cut, "--families", "residual")
    assert "1 trained" in capsys.readouterr().out
    assert not list((cut / "runs").glob("*.ckpt")), "the checkpoint is removed once the run is stored"
    resumed = _history_without_times(cut / "runs" / "residual-8-s0.json")
    assert resumed == _history_without_times(whole / "runs" / "residual-8-s0.json")


def test_a_folder_made_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    _sweep(out, "--families", "plain")
    capsys.readouterr()
    assert rp.main([*TINY, "--out", str(out), "--epochs", "3"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "other settings" in err and "recipe.epochs: 2 there, 3 now" in err


# ----------------------------------------------------------------------------- issue 18: runs that never lie


def test_an_exploding_run_is_shown_as_diverged(tmp_path, capsys):
    """Finding 1: lr=100 exploded (finite losses, inf BatchNorm statistics) and was summarized as a normal row."""
    out = tmp_path / "out"
    _sweep(out, "--families", "residual", "--lr", "100", "--epochs", "3", "--batch-size", "32")  # 24 steps
    text = capsys.readouterr().out
    record = json.loads((out / "runs" / "residual-8-s0.json").read_text())
    history = record["history"]
    assert history["diverged"] and history["diverged_reason"] and history["diverged_at_step"] is not None
    assert f"diverged at step {history['diverged_at_step']}: " in text
    row = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("| ResNet-8"))
    assert f"1 diverged, seed@step: s0@{history['diverged_at_step']}" in row and "| diverged |" in row
    assert "diverged" in (out / "summary.csv").read_text().splitlines()[1]


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_lost_weights_are_trained_again(tmp_path, capsys, how):
    """Finding 2: with runs/<run>.pt deleted or truncated, a rerun said "0 trained, 1 finished before"."""
    out = tmp_path / "out"
    _sweep(out, "--families", "residual")
    weights = out / "runs" / "residual-8-s0.pt"
    good = weights.read_bytes()
    weights.unlink() if how == "deleted" else weights.write_bytes(good[:100])
    capsys.readouterr()
    _sweep(out, "--families", "residual")
    text = capsys.readouterr().out
    assert "1 trained, 0 finished before" in text and str(weights) in text
    assert weights.read_bytes() == good  # the same run again: the same bytes


def test_an_edited_record_is_trained_again(tmp_path, capsys):
    """Finding 5: an edited test_error in a results file was served as it was."""
    out = tmp_path / "out"
    _sweep(out, "--families", "residual")
    path = out / "runs" / "residual-8-s0.json"
    record = json.loads(path.read_text())
    record["history"]["epochs"][-1]["test_error"] = 0.01
    path.write_text(json.dumps(record))
    capsys.readouterr()
    _sweep(out, "--families", "residual")
    text = capsys.readouterr().out
    assert "1 trained, 0 finished before" in text and "checksum" in text
    assert json.loads(path.read_text())["history"]["epochs"][-1]["test_error"] != 0.01


def test_a_damaged_sweep_json_does_not_lock_the_folder(tmp_path, capsys):
    """Finding 5: a corrupt sweep.json was overwritten by the next command, even a refused one,
    which then locked the folder against the command that made it."""
    out = tmp_path / "out"
    _sweep(out, "--families", "residual")
    (out / "sweep.json").write_text('{"settings": {"prof')
    damaged = (out / "sweep.json").read_bytes()
    capsys.readouterr()
    assert rp.main([*TINY, "--out", str(out), "--families", "residual", "--epochs", "3"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "residual-8-s0.json was made with other settings" in err and "recipe.epochs: 2 there, 3 now" in err
    assert (out / "sweep.json").read_bytes() == damaged  # a refused command writes nothing
    _sweep(out, "--families", "residual")  # the command that made the folder still works
    assert "0 trained, 1 finished before" in capsys.readouterr().out


def test_an_unwritable_out_folder_is_one_line_before_any_training(tmp_path, monkeypatch, capsys):
    """Finding 6: --out in a read-only folder printed a 25-line traceback (and CLI errors exited 1 or 2)."""
    from tests.test_results import _refuse_writes

    folder = tmp_path / "read-only"
    _refuse_writes(monkeypatch, folder)

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the results folder")

    monkeypatch.setattr("resnet_lib.reproduce.sweep.fit", no_training)
    try:
        assert rp.main([*TINY, "--out", str(folder / "out")]) == 2
    finally:
        folder.chmod(0o700)
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("python -m resnet_lib.reproduce: error: results folder") and "not writable" in err


def test_missing_cifar10_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert rp.main([*TINY, "--dataset", "cifar10", "--out", str(tmp_path / "out")]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("python -m resnet_lib.reproduce: error: CIFAR-10 is not in")


@pytest.mark.slow
def test_a_stuck_rank_ends_the_job_with_one_line(tmp_path):
    """Finding 6: a stopped rank under torchrun made the others wait silently (no collective timeout).

    Rank 0 runs the command; rank 1 joins the process group and then hangs. With a 3 s timeout,
    rank 0 must end with one line and exit code 2, long before rank 1 would wake up (measured: 3 s of
    waiting, plus the two processes' start-up).
    """
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "WORLD_SIZE": "2", "RESNET_BOOK_COLLECTIVE_TIMEOUT": "3", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    stuck = "from resnet_lib.distributed import init_distributed; import time; init_distributed('cpu'); time.sleep(120)"
    hang = subprocess.Popen([sys.executable, "-c", stuck], env={**env, "RANK": "1", "LOCAL_RANK": "1"})
    try:
        cmd = [sys.executable, "-m", "resnet_lib.reproduce", *TINY, "--device", "cpu", "--out", str(tmp_path / "o")]
        result = subprocess.run(
            cmd, capture_output=True, text=True, env={**env, "RANK": "0", "LOCAL_RANK": "0"}, timeout=150
        )  # fmt: skip: without a collective timeout, this expires
    finally:
        hang.kill()
        hang.wait()
    assert result.returncode == 2, result.stderr[-3000:]
    err = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(err) == 1 and "another process stopped or hangs" in err[0], result.stderr[-3000:]


# ----------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_two_process_gloo_run_matches_a_single_process_run_in_structure(tmp_path):
    """torchrun with 2 CPU processes (gloo): the same files, records and history shape as one process.

    plain-8 is trained by the two processes from scratch; residual-8 was interrupted in a
    one-process run and is resumed by the two (rank 0 reads its checkpoint and hands it out).
    """
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _sweep(single)
    _sweep(ddp, "--families", "residual", "--stop-after-epochs", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "resnet_lib.reproduce", *TINY, "--out", str(ddp)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("2 trained, 0 finished before") == 1, "only rank 0 reports"
    assert sorted(p.name for p in (ddp / "runs").iterdir()) == sorted(p.name for p in (single / "runs").iterdir())
    for name in ("summary.md", "summary.csv", "fig6.png", "sweep.json"):
        assert (ddp / name).exists()
    for family in ("plain", "residual"):
        a = json.loads((single / "runs" / f"{family}-8-s0.json").read_text())
        b = json.loads((ddp / "runs" / f"{family}-8-s0.json").read_text())
        assert sorted(a) == sorted(b) and a["config"] == b["config"]
        assert (b["machine"]["world_size"], b["machine"]["backend"]) == (2, "gloo")
        assert [sorted(e) for e in a["history"]["epochs"]] == [sorted(e) for e in b["history"]["epochs"]]
        assert [e["step"] for e in a["history"]["epochs"]] == [e["step"] for e in b["history"]["epochs"]] == [2, 4]
        assert len(a["history"]["step_losses"]) == len(b["history"]["step_losses"]) == 4
    # Same data, same initial weights, same global batches: only BatchNorm sees half-batches per process.
    plain_a, plain_b = (json.loads((d / "runs" / "plain-8-s0.json").read_text())["history"] for d in (single, ddp))
    assert plain_b["step_losses"][0] == pytest.approx(plain_a["step_losses"][0], rel=0.02)
    # The resumed run: its first epoch is the one-process checkpoint's, its second the two processes'.
    res_a, res_b = (_history_without_times(d / "runs" / "residual-8-s0.json") for d in (single, ddp))
    assert res_b["epochs"][0] == res_a["epochs"][0] and res_b["step_losses"][:2] == res_a["step_losses"][:2]
    assert res_b["step_losses"][2] == pytest.approx(res_a["step_losses"][2], rel=0.02)
    assert not list((ddp / "runs").glob("*.ckpt"))


# ----------------------------------------------------------------------------- issue 31: nothing hangs or mixes


def test_an_empty_out_is_refused_not_the_working_directory(tmp_path, monkeypatch, capsys):
    """Row 12: --out '' wrote the sweep into the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        rp.main([*TINY, "--out", ""])
    assert exit_.value.code == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "argument --out: expected a folder name, got an empty one" in err
    assert list(tmp_path.iterdir()) == []


def _write_small_cifar(root: Path) -> None:
    from tests.test_data import write_cifar_folder

    write_cifar_folder(root)  # 20 training and 6 test images


@pytest.mark.parametrize("why", ["no CIFAR-10", "too few images", "bad dataset name"])
def test_a_refused_sweep_does_not_block_the_corrected_command(tmp_path, monkeypatch, capsys, why):
    """Row 1: sweep.json was written before the data loaded, so the refused command's settings locked the
    folder against every other one, even the error's own advice (--dataset standin)."""
    out = tmp_path / "out"
    if why == "too few images":
        _write_small_cifar(Path(os.environ["RESNET_BOOK_DATA"]))
    if why == "bad dataset name":
        monkeypatch.setenv("RESNET_BOOK_DATASET", "cifar100")
    assert rp.main([*TINY, "--out", str(out), "--dataset", "auto" if why == "bad dataset name" else "cifar10"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    expected = {"no CIFAR-10": "CIFAR-10 is not in", "too few images": "holds only 20", "bad dataset name": "cifar100"}
    assert expected[why] in err, err
    assert not (out / "sweep.json").exists(), "a refused sweep sealed the folder's settings"
    monkeypatch.delenv("RESNET_BOOK_DATASET", raising=False)
    _sweep(out)  # the corrected command (TINY: --dataset standin) runs in the same folder
    assert "2 trained, 0 finished before" in capsys.readouterr().out
    assert json.loads((out / "sweep.json").read_text())["data"]["name"] == "standin"


def test_a_second_sweep_into_a_locked_folder_stops_at_once(tmp_path, monkeypatch, capsys):
    """Row 8: two sweeps started together into one --out both trained; one run overwrote the other's."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True); "
         "time.sleep(60)", str(out / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"

        def no_training(*args, **kwargs):
            raise AssertionError("trained in a folder another sweep holds")

        with monkeypatch.context() as m:
            m.setattr("resnet_lib.reproduce.sweep.fit", no_training)
            assert rp.main([*TINY, "--out", str(out)]) == 2
        (err,) = capsys.readouterr().err.strip().splitlines()
        assert f"{out} is in use by another sweep (pid {holder.pid}" in err and "another --out" in err
        assert not (out / "sweep.json").exists() and not (out / "runs").exists()
    finally:
        holder.kill()
        holder.wait()
    _sweep(out)  # the lock went with its holder
    assert (out / "runs" / "residual-8-s0.json").exists()


def test_runs_of_another_library_version_are_not_mixed_in(tmp_path, monkeypatch, capsys):
    """Row 9: runs from two versions of resnet_lib in one --out were averaged into one mean ± std."""
    out = tmp_path / "out"
    _sweep(out, "--families", "residual")
    monkeypatch.setattr("resnet_lib.reproduce.sweep.library_source_hash", lambda: "f" * 64)
    capsys.readouterr()
    assert rp.main([*TINY, "--out", str(out), "--families", "residual", "--seeds", "1"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert f"{out} holds a sweep made by another version of the library (resnet_lib " in err
    assert ", this is ffffffffffff)" in err and not (out / "runs" / "residual-8-s1.json").exists()


def test_runs_on_other_data_are_not_mixed_in(tmp_path, monkeypatch, capsys):
    """Row 9: --dataset auto resolved to the stand-in once and to CIFAR-10 later; both went into one mean."""
    import dataclasses

    import resnet_lib.reproduce.sweep as sweep

    out = tmp_path / "out"
    _sweep(out, "--families", "residual", "--dataset", "auto")  # no CIFAR-10 here: the stand-in
    assert json.loads((out / "sweep.json").read_text())["data"]["name"] == "standin"
    real_load = sweep.load_dataset
    as_cifar = lambda *a, **k: dataclasses.replace(real_load(*a, **k), name="cifar10", label="CIFAR-10")
    monkeypatch.setattr(sweep, "load_dataset", as_cifar)  # as if CIFAR-10 had been downloaded since
    capsys.readouterr()
    assert rp.main([*TINY, "--out", str(out), "--families", "residual", "--dataset", "auto", "--seeds", "1"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "holds runs on other data (standin, 256/0/128 images of 8px; this command's: cifar10," in err
    assert not (out / "runs" / "residual-8-s1.json").exists()


def test_the_summary_never_averages_runs_of_two_library_versions(tmp_path, monkeypatch, capsys):
    """Row 9: a folder assembled from two versions' runs was summarized as one mean ± std."""
    import shutil

    mine, other = tmp_path / "mine", tmp_path / "other"
    _sweep(mine, "--families", "residual")
    with monkeypatch.context() as m:
        m.setattr("resnet_lib.results.library_source_hash", lambda: "e" * 64)
        m.setattr("resnet_lib.reproduce.sweep.library_source_hash", lambda: "e" * 64)
        _sweep(other, "--families", "residual", "--seeds", "1")
    for ext in ("json", "pt"):
        shutil.copy(other / "runs" / f"residual-8-s1.{ext}", mine / "runs")
    capsys.readouterr()
    assert rp.main([*TINY, "--out", str(mine), "--families", "residual", "--seeds", "0", "1", "--summary-only"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "holds runs of 2 versions of resnet_lib (" in err and "not averaging them together" in err
    assert not (mine / "summary.md").exists() and not (mine / "fig6.png").exists()


def test_summary_only_with_no_runs_left_removes_the_stale_summary(tmp_path, capsys):
    """Row 14: --summary-only after every run was deleted kept the stale summary and plot, and exited 0."""
    out = tmp_path / "out"
    _sweep(out, "--families", "residual")
    for path in (out / "runs").iterdir():
        path.unlink()
    capsys.readouterr()
    assert rp.main([*TINY, "--out", str(out), "--families", "residual", "--summary-only"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert f"--summary-only: {out / 'runs'} holds no finished runs of this sweep" in err
    assert not any((out / name).exists() for name in ("summary.md", "summary.csv", "fig6.png"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_a_peer_that_never_joins_is_one_line_after_the_rendezvous_timeout(tmp_path):
    """Row 11: a peer that never joined the rendezvous meant 30 minutes of silence, then a DistStoreError traceback."""
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    cmd = [sys.executable, "-m", "resnet_lib.reproduce", *TINY, "--device", "cpu", "--out", str(tmp_path / "o")]
    started = time.monotonic()
    result = subprocess.run([*cmd, "--rendezvous-timeout", "3"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    err = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(err) == 1, result.stderr[-3000:]
    assert "rank 0 of 2: not every process joined the rendezvous at 127.0.0.1:" in err[0]
    assert "within 3 s" in err[0] and "--rendezvous-timeout" in err[0]
    assert time.monotonic() - started < 60, "the timeout was not the one asked for"


_DIFFERENT_DATA = """
import sys
import torch
from resnet_lib.data import load_dataset
from resnet_lib.distributed import init_distributed, shutdown
from resnet_lib.models import cifar_resnet
from resnet_lib.profiles import DataSpec
from resnet_lib.recipe import Recipe
from resnet_lib.training import fit

world = init_distributed("cpu")
spec = DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8)
data = load_dataset(spec, seed=world.rank, verbose=False)  # same name and counts, other images on rank 1
torch.manual_seed(0)
try:
    fit(cifar_resnet(8, width=4), data, Recipe(epochs=1, batch_size=32), progress=False, parallel=world.parallelism())
except ValueError as exc:
    print(exc)
    shutdown(world)  # leave the process group: exiting inside it can abort in gloo's threads (SIGABRT, not 3)
    sys.exit(3)
print("trained")
"""


@pytest.mark.slow
def test_ranks_with_different_data_stop_before_training(tmp_path):
    """Row 10: under DDP a rank without CIFAR-10 trained on the stand-in while the record said CIFAR-10.

    Two gloo processes load data of the same name and size but other images: both stop, with the same one line.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": "2", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    ranks = [
        subprocess.Popen([sys.executable, "-c", _DIFFERENT_DATA], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]  # fmt: skip
    outs = [rank.communicate(timeout=180) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [3, 3], [o[1][-2000:] for o in outs]
    lines = [out.strip().splitlines() for out, _ in outs]
    assert lines[0] == lines[1] and len(lines[0]) == 1, lines
    assert lines[0][0].startswith("rank 1 of 2 loaded other data than rank 0 (procedural stand-in")
    assert "64/0/32 images" in lines[0][0] and "every process must load the same dataset" in lines[0][0]


# ----------------------------------------------------------------------------- issue 34: several runs at once


@pytest.mark.slow
def test_runs_per_gpu_on_the_cpu_trains_each_run_as_one_process_would(tmp_path, capfd):
    """--runs-per-gpu 2 on the CPU: two worker processes share the four runs; the files, configurations,
    commands and histories (bit for bit) are those of the one-process sweep, and the summary is written once."""
    one, two = tmp_path / "one", tmp_path / "two"
    _sweep(one, "--seeds", "0", "1")
    capfd.readouterr()
    _sweep(two, "--seeds", "0", "1", "--runs-per-gpu", "2")
    out = capfd.readouterr().out  # the workers' lines too (file descriptors)
    assert "2 processes on the CPU (2 per device) train 4 runs" in out and "4 of 4 runs finished" in out
    assert out.count(" trained, 0 finished before") == 2 and out.count("wrote ") == 3, "two workers, one summary"
    assert sorted(p.name for p in (two / "runs").iterdir()) == sorted(p.name for p in (one / "runs").iterdir())
    for name in ("summary.md", "summary.csv", "fig6.png", "sweep.json"):
        assert (two / name).exists()
    for path in (one / "runs").glob("*.json"):
        a, b = json.loads(path.read_text()), json.loads((two / "runs" / path.name).read_text())
        assert (
            a["config"] == b["config"]
            and a["command"].replace(str(one), str(two)) + " --runs-per-gpu 2" == (b["command"])
        )
        assert _history_without_times(path) == _history_without_times(two / "runs" / path.name)
    # Run again: every run is read back by its worker, none trained.
    _sweep(two, "--seeds", "0", "1", "--runs-per-gpu", "2")
    out = capfd.readouterr().out
    assert out.count("0 trained, 2 finished before") == 2 and "4 of 4 runs finished" in out


def test_each_worker_trains_its_share_and_writes_no_summary(tmp_path, monkeypatch, capsys):
    import resnet_lib.reproduce.sweep as sweep

    trained = []
    monkeypatch.setattr(sweep, "train_run", lambda plan, f, d, s, *rest: trained.append((f, d, s)))
    out = tmp_path / "out"
    assert rp.main([*TINY, "--seeds", "0", "1", "2", "--out", str(out), "--no-progress", "--worker", "1/2"]) == 0
    assert trained == [("plain", 8, 1), ("residual", 8, 0), ("residual", 8, 2)]  # runs 1, 3, 5 of 6
    assert not (out / "summary.md").exists() and not (out / ".lock").exists()  # the parent's business
    assert "worker 2 of 2: 0 trained" in capsys.readouterr().out


def test_runs_per_gpu_under_torchrun_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exit_:
        rp.main([*TINY, "--out", str(tmp_path / "out"), "--runs-per-gpu", "2"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--runs-per-gpu trains whole runs side by side; under torchrun" in err[0]


@pytest.mark.parametrize(("extra", "expected"), [([], None), (["--no-cuda-graph"], False)])
def test_no_cuda_graph_reaches_fit(tmp_path, monkeypatch, extra, expected):
    import resnet_lib.reproduce.sweep as sweep

    seen, fit = [], sweep.fit
    monkeypatch.setattr(sweep, "fit", lambda *a, **k: seen.append(k["cuda_graph"]) or fit(*a, **k))
    _sweep(tmp_path / "out", "--families", "residual", *extra)
    assert seen == [expected]
