"""Chapters 3 and 5: the plain and residual CIFAR nets of one training experiment, and what they reached.

:func:`train_nets` trains (or loads from the results cache) every depth and seed of an
experiment for one family, so chapter 3's plain nets and chapter 5's residual nets come
from the same recipe, data and seeds. :func:`final_errors` summarizes them over seeds;
:func:`budget_summary` says in words what the budget was, beside the paper's;
:data:`TABLE6` and :func:`table6_rows` hold He et al.'s CIFAR-10 ResNets (Table 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from resnet_lib import paper
from resnet_lib.data import ImageDataset
from resnet_lib.models import FAMILIES, blocks_per_stage, cifar_net, count_parameters
from resnet_lib.profiles import TrainingExperiment
from resnet_lib.runs import CifarRun, experiment_data, train_runs

#: Exact parameter counts of the paper's option-A CIFAR ResNets, which Table 6 prints rounded
#: (0.27M, ...); 269,722 for ResNet-20 is the count reference re-implementations report.
OPTION_A_PARAMETERS: dict[int, int] = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}

#: He et al. (2016), Table 6 (CIFAR-10, option A): depth -> (parameters, test error in %).
TABLE6: dict[int, tuple[int, float]] = {d: (n, paper.TABLE6[d][0]) for d, n in OPTION_A_PARAMETERS.items()}

#: The paper's CIFAR-10 budget (section 4.2): 64k iterations of batch 128 on the 50k training images.
PAPER_ITERATIONS = paper.ITERATIONS
PAPER_TRAIN_IMAGES = paper.TRAIN_IMAGES


def train_nets(
    family: str,
    experiment: TrainingExperiment,
    depths: tuple[int, ...] | None = None,
    progress: bool = True,
) -> dict[int, list[CifarRun]]:
    """``{depth: [run for each seed]}`` for ``family`` (``"plain"`` or ``"residual"``) under ``experiment``.

    Each run goes through :func:`resnet_lib.runs.train_runs`, so it is trained once (in one
    process per core where PyTorch runs one thread) and then loaded from the results cache,
    by this chapter or any other that asks for it.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose 'plain' or 'residual'")
    depths = experiment.depths if depths is None else depths
    jobs = [(family, d, s) for d in depths for s in experiment.seeds]
    runs: dict[int, list[CifarRun]] = {d: [] for d in depths}
    for run in train_runs(jobs, experiment, progress=progress):
        runs[run.depth].append(run)
    return runs


def seed_verdict(first: tuple[float, ...], second: tuple[float, ...]) -> str:
    """``"ahead"`` when every seed of ``first`` has a lower error than every seed of ``second``, ``"behind"``
    when every one is higher, and ``"unresolved"`` when the two spreads over seeds overlap."""
    if not first or not second:
        raise ValueError("seed_verdict needs at least one error on each side")
    if max(first) < min(second):
        return "ahead"
    if min(first) > max(second):
        return "behind"
    return "unresolved"


@dataclass(frozen=True)
class FinalErrors:
    """Final training and test error (fractions) of one net over seeds."""

    label: str
    train: tuple[float, ...]
    test: tuple[float, ...]

    @property
    def train_mean(self) -> float:
        return float(np.mean(self.train))

    @property
    def test_mean(self) -> float:
        return float(np.mean(self.test))

    @property
    def train_spread(self) -> float:
        """Largest minus smallest final training error over seeds (0 for one seed)."""
        return float(np.ptp(self.train))


def final_errors(runs: list[CifarRun]) -> FinalErrors:
    """Final-epoch training error (running average over the last epoch, as the curves show) and test error."""
    if not runs:
        raise ValueError("final_errors needs at least one run")
    return FinalErrors(
        runs[0].label,
        tuple(r.history.final["train_error"] for r in runs),
        tuple(r.history.final["test_error"] for r in runs),
    )


