"""Reproduce the CIFAR-10 experiment of He et al. (2016), section 4.2, from the command line.

Plain and residual nets at the chosen depths and seeds, trained with the chosen profile's
recipe (at ``--profile full``: the paper's 45k/5k split, 64k iterations, learning rate
divided by 10 at 32k and 48k, ResNet-110 warmed up at 0.01 for 400 iterations). Writes one
results file per run, a summary table against the paper's Table 6 and a Fig. 6-style plot::

    python -m resnet_lib.reproduce --profile full --depths 20 56 110 --seeds 0 1 2 --out results/full
    torchrun --standalone --nproc-per-node 4 -m resnet_lib.reproduce --profile full

Run ``python -m resnet_lib.reproduce --help`` for every option.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from resnet_lib import paper
from resnet_lib.data import DATASETS, DatasetNotFoundError, ImageDataset, load_dataset
from resnet_lib.distributed import (
    DEVICES,
    World,
    barrier,
    broadcast_object,
    collective_failure,
    init_distributed,
    resolve_device,
    shutdown,
)
from resnet_lib.full_results import load_runs, provenance, sweep_store
from resnet_lib.models import FAMILIES, blocks_per_stage, cifar_net, count_parameters
from resnet_lib.profiles import PROFILES, TrainingExperiment, profile_name
from resnet_lib.recipe import PRECISIONS
from resnet_lib.results import (
    RunStore,
    atomic_write_bytes,
    check_writable,
    config_differences,
    library_source_hash,
    machine,
    read_sealed,
    write_sealed,
)
from resnet_lib.runs import CifarRun
from resnet_lib.training import History, evaluate, fit, loss_divergence, resolve_precision

EPILOG = """\
output (in --out):
  runs/<family>-<depth>-s<seed>.json   one results file per run: history, configuration, machine
  runs/<family>-<depth>-s<seed>.pt     its trained weights
  summary.md, summary.csv              test error, mean ± std over seeds, beside the paper's Table 6
  fig6.png                             training (dashed) and test (solid) error against iterations
  sweep.json                           the settings every run in this folder shares

