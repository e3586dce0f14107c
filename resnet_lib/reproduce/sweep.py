"""Training a reproduction sweep: each run trained (or resumed) and stored, the folder checked, the summary written."""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import torch

from resnet_lib.data import DatasetNotFoundError, ImageDataset, load_dataset
from resnet_lib.distributed import World, barrier, broadcast_object, first_error, resolve_device
from resnet_lib.full_results import load_runs
from resnet_lib.models import cifar_net, count_parameters
from resnet_lib.reproduce.plan import Plan, run_name
from resnet_lib.reproduce.summary import write_summary
from resnet_lib.results import (
    as_json,
    check_writable,
    config_differences,
    library_source_hash,
    machine,
    read_sealed,
    write_sealed,
)
from resnet_lib.training import History, evaluate, fit, loss_divergence

# ----------------------------------------------------------------------------- one run


def train_run(
    plan: Plan, family: str, depth: int, seed: int, data: ImageDataset, world: World, args: argparse.Namespace
) -> History | None:
    """Train (or resume) one run; rank 0 writes its results file. ``None`` when stopped before the end."""
    config, name = plan.config(family, depth, seed), run_name(family, depth, seed)
    recipe = plan.experiment.recipe_for(depth)
    checkpoint = plan.store.checkpoint_path(name, config)
    torch.manual_seed(seed)
    net = cifar_net(family, depth, width=plan.experiment.width, shortcut=plan.shortcut)
    label = f"{'ResNet' if family == 'residual' else 'plain'}-{depth} (seed {seed})"
    history = fit(
        net,
        data,
        recipe,
        seed=seed,
        checkpoint=checkpoint,
        progress=not args.no_progress,
        desc=label,
        device=world.device,
        stop_after_epochs=args.stop_after_epochs,
        parallel=world.parallelism(),
        cuda_graph=False if getattr(args, "no_cuda_graph", False) else None,
    )
    total = recipe.total_steps(math.ceil(len(data.train_y) / recipe.batch_size))
    done = history.diverged or bool(
        history.epochs and (history.final["step"] >= total or history.final["epoch"] >= recipe.epochs)
    )
    if not done:
        return None
    if world.is_main:
        val_loss = val_error = None
        if data.val_y is not None:
            val_loss, val_error = evaluate(
                net, data.val_x, data.val_y, channels_last=recipe.channels_last, precision=recipe.precision
            )
            reason = loss_divergence(val_loss, None, recipe.divergence_factor, "validation loss")
            if reason and not history.diverged:
                history.mark_diverged(max(history.final.get("step", 1) - 1, 0), reason)
        record = {
            "history": history.to_dict(),
            "data": data.describe(),
            "parameters": count_parameters(net),
            "val_loss": val_loss,
            "val_error": val_error,
            "train_seconds": sum(e["seconds"] for e in history.epochs),
            "machine": {**machine(), **world.describe()},
            "command": args.command,
        }
        plan.store.write(name, config, record, net.state_dict())  # and removes the checkpoint
    return history


# ----------------------------------------------------------------------------- the folder

