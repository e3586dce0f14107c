"""The command line of ``python -m resnet_lib.reproduce``: options, their one-line errors, ``main``."""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import sys
from pathlib import Path

from resnet_lib.data import DATASETS, DatasetNotFoundError
from resnet_lib.distributed import (
    DEFAULT_RENDEZVOUS_TIMEOUT_S,
    DEVICES,
    MAX_RENDEZVOUS_TIMEOUT_S,
    RENDEZVOUS_ENV,
    collective_failure,
    init_distributed,
    launched_by_torchrun,
    shutdown,
)
from resnet_lib.models import FAMILIES, blocks_per_stage
from resnet_lib.profiles import PROFILES
from resnet_lib.recipe import PRECISIONS
from resnet_lib.reproduce.plan import make_plan
from resnet_lib.reproduce.sweep import WORKER_OPTIONS, parse_worker, run_in_processes, run_sweep
from resnet_lib.training import MAX_SEED

#: Sane ranges of the options that would otherwise fail deep inside training (or overflow).
MAX_LR = 1000.0
MAX_WIDTH = 256
MAX_RUNS_PER_GPU = 32

EPILOG = """\
output (in --out):
  runs/<family>-<depth>-s<seed>.json   one results file per run: history, configuration, machine
  runs/<family>-<depth>-s<seed>.pt     its trained weights
  summary.md, summary.csv              test error, mean ± std over seeds, beside the paper's Table 6
  fig6.png                             training (dashed) and test (solid) error against iterations
  sweep.json                           the settings every run in this folder shares, the data they
                                       resolved to and resnet_lib's source hash
  .lock                                held while a sweep writes here

resuming: run the same command again. Finished runs are read back (checked: schema, checksum of
the record, SHA-256 of the weights), not redone; one that fails the check, or whose weights are
lost, is trained again. A run that was interrupted continues from its checkpoint (runs/*.ckpt,
written after every epoch, with a SHA-256 checked before it is loaded); a damaged checkpoint is
discarded with one warning line and the run starts again.

divergence: a run whose training, test or validation loss becomes non-finite, whose training loss
exceeds the recipe's divergence_factor (100) times its first one, or whose weights or BatchNorm
statistics hold a NaN or infinity, stops there; the summary lists it as diverged, not averaged.

several runs at once (--runs-per-gpu K): K processes share each visible GPU (or the CPU), each
training its share of the runs and writing their results files as one process would; small nets
leave a GPU idle between launches, and K runs fill it. Each run is trained exactly as alone.
  python -m resnet_lib.reproduce --profile full --runs-per-gpu 4 --out results/full
(the processes are this command again with --worker I/N: the runs I, I+N, ... and no summary.)

on a GPU each training step is replayed as one CUDA graph and the divergence checks are read back
every 50 steps (the verdict and its step are the same); --no-cuda-graph steps eagerly instead.

several GPUs or machines (PyTorch's DistributedDataParallel; NCCL on GPUs, gloo on CPU):
  torchrun --standalone --nproc-per-node 4 -m resnet_lib.reproduce --profile full
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
      -m resnet_lib.reproduce --profile full        (the same command on every machine)
Each global batch of --batch-size images is split across the processes; rank 0 writes.
Every process must join within --rendezvous-timeout seconds (default 120), and must load the
same data (compared by a SHA-256 of the tensors before training); a process that stops or hangs
later ends the job after $RESNET_BOOK_COLLECTIVE_TIMEOUT seconds (default 1800). Each is one line.
(Across machines, torchrun's own rendezvous of the nodes comes first: bound it with
--rdzv-conf join_timeout=120.)

one sweep per folder: a sweep holds --out/.lock while it runs (a second one into the same folder
stops at once, naming the first one's pid); sweep.json records the resolved dataset and the
source hash of resnet_lib, and runs of another dataset or library version are never mixed in.

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


def _int_between(minimum: int, maximum: int):
    def parse(text: str) -> int:
        value = _int_at_least(minimum)(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected a number from {minimum} to {maximum}, got {value}")
        return value

    return parse


def _positive_float_at_most(maximum: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected a positive number at most {maximum:g}, got {text!r}")
        return value

    return parse


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder name, got an empty one (it would write into the working "
                                         "directory); name a folder, e.g. results/mine")  # fmt: skip
    return Path(text).expanduser()


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
    sweep.add_argument(
        "--seeds",
        nargs="+",
        type=_int_between(0, MAX_SEED),
        metavar="S",
        help=f"seeds, 0 to {MAX_SEED} (default: profile's)",
    )
    sweep.add_argument(
        "--out", type=_folder, default=None, metavar="DIR", help="results folder (default: results/<profile>)"
    )
    sweep.add_argument("--shortcut", choices=["A", "B"], default="A", help="residual shortcut option (default: A)")
    data = p.add_argument_group("data (override the profile)")
    data.add_argument("--dataset", choices=DATASETS, help="cifar10, the procedural stand-in, or auto")
    data.add_argument("--n-train", type=_int_at_least(1), metavar="N", help="training images (after the split)")
    data.add_argument("--n-val", type=_int_at_least(0), metavar="N", help="images held out for validation")
    data.add_argument("--n-test", type=_int_at_least(1), metavar="N", help="test images")
    data.add_argument("--image-size", type=int, choices=[32, 16, 8], help="image side in pixels (32: CIFAR's)")
    train = p.add_argument_group("recipe (override the profile)")
    train.add_argument(
        "--width",
        type=_int_between(1, MAX_WIDTH),
        metavar="W",
        help=f"filters of the first stage, 1 to {MAX_WIDTH} (paper: 16)",
    )
    train.add_argument("--epochs", type=_int_at_least(1), metavar="E", help="epochs")
    train.add_argument(
        "--max-steps", type=_int_at_least(0), metavar="N", help="stop after N iterations (0: no limit; full: 64000)"
    )
    train.add_argument(
        "--batch-size", type=_int_at_least(1), metavar="B", help="global batch, split across processes (paper: 128)"
    )
    train.add_argument(
        "--lr",
        type=_positive_float_at_most(MAX_LR),
        metavar="LR",
        help=f"peak learning rate, above 0 and at most {MAX_LR:g} (paper: 0.1)",
    )
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
        "--rendezvous-timeout",
        type=_positive_float_at_most(MAX_RENDEZVOUS_TIMEOUT_S),
        metavar="S",
        help=f"under torchrun: seconds every process has to join, at most {MAX_RENDEZVOUS_TIMEOUT_S:g} "
        f"(default: ${RENDEZVOUS_ENV}, else {DEFAULT_RENDEZVOUS_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--stop-after-epochs",
        type=_int_at_least(1),
        metavar="E",
        help="end each run after E more epochs, keeping its checkpoint, as an interruption would",
    )
    run.add_argument(
        "--summary-only",
        action="store_true",
        help="train nothing; rewrite the summary and plot from finished runs (an error, and the stale summary and "
        "plot removed, when there are none)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--runs-per-gpu",
        type=_int_between(1, MAX_RUNS_PER_GPU),
        default=1,
        metavar="K",
        help=f"train K runs at once on each visible GPU (on the CPU: K processes), 1 to {MAX_RUNS_PER_GPU}; "
        "each process writes its own runs' results files (default 1; not under torchrun)",
    )
    run.add_argument(
        "--no-cuda-graph",
        action="store_true",
        help="on a GPU, step eagerly instead of replaying each training step as a CUDA graph",
    )
    run.add_argument("--worker", type=parse_worker, default=None, help=argparse.SUPPRESS)  # set by --runs-per-gpu
    return p


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m resnet_lib.reproduce`` (and ``resnet-book-reproduce``)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    own = argv[: -len(WORKER_OPTIONS) - 1] if args.worker is not None else argv  # a worker: the parent's command
    args.command = " ".join(["python -m resnet_lib.reproduce", *map(shlex.quote, own)])
    try:
        plan = make_plan(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.runs_per_gpu > 1 and args.worker is None and not args.summary_only:
        if launched_by_torchrun():
            parser.error("--runs-per-gpu trains whole runs side by side; under torchrun each run is spread over the "
                         "processes instead: use one or the other")  # fmt: skip
        try:
            return run_in_processes(plan, args, own)
        except (ValueError, OSError) as exc:
            print(f"{parser.prog}: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
            return 2
    try:
        world = init_distributed(args.device, rendezvous_timeout=args.rendezvous_timeout)
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
            ("" if args.worker is None else f"worker {args.worker[0] + 1} of {args.worker[1]}: ")
            + f"{counts['trained']} trained, {counts['finished_before']} finished before, "
            f"{counts['interrupted']} interrupted; results in {plan.out}"
        )
    return 0