@torch.no_grad()
def logits(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """``model``'s logits for every image of ``x``, in eval mode, batch by batch, on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def error_rate(scores: Tensor, y: Tensor) -> float:
    """Fraction of rows of ``scores`` whose largest entry is not the label ``y``."""
    if len(scores) != len(y):
        raise ValueError(f"scores and labels differ in length: {len(scores)} vs {len(y)}")
    return (scores.argmax(1) != y).float().mean().item()


def budget_summary(experiment: TrainingExperiment) -> str:
    """One paragraph (plain text) on what an experiment trains on, for how long, beside the paper."""
    data = experiment_data(experiment.data)
    recipe = experiment.recipe
    steps_per_epoch = -(-len(data.train_y) // recipe.batch_size)
    steps = recipe.total_steps(steps_per_epoch)
    size = data.image_size
    warm = (
        f", linear warm-up over {recipe.warmup_steps} steps" if recipe.warmup_steps and recipe.warmup_lr is None else ""
    )
    if recipe.warmup_steps and recipe.warmup_lr is not None:
        warm = f", {recipe.warmup_steps} warm-up steps at lr {recipe.warmup_lr:g}"
    drops = " and ".join(f"{round(m * steps)}" for m in recipe.lr_milestones)
    seeds = len(experiment.seeds)
    return (
        f"Data: {data.label}, {len(data.train_y):,} training and {len(data.test_y):,} test images of "
        f"{size}x{size} pixels. Nets: width {experiment.width} (the paper's 16/32/64 filters at width 16). "
        f"Recipe: SGD, batch {recipe.batch_size}, lr {recipe.lr:g}{warm}, divided by {1 / recipe.lr_gamma:g} "
        f"at steps {drops}, {recipe.epochs} epochs = {steps:,} steps; {seeds} seed{'s' if seeds > 1 else ''} "
        f"{list(experiment.seeds)}. The paper: CIFAR-10, {PAPER_TRAIN_IMAGES:,} images of 32x32, "
        f"{PAPER_ITERATIONS:,} steps, i.e. {PAPER_ITERATIONS / steps:.0f}x the steps of this run."
    )


def data_sentence(data: ImageDataset) -> str:
    """What a run trained on, as words for a chapter's prose: real photos and how many, or the stand-in."""
    if data.name == "cifar10":
        size = data.image_size
        return f"on {len(data.train_y):,} real CIFAR-10 training photos averaged down to {size}×{size} pixels"
    return "on the procedurally generated stand-in for CIFAR-10, not on real photos"


def table6_rows(width: int = 16) -> list[dict]:
    """ResNet-20/32/44/56/110 as built here (option A) beside He et al.'s Table 6."""
    rows = []
    for depth, (paper_params, paper_error) in TABLE6.items():
        resnet = count_parameters(cifar_net("residual", depth, width=width))
        plain = count_parameters(cifar_net("plain", depth, width=width))
        rows.append(
            {
                "depth": depth,
                "blocks_per_stage": blocks_per_stage(depth),
                "weight_layers": 6 * blocks_per_stage(depth) + 2,
                "params_resnet": resnet,
                "params_plain": plain,
                "params_paper": paper_params,
                "paper_test_error": paper_error,
            }
        )
    return rows


def format_table6(rows: list[dict]) -> str:
    """:func:`table6_rows` as a fixed-width text table (deterministic, for nbval)."""
    header = f"{'net':>10} {'n':>3} {'layers':>6} {'params (ours)':>14} {'plain twin':>11} {'Table 6':>10} {'match':>5}"
    header += f" {'paper test err':>15}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{'ResNet-' + str(r['depth']):>10} {r['blocks_per_stage']:>3} {r['weight_layers']:>6} "
            f"{r['params_resnet']:>14,} {r['params_plain']:>11,} {r['params_paper']:>10,} "
            f"{'yes' if r['params_resnet'] == r['params_paper'] else 'NO':>5} {r['paper_test_error']:>14.2f}%"
        )
    return "\n".join(lines)


__all__ = [
    "FAMILIES",
    "PAPER_ITERATIONS",
    "PAPER_TRAIN_IMAGES",
    "TABLE6",
    "FinalErrors",
    "budget_summary",
    "data_sentence",
    "error_rate",
    "final_errors",
    "format_table6",
    "logits",
    "seed_verdict",
    "table6_rows",
    "train_nets",
]