resuming: run the same command again. Finished runs are read back (checked: schema, checksum of
the record, SHA-256 of the weights), not redone; one that fails the check, or whose weights are
lost, is trained again. A run that was interrupted continues from its checkpoint (runs/*.ckpt,
written after every epoch); a damaged checkpoint is discarded with one warning line.

divergence: a run whose training, test or validation loss becomes non-finite, whose training loss
exceeds the recipe's divergence_factor (100) times its first one, or whose weights or BatchNorm
statistics hold a NaN or infinity, stops there; the summary lists it as diverged, not averaged.

several GPUs or machines (PyTorch's DistributedDataParallel; NCCL on GPUs, gloo on CPU):
  torchrun --standalone --nproc-per-node 4 -m resnet_lib.reproduce --profile full
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
      -m resnet_lib.reproduce --profile full        (the same command on every machine)
Each global batch of --batch-size images is split across the processes; rank 0 writes.
A process that stops or hangs ends the job after $RESNET_BOOK_COLLECTIVE_TIMEOUT seconds
(default 1800) with one line.

The book's chapters 3 and 5 read results/full (or $RESNET_BOOK_FULL_RESULTS) when it holds
finished runs of the full profile.
"""


# ----------------------------------------------------------------------------- options


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _depth(text: str) -> int:
    try:
        return blocks_per_stage(int(text)) * 6 + 2
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {text!r}"
        ) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option costs one line (not the whole usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m resnet_lib.reproduce``."""
    p = _Parser(
        prog="python -m resnet_lib.reproduce",
        description=(
            "Train plain and residual CIFAR nets (He et al. 2016, section 4.2) at a profile's size, "
            "several depths and seeds; write one results file per run, a summary against the paper's "
            "Table 6 and a Fig. 6-style plot. Unset options take the profile's values."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep = p.add_argument_group("what to train")
    sweep.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help="size of everything: ci, default or full (the paper's recipe, for a GPU); "
        "default: $RESNET_BOOK_PROFILE, else 'default'",
    )
    sweep.add_argument(
        "--families", nargs="+", choices=FAMILIES, default=list(FAMILIES), help="plain and/or residual (default: both)"
    )
    sweep.add_argument(
        "--depths", nargs="+", type=_depth, metavar="D", help="depths 6n+2, e.g. 20 32 44 56 110 (default: profile's)"
    )
    sweep.add_argument("--seeds", nargs="+", type=_int_at_least(0), metavar="S", help="seeds (default: profile's)")
    sweep.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="results folder (default: results/<profile>)"
    )
    sweep.add_argument("--shortcut", choices=["A", "B"], default="A", help="residual shortcut option (default: A)")
    data = p.add_argument_group("data (override the profile)")
    data.add_argument("--dataset", choices=DATASETS, help="cifar10, the procedural stand-in, or auto")
    data.add_argument("--n-train", type=_int_at_least(1), metavar="N", help="training images (after the split)")
    data.add_argument("--n-val", type=_int_at_least(0), metavar="N", help="images held out for validation")
    data.add_argument("--n-test", type=_int_at_least(1), metavar="N", help="test images")
    data.add_argument("--image-size", type=int, choices=[32, 16, 8], help="image side in pixels (32: CIFAR's)")
    train = p.add_argument_group("recipe (override the profile)")
    train.add_argument("--width", type=_int_at_least(1), metavar="W", help="filters of the first stage (paper: 16)")
    train.add_argument("--epochs", type=_int_at_least(1), metavar="E", help="epochs")
    train.add_argument(
        "--max-steps", type=_int_at_least(0), metavar="N", help="stop after N iterations (0: no limit; full: 64000)"
    )
    train.add_argument(
        "--batch-size", type=_int_at_least(1), metavar="B", help="global batch, split across processes (paper: 128)"
    )
    train.add_argument("--lr", type=_positive_float, metavar="LR", help="peak learning rate (paper: 0.1)")
    train.add_argument(
        "--warmup-steps",
        type=_int_at_least(0),
        metavar="N",
        help="linear warm-up iterations (at --profile full, ResNet-110 and deeper instead warm up at lr 0.01 "
        "for 400 iterations, as in the paper)",
    )
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="arithmetic: fp32 (the paper; the full profile's), bf16 mixed precision, or auto (bf16 where the "
        "device does it in hardware: recent GPUs, CPUs with AVX512-BF16 or AMX); auto is resolved before training "
        "and the results record what ran",
    )
    run = p.add_argument_group("how to run")
    run.add_argument(
        "--device", choices=DEVICES, default="auto", help="auto (this process's GPU if any, else CPU), cpu or cuda"
    )
    run.add_argument(
        "--stop-after-epochs",
        type=_int_at_least(1),
        metavar="E",
        help="end each run after E more epochs, keeping its checkpoint, as an interruption would",
    )
    run.add_argument(
        "--summary-only", action="store_true", help="train nothing; rewrite the summary and plot from finished runs"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """A sweep: one experiment, the nets to train with it, and where the results go."""

    profile: str
    experiment: TrainingExperiment
    families: tuple[str, ...]
    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    shortcut: str
    out: Path

    def runs(self) -> list[tuple[str, int, int]]:
        return [(f, d, s) for f in self.families for d in self.depths for s in self.seeds]

    def settings(self) -> dict:
        """What every run in ``out`` shares (``sweep.json``)."""
        exp = self.experiment
        settings = {"profile": self.profile, "data": asdict(exp.data), "recipe": exp.recipe.as_dict()}
        return _jsonable({**settings, "width": exp.width, "shortcut": self.shortcut})

    @property
    def store(self) -> RunStore:
        """Where the runs go: ``out/runs``, one record (and weights) per run, named after it."""
        return sweep_store(self.out)

    def config(self, family: str, depth: int, seed: int) -> dict:
        """Everything that shapes one run (the same fields as :func:`resnet_lib.runs.cifar_run` records)."""
        exp = self.experiment
        return _jsonable(
            {
                "model": {"family": family, "depth": depth, "width": exp.width, "shortcut": self.shortcut},
                "data": asdict(exp.data),
                "recipe": self.experiment.recipe_for(depth).as_dict(),
                "seed": seed,
                "profile": self.profile,
            }
        )


def _jsonable(obj) -> dict:
    return json.loads(json.dumps(obj, default=str))


def run_name(family: str, depth: int, seed: int) -> str:
    """``residual-56-s0``: the file stem of one run."""
    return f"{family}-{depth}-s{seed}"


def make_plan(args: argparse.Namespace) -> Plan:
    """Turn parsed options into a :class:`Plan`; a ``ValueError`` names any bad combination."""
    profile = args.profile or profile_name()
    exp = PROFILES[profile].degradation
    data_over = {k: getattr(args, k) for k in ("dataset", "n_train", "n_val", "n_test", "image_size")}
    data = replace(exp.data, **{k: v for k, v in data_over.items() if v is not None})
    recipe_over = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "warmup_steps", "precision")}
    recipe_over = {k: v for k, v in recipe_over.items() if v is not None}
    if args.max_steps is not None:
        recipe_over["max_steps"] = args.max_steps or None
    recipe = replace(exp.recipe, **recipe_over)
    if recipe.precision == "auto":  # decided here, for this machine, so that results files say what ran
        recipe = replace(recipe, precision=resolve_precision("auto", resolve_device(args.device)))
    width = args.width if args.width is not None else exp.width
    experiment = replace(exp, data=data, recipe=recipe, width=width)
    if data.n_train is not None and data.n_train < recipe.batch_size:
        raise ValueError(f"--n-train {data.n_train} is smaller than one batch (--batch-size {recipe.batch_size})")
    depths = tuple(dict.fromkeys(args.depths or exp.depths))
    seeds = tuple(dict.fromkeys(args.seeds if args.seeds is not None else exp.seeds))
    families = tuple(dict.fromkeys(args.families))
    out = args.out if args.out is not None else Path("results") / profile
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    return Plan(profile, experiment, families, depths, seeds, args.shortcut, out)


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


# ----------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _pm(values: list[float]) -> str:
    if not values:
        return "—"
    mean, std = _mean_std([100 * v for v in values])
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def summary_rows(runs: list[CifarRun]) -> list[dict]:
    """One row per (family, depth): errors in percent over seeds, beside the paper's Table 6.

    Diverged runs are counted (``diverged``, and seed@step in ``diverged_at``) but left out of
    the errors: a diverged net's error says nothing about its depth.
    """
    rows = []
    for family, depth in dict.fromkeys((r.family, r.depth) for r in runs):
        group = [r for r in runs if (r.family, r.depth) == (family, depth)]
        kept = [r for r in group if not r.history.diverged]
        test = [r.final["test_error"] for r in kept if r.final]
        train = [r.final["train_error"] for r in kept if r.final]
        val = [r.record["val_error"] for r in kept if r.record.get("val_error") is not None]
        reported = paper.TABLE6.get(depth) if family == "residual" else None
        test_mean, test_std = _mean_std([100 * v for v in test]) if test else (None, None)
        rows.append(
            {
                "model": group[0].label,
                "family": family,
                "depth": depth,
                "parameters": group[0].record.get("parameters"),
                "seeds": len(group),
                "diverged": sum(r.history.diverged for r in group),
                "diverged_at": " ".join(f"s{r.seed}@{r.history.diverged_at_step}" for r in group if r.history.diverged),
                "iterations": max((r.final.get("step", 0) for r in group), default=0),
                "test_error_mean": test_mean,
                "test_error_std": test_std,
                "test_error": _pm(test) if kept else "diverged",
                "train_error": _pm(train) if kept else "diverged",
                "val_error": _pm(val) if kept else "diverged",
                "paper_test_error": reported[0] if reported else None,
                "paper_parameters_m": reported[1] if reported else None,
            }
        )
    return rows


def summary_markdown(rows: list[dict], runs: list[CifarRun]) -> str:
    """The summary table as markdown, with a line saying what made the runs."""
    lines = [
        "# CIFAR-10 experiment of He et al. (2016): reproduction summary",
        "",
        f"Made by: {provenance(runs)}.",
        "",
        "Errors in %, final iteration, mean ± standard deviation over seeds. The paper's numbers are its "
        "Table 6 (test error of the ResNets; the plain nets appear only in its Fig. 6; for ResNet-110 it "
        f"reports the best of 5 runs, mean {paper.RESNET110_MEAN_STD[0]} ± {paper.RESNET110_MEAN_STD[1]}). "
        "Diverged runs are listed, not averaged.",
    ]
    datasets = sorted({r.dataset_label for r in runs})
    if len(datasets) > 1:
        lines += ["", f"**Warning: these runs used different data ({'; '.join(datasets)}).**"]
    if runs[0].record["data"]["name"] != "cifar10":
        lines += ["", f"**Data: {runs[0].dataset_label}. These are not CIFAR-10 results.**"]
    lines += [
        "",
        "| model | parameters | seeds | iterations | train error | test error | validation error | paper (Table 6) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        reported = "—" if r["paper_test_error"] is None else f"{r['paper_test_error']:.2f}"
        diverged = f" ({r['diverged']} diverged, seed@step: {r['diverged_at']})" if r["diverged"] else ""
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['seeds']}{diverged} | {r['iterations']:,} | "
            f"{r['train_error']} | {r['test_error']} | {r['val_error']} | {reported} |"
        )
    return "\n".join(lines) + "\n"


def summary_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _mean_history(group: list[CifarRun]) -> list[dict]:
    """Mean training and test error over the runs of ``group``, epoch by epoch."""
    n = min(len(r.history.epochs) for r in group)
    keys = ("train_error", "test_error")
    return [
        {
            "step": group[0].history.epochs[i]["step"],
            **{k: statistics.fmean(r.history.epochs[i][k] for r in group) for k in keys},
        }
        for i in range(n)
    ]


def fig6_figure(runs: list[CifarRun]):
    """He et al.'s Fig. 6 (left and middle): plain nets and ResNets, error against iterations, mean over seeds."""
    from resnet_lib.plots.curves import plot_error_curves
    from resnet_lib.plots.style import depth_shade, new_figure

    families = [f for f in FAMILIES if any(r.family == f for r in runs)]
    fig, axes = new_figure(1, len(families), figsize=(5.5 * len(families), 4.2), sharey=True, squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        depths = sorted({r.depth for r in runs if r.family == family})
        for depth in depths:
            group = [r for r in runs if (r.family, r.depth) == (family, depth)]
            kept = [r for r in group if not r.history.diverged]  # a diverged run is named, not averaged
            color = depth_shade(family, depth, depths)
            gone = f", {len(group) - len(kept)} diverged" if len(kept) < len(group) else ""
            label = f"{group[0].label} ({len(kept)} seed{'s' if len(kept) != 1 else ''}{gone})"
            if kept:
                plot_error_curves(ax, _mean_history(kept), color, label, x="step")
            else:
                ax.plot([], [], color=color, marker="x", ls="none", label=f"{group[0].label}: every seed diverged")
        ax.set_title("plain networks" if family == "plain" else "ResNets")
        ax.legend(title="dashed: training, solid: test")
    fig.suptitle(f"He et al. (2016) Fig. 6 reproduced, '{runs[0].profile}' profile\n{runs[0].dataset_label}")
    return fig


def write_summary(plan: Plan) -> list[Path]:
    """Write ``summary.md``, ``summary.csv`` and ``fig6.png`` from the finished runs in ``plan.out``."""
    runs = [r for r in load_runs(plan.out) if r.record["config"]["profile"] == plan.profile]
    if not runs:
        return []
    rows = summary_rows(runs)
    paths = [plan.out / "summary.md", plan.out / "summary.csv", plan.out / "fig6.png"]
    atomic_write_bytes(paths[0], summary_markdown(rows, runs).encode())
    atomic_write_bytes(paths[1], summary_csv(rows).encode())
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = fig6_figure(runs)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(paths[2], buffer.getvalue())
    return paths


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m resnet_lib.reproduce`` (and ``resnet-book-reproduce``)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command = " ".join(["python -m resnet_lib.reproduce", *map(shlex.quote, argv)])
    try:
        plan = make_plan(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        world = init_distributed(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    failure = None
    try:
        counts = run_sweep(plan, world, args)
    except (ValueError, OSError, DatasetNotFoundError) as exc:  # OSError: e.g. a folder that cannot be written
        failure = str(exc).strip().splitlines()[0] if world.is_main else ""
    except RuntimeError as exc:
        failure = collective_failure(exc, world)
        if failure is None:
            raise
    finally:
        with contextlib.suppress(RuntimeError):  # a broken process group: the job ends anyway
            shutdown(world)
    if failure is not None:
        if failure:
            print(f"{parser.prog}: error: {failure}", file=sys.stderr)
        return 2
    if world.is_main:
        print(
            f"{counts['trained']} trained, {counts['finished_before']} finished before, "
            f"{counts['interrupted']} interrupted; results in {plan.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
