"""Training a reproduction sweep: each run trained (or resumed) and stored, the folder checked, the summary written."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from resnet_lib.data import ImageDataset, load_dataset
from resnet_lib.distributed import World, barrier, broadcast_object
from resnet_lib.full_results import load_runs
from resnet_lib.models import cifar_net, count_parameters
from resnet_lib.reproduce.plan import Plan, run_name
from resnet_lib.reproduce.summary import write_summary
from resnet_lib.results import (
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


# ----------------------------------------------------------------------------- the sweep


def _read_sweep(path: Path) -> dict | None:
    """The settings ``sweep.json`` records, or ``None`` when it is missing or fails its checksum."""
    saved = read_sealed(path)
    return saved["settings"] if isinstance(saved, dict) and isinstance(saved.get("settings"), dict) else None


def _check_sweep_folder(plan: Plan, say=print) -> None:
    """``sweep.json`` records the shared settings; a folder made with other settings is refused.

    Where ``sweep.json`` is missing or damaged, the finished runs in the folder are checked
    against this command instead, and ``sweep.json`` is (re)written only once they agree, so a
    refused command never writes anything. The folder is checked writable before any training.
    """
    path = plan.out / "sweep.json"
    settings = plan.settings()
    before = _read_sweep(path)
    if before is not None:
        diff = config_differences(before, settings)
        if diff:
            raise ValueError(f"{plan.out} holds a sweep with other settings ({'; '.join(diff[:3])}); use another --out")
    else:
        for done in load_runs(plan.out, quiet=True):
            diff = config_differences(done.record["config"], plan.config(done.family, done.depth, done.seed))
            if diff:
                where = done.stored.json_path
                raise ValueError(f"{where} was made with other settings ({'; '.join(diff[:3])}); use another --out")
    check_writable(plan.store.directory)
    if before is None:
        if path.exists():
            say(f"{path} was damaged; rewriting it (the finished runs there agree with this command)")
        write_sealed(path, {"settings": settings, "library_hash": library_source_hash()})


def run_sweep(plan: Plan, world: World, args: argparse.Namespace) -> dict:
    """Train every run of ``plan`` not already finished; rank 0 writes results and the summary."""
    say = print if world.is_main else (lambda *a, **k: None)
    if args.summary_only and not (plan.out / "sweep.json").exists():
        raise ValueError(f"--summary-only: {plan.out} holds no sweep (no sweep.json)")
    error = None
    if world.is_main:
        try:
            _check_sweep_folder(plan, say)
        except (ValueError, OSError) as exc:
            error = str(exc)
    error = broadcast_object(error, world)
    if error:
        raise ValueError(error)
    counts = {"finished_before": 0, "trained": 0, "interrupted": 0}
    data: ImageDataset | None = None
    planned = plan.runs()
    for i, (family, depth, seed) in enumerate(planned, start=1):
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
    if world.is_main:
        for path in write_summary(plan):
            say(f"wrote {path}")
    return counts


def _load_data(plan: Plan, world: World) -> ImageDataset:
    """Rank 0 loads (and, for CIFAR-10, downloads) first; the other ranks then read the same files."""
    data = None
    if world.is_main:
        data = load_dataset(plan.experiment.data, verbose=True)
    barrier(world)
    if data is None:
        data = load_dataset(plan.experiment.data, verbose=False)
    return data