LOCK_NAME = ".lock"
#: What of a run's data must agree across a folder: which dataset was resolved, and how many images of what size.
_DATA_KEYS = ("name", "n_train", "n_val", "n_test", "image_size")


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` (an OS lock, ``flock``: released when this process ends, however it ends) while a
    sweep writes into ``out``; a one-line ``ValueError`` naming the holder's pid when another sweep holds it."""
    check_writable(out)
    lock = out / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ValueError(f"cannot open the lock file {lock} ({exc.strerror or type(exc).__name__})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ValueError(
                f"{out} is in use by another sweep (pid {holder}, holding {lock}); wait for it to end or use another "
                "--out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would let two sweeps lock two files)


def _read_sweep(path: Path) -> dict | None:
    """What ``sweep.json`` records (``settings``, ``library_hash``, ``data``), or ``None`` when it is missing or
    fails its checksum."""
    saved = read_sealed(path)
    return saved if isinstance(saved, dict) and isinstance(saved.get("settings"), dict) else None


def _data_of(description: dict) -> dict:
    return {k: description.get(k) for k in _DATA_KEYS}


def _data_words(description: dict) -> str:
    d = _data_of(description)
    return f"{d['name']}, {d['n_train']}/{d['n_val']}/{d['n_test']} images of {d['image_size']}px"


def _library_words(there: str) -> str:
    return f"resnet_lib {str(there)[:12]}, this is {library_source_hash()[:12]}"


def _check_sweep_folder(plan: Plan, summary_only: bool) -> None:
    """Refuse (one-line ``ValueError``) a folder made with other settings or, unless ``summary_only``, by
    another version of resnet_lib. Reads only: nothing is written until the data has loaded."""
    path = plan.out / "sweep.json"
    before = _read_sweep(path)
    if before is not None:
        diff = config_differences(before["settings"], plan.settings())
        if diff:
            raise ValueError(f"{plan.out} holds a sweep with other settings ({'; '.join(diff[:3])}); use another --out")
        if not summary_only and before.get("library_hash") != library_source_hash():
            words = _library_words(before.get("library_hash"))
            raise ValueError(
                f"{plan.out} holds a sweep made by another version of the library ({words}); "
                "its runs are not mixed with this one's: use another --out"
            )
    for done in load_runs(plan.out, quiet=True):
        where = done.stored.json_path
        diff = config_differences(done.record["config"], plan.config(done.family, done.depth, done.seed))
        if diff:
            raise ValueError(f"{where} was made with other settings ({'; '.join(diff[:3])}); use another --out")
        if not summary_only and done.record["library_hash"] != library_source_hash():
            raise ValueError(
                f"{where} was made by another version of the library ({_library_words(done.record['library_hash'])}); "
                "its runs are not mixed with this one's: use another --out"
            )


def _seal_sweep_folder(plan: Plan, data: dict, say=print) -> None:
    """Once the data has loaded: refuse a folder whose runs used other data (``data``: what this command
    resolved, :meth:`ImageDataset.describe`), else write ``sweep.json`` (settings, the resolved data and
    the library's source hash) if it is missing, damaged or older."""
    path = plan.out / "sweep.json"
    before = _read_sweep(path)
    theirs = [(path, before["data"])] if before is not None and isinstance(before.get("data"), dict) else []
    theirs += [(r.stored.json_path, r.record["data"]) for r in load_runs(plan.out, quiet=True)]
    for where, there in theirs:
        if _data_of(there) != _data_of(data):
            raise ValueError(
                f"{where} holds runs on other data ({_data_words(there)}; this command's: {_data_words(data)}); "
                "runs on different data are not mixed: use another --out, or the --dataset that made it"
            )
    check_writable(plan.store.directory)
    sealed = as_json({"settings": plan.settings(), "library_hash": library_source_hash(), "data": data})
    if before is None or {k: before.get(k) for k in sealed} != sealed:
        if path.exists() and before is None:
            say(f"{path} was damaged; rewriting it (the finished runs there agree with this command)")
        write_sealed(path, sealed)


def _on_main(world: World, action) -> None:
    """Run ``action()`` on rank 0; its one-line ``ValueError`` or ``OSError`` is raised on every rank."""
    error = None
    if world.is_main:
        try:
            action()
        except (ValueError, OSError) as exc:
            error = str(exc)
    error = broadcast_object(error, world)
    if error:
        raise ValueError(error)


# ----------------------------------------------------------------------------- the sweep


def run_sweep(plan: Plan, world: World, args: argparse.Namespace) -> dict:
    """Train every run of ``plan`` not already finished; rank 0 holds the folder's lock, writes results and
    the summary. A worker of :func:`run_in_processes` (``args.worker``) trains its share of the runs alone:
    its parent holds the lock and writes the summary."""
    if getattr(args, "worker", None) is not None:
        return _run_sweep_locked(plan, world, args)
    with ExitStack() as stack:
        _on_main(world, lambda: stack.enter_context(folder_lock(plan.out)))
        return _run_sweep_locked(plan, world, args)


def _run_sweep_locked(plan: Plan, world: World, args: argparse.Namespace) -> dict:
    say = print if world.is_main else (lambda *a, **k: None)
    if args.summary_only and not (plan.out / "sweep.json").exists():
        raise ValueError(f"--summary-only: {plan.out} holds no sweep (no sweep.json)")
    _on_main(world, lambda: _check_sweep_folder(plan, args.summary_only))
    counts = {"finished_before": 0, "trained": 0, "interrupted": 0}
    data: ImageDataset | None = None
    planned = plan.runs()
    worker = getattr(args, "worker", None)
    mine = set(planned if worker is None else planned[worker[0] :: worker[1]])
    for i, (family, depth, seed) in enumerate(planned, start=1):
        if (family, depth, seed) not in mine:
            continue
        name = run_name(family, depth, seed)
        state = None
        if world.is_main:
            try:
                found = plan.store.find(name, plan.config(family, depth, seed), say)
                state = "done" if found is not None else "todo"
            except ValueError as exc:  # a run of this name made with other settings
                state = f"error: {exc}; use another --out"
        state = broadcast_object(state, world)
        if state.startswith("error: "):
            raise ValueError(state.removeprefix("error: "))
        if state == "done" or args.summary_only:
            counts["finished_before"] += state == "done"
            say(f"[{i}/{len(planned)}] {name}: {'finished before, read back' if state == 'done' else 'not trained'}")
            continue
        if data is None:
            data = _load_data(plan, world)
            _on_main(world, partial(_seal_sweep_folder, plan, data.describe(), say))
        started = time.perf_counter()
        history = train_run(plan, family, depth, seed, data, world, args)
        if history is None:
            counts["interrupted"] += 1
            say(f"[{i}/{len(planned)}] {name}: stopped after --stop-after-epochs; its checkpoint resumes it")
        else:
            counts["trained"] += 1
            final = history.final
            say(
                f"[{i}/{len(planned)}] {name}: trained in {time.perf_counter() - started:.0f} s, "
                f"{final.get('step', 0)} iterations, train error {100 * final.get('train_error', math.nan):.2f}%, "
                f"test error {100 * final.get('test_error', math.nan):.2f}%"
                + (f"; {history.divergence_line('it')}" if history.diverged else "")
            )
        barrier(world)
    if worker is not None:
        return counts
    written = _summarize(plan, world, args, data, say)
    for path in written:
        say(f"wrote {path}")
    if args.summary_only and not written:
        raise ValueError(
            f"--summary-only: {plan.store.directory} holds no finished runs of this sweep; removed its stale "
            "summary.md, summary.csv and fig6.png"
        )
    return counts


def _summarize(plan: Plan, world: World, args: argparse.Namespace, data: ImageDataset | None, say) -> list[str]:
    """Rank 0 writes the summary and figure from the finished runs (and ``sweep.json`` when nothing was trained
    here); the paths written, on every rank."""
    outcome: list[str] | str = []
    if world.is_main:
        try:
            finished = load_runs(plan.out, quiet=True)
            if data is None and finished and not args.summary_only:
                # Nothing trained: sweep.json (re)written from the finished runs, which agree with this command.
                _seal_sweep_folder(plan, finished[0].record["data"], say)
            outcome = [str(path) for path in write_summary(plan)]
        except (ValueError, OSError) as exc:
            outcome = str(exc)
    outcome = broadcast_object(outcome, world)
    if isinstance(outcome, str):
        raise ValueError(outcome)
    return outcome


# ----------------------------------------------------------------------------- several runs at once

#: What :func:`run_in_processes` appends to its workers' command line (then ``I/N``).
WORKER_OPTIONS = ("--no-progress", "--worker")


def parse_worker(text: str) -> tuple[int, int]:
    """``"I/N"``: worker ``I`` (0-based) of ``N``; an ``argparse`` error otherwise."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return int(index), int(count)


def worker_devices(device: str) -> list[str | None]:
    """The GPUs the workers share out (``CUDA_VISIBLE_DEVICES`` entries), or ``[None]`` for the CPU."""
    if resolve_device(device).type != "cuda":
        return [None]
    visible = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return (visible or [str(i) for i in range(torch.cuda.device_count())])[: torch.cuda.device_count()]


def run_in_processes(plan: Plan, args: argparse.Namespace, argv: list[str]) -> int:
    """``--runs-per-gpu K``: K worker processes per visible GPU (K on the CPU) train the runs of ``plan``
    side by side, worker ``i`` of ``N`` the runs ``i, i+N, ...`` (each as it would be trained alone, and
    written by its worker); this process holds the folder's lock, then writes the summary. 0 when every
    worker succeeded, else 2 with one line naming the failed ones (their runs resume on the next call)."""
    gpus = worker_devices(args.device)
    n = min(args.runs_per_gpu * len(gpus), len(plan.runs()))
    where = f"{len(gpus)} GPU(s)" if gpus[0] is not None else "the CPU"
    with folder_lock(plan.out):
        _check_sweep_folder(plan, summary_only=False)
        print(f"{n} processes on {where} ({args.runs_per_gpu} per device) train {len(plan.runs())} runs", flush=True)
        procs: list[subprocess.Popen] = []
        try:
            for i in range(n):
                env = dict(os.environ)
                if gpus[i % len(gpus)] is not None:
                    env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
                elif "OMP_NUM_THREADS" not in env:  # the cores shared out, not each worker taking them all
                    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
                cmd = [sys.executable, "-m", "resnet_lib.reproduce", *argv, *WORKER_OPTIONS, f"{i}/{n}"]
                procs.append(subprocess.Popen(cmd, env=env))
            codes = [p.wait() for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait()
        world = World(0, 1, 0, resolve_device(args.device), None)
        for path in _summarize(plan, world, args, None, print):
            print(f"wrote {path}")
    finished = {(r.family, r.depth, r.seed) for r in load_runs(plan.out, quiet=True)}
    print(f"{sum(run in finished for run in plan.runs())} of {len(plan.runs())} runs finished; results in {plan.out}")
    failed = [f"{i + 1} (exit code {code})" for i, code in enumerate(codes) if code]
    if failed:
        print(
            f"python -m resnet_lib.reproduce: error: worker {', '.join(failed)} of {n} failed (its message is "
            "above); run the same command again to resume",
            file=sys.stderr,
        )
        return 2
    return 0


def _load_data(plan: Plan, world: World) -> ImageDataset:
    """Rank 0 loads (and, for CIFAR-10, downloads) first; the other ranks then read the same files.

    A rank that cannot load the data stops every rank with its one line (not a wait for the collective timeout).
    """
    data, error = None, None
    if world.is_main:
        try:
            data = load_dataset(plan.experiment.data, verbose=True)
        except (ValueError, OSError, DatasetNotFoundError) as exc:
            error = str(exc).strip().splitlines()[0]
    error = broadcast_object(error, world)
    if error:
        raise ValueError(error)
    if data is None:
        try:
            data = load_dataset(plan.experiment.data, verbose=False)
        except (ValueError, OSError, DatasetNotFoundError) as exc:
            error = f"rank {world.rank}: {str(exc).strip().splitlines()[0]}"
    error = first_error(error, world)
    if error:
        raise ValueError(error)
    return data
