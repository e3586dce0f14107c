"""Chapters 3 and 5: the plain and residual CIFAR nets of one training experiment, and what they reached.

:func:`train_nets` trains (or loads from the results cache) every depth and seed of an
experiment for one family, so chapter 3's plain nets and chapter 5's residual nets come
from the same recipe, data and seeds. :func:`final_errors` summarizes them over seeds;
:func:`budget_summary` says in words what the budget was, beside the paper's;
:func:`table6_rows` sets the ResNets built here beside He et al.'s Table 6 (:data:`resnet_lib.paper.TABLE6`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from resnet_lib import paper
from resnet_lib.data import ImageDataset
from resnet_lib.measure.verdicts import AHEAD, BEHIND, Verdict, compare_seeds
from resnet_lib.models import FAMILIES, blocks_per_stage, cifar_net, count_parameters
from resnet_lib.models.state import preserved_state
from resnet_lib.profiles import CifarExperiment
from resnet_lib.runs import CifarRun, experiment_data, train_runs

#: The rows of Table 6 that :func:`table6_rows` builds (ResNet-1202, 19.4M parameters, is left to chapter 8).
TABLE6_DEPTHS = (20, 32, 44, 56, 110)


def train_nets(
    family: str,
    experiment: CifarExperiment,
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


@dataclass(frozen=True)
class SlowStartControl:
    """Chapter 3's control: the deep plain net trained with ``factor`` times the shallow one's steps, every seed.

    ``by`` says how: ``"deep"`` (the deep net's recipe stretched) or ``"shallow"`` (the shallow net's compressed).
    """

    factor: int
    by: str
    deep: list[CifarRun]
    shallow: list[CifarRun]

    @property
    def verdict(self) -> Verdict:
        """The deep net (``factor`` times the steps) against the shallow one in final training error, by seed."""
        return compare_seeds(final_errors(self.deep).train, final_errors(self.shallow).train)

    @property
    def steps(self) -> tuple[int, int]:
        """Steps the deep and the shallow net trained for."""
        return self.deep[0].history.final["step"], self.shallow[0].history.final["step"]


#: Chapter 3's exercise 5 compresses plain-20 to 1/EXERCISE_HEAD_START of its steps (``experiment.shorter``).
EXERCISE_HEAD_START = 5


def train_slow_start_control(
    experiment: CifarExperiment, depths: tuple[int, int] = paper.FIGURE1_DEPTHS, progress: bool = True
) -> SlowStartControl | None:
    """The plain nets of ``experiment``'s slow-start control, through the results cache; ``None`` where it has none.

    Only the stretched or compressed nets are new: the other side is the experiment's own runs.
    """
    factor, by = experiment.slow_start_factor, experiment.slow_start_by
    if not factor:
        return None
    shallow, deep = depths
    if shallow >= deep:
        raise ValueError(f"depths must be (shallow, deep) with shallow < deep, got {depths!r}")
    deep_experiment = experiment.longer(factor) if by == "deep" else experiment
    shallow_experiment = experiment.shorter(factor) if by == "shallow" else experiment
    deep_runs = train_nets("plain", deep_experiment, depths=(deep,), progress=progress)[deep]
    shallow_runs = train_nets("plain", shallow_experiment, depths=(shallow,), progress=progress)[shallow]
    return SlowStartControl(factor, by, deep_runs, shallow_runs)


#: What chapter 3 can say about the deep plain net's higher training error, from the run and the control.
NO_GAP, DEGRADATION, SLOW_START, UNTESTED, UNSETTLED = "no gap", "degradation", "slow start", "untested", "unsettled"
OUTCOMES = (NO_GAP, DEGRADATION, SLOW_START, UNTESTED, UNSETTLED)


def degradation_outcome(equal_steps: Verdict, control: Verdict | None) -> str:
    """One of :data:`OUTCOMES`, from the deep net against the shallow one at equal steps and in the control.

    ``equal_steps`` and ``control`` compare the deep net's final training error with the shallow net's
    (:func:`resnet_lib.measure.verdicts.compare_seeds`, deep first); ``control`` is ``None`` where the
    slow-start control did not run. Degradation needs both: behind at equal steps, and still behind with
    more steps than the shallow net. Ahead in the control is a slow start: given the steps, it caught up.
    """
    if equal_steps.direction != BEHIND:
        return NO_GAP
    if control is None:
        return UNTESTED
    return {BEHIND: DEGRADATION, AHEAD: SLOW_START}.get(control.direction, UNSETTLED)


def equal_steps_sentence(verdict: Verdict, deep: str = "plain-56", shallow: str = "plain-20") -> str:
    """What the deep net against the shallow one at equal steps (``verdict``, deep first) shows, in one sentence."""
    return verdict.words(
        f"{deep.capitalize()} ended ahead of {shallow} in training error {verdict.basis}, so this run does not "
        "show the degradation.",
        f"{deep.capitalize()} ended behind {shallow} in training error {verdict.basis}; whether that is degradation "
        "or a slow start is the next section's question.",
        f"{deep.capitalize()} did not end behind {shallow} in every seed ({verdict.basis}), so this run does not "
        "show the degradation.",
    )


def control_design(control: SlowStartControl | None, deep: str = "plain-56", shallow: str = "plain-20") -> str:
    """What the slow-start control trained, as words for the chapter (``None``: that it trained nothing)."""
    if control is None:
        return "This profile trains no such control."
    k, (deep_steps, shallow_steps) = control.factor, control.steps
    if control.by == "deep":
        return (
            f"This profile trains {deep} again, every seed, for {k} times the steps ({deep_steps:,} against "
            f"{shallow}'s {shallow_steps:,}): its recipe stretched, with the same warm-up and the learning rate "
            "divided at the same fractions of training."
        )
    return (
        f"Stretching {deep} would mean training it again for several times its steps, so this profile compresses "
        f"{shallow} instead: "
        f"{shallow} trains again, every seed, for 1/{k} of its steps ({shallow_steps:,} against {deep}'s "
        f"{deep_steps:,}), epochs, warm-up and learning-rate drops all divided by {k}. {deep.capitalize()} then "
        f"has {k} times its steps, as it would if stretched; what this cannot test is a deep net that needs a "
        f"fixed number of steps, more than {deep_steps - shallow_steps:,}, before it starts to learn."
    )


def slow_start_sentences(
    outcome: str, control: SlowStartControl | None, deep: str = "plain-56", shallow: str = "plain-20"
) -> tuple[str, str]:
    """The chapter's verdict on degradation against a slow start, and its one-line takeaway, for ``outcome``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; choose one of: {', '.join(OUTCOMES)}")
    if outcome == NO_GAP:
        return (
            f"At equal steps {deep} was not behind {shallow} in every seed, so there is no gap for a slow start "
            "to explain.",
            f"At this page's budget {deep} did not end behind {shallow} in every seed: no degradation shown.",
        )
    if outcome == UNTESTED:
        return (
            "This profile does not run the slow-start control, so it cannot tell degradation from a slow start: "
            f"{deep} may only need more steps than {shallow} to fit its training set as well.",
            f"At this page's budget {deep} ended behind {shallow}, but without the slow-start control this page "
            "cannot tell degradation from a slow start.",
        )
    if control is None:
        raise ValueError(f"the outcome {outcome!r} needs the control's runs")
    k, basis = control.factor, control.verdict.basis
    d, s = 100 * final_errors(control.deep).train_mean, 100 * final_errors(control.shallow).train_mean
    numbers = f"{d:.1f}% against {s:.1f}% training error, mean over seeds"
    with_steps = f"With {k} times {shallow}'s steps, {deep}"
    if outcome == DEGRADATION:
        return (
            f"{with_steps} still ends behind it {basis} ({numbers}): more steps did not close the gap, so at "
            f"this budget it is degradation, not a start {k} times slower.",
            f"At this page's budget {deep} fits its training set worse than {shallow} even with {k} times the "
            "steps: the degradation, at a small scale.",
        )
    if outcome == SLOW_START:
        return (
            f"{with_steps} ends ahead of it {basis} ({numbers}): given the steps it caught up, so at this "
            "budget the gap above is a slow start, not degradation.",
            f"At this page's budget {deep}'s higher training error went away with {k} times the steps: a slow "
            "start, not the degradation of He et al.",
        )
    return (
        f"{with_steps} is not behind it in every seed ({basis}; {numbers}): this run cannot tell degradation "
        "from a slow start.",
        f"At this page's budget {deep} ended behind {shallow}, but with {k} times the steps not in every seed: "
        "this page cannot tell degradation from a slow start.",
    )


@torch.no_grad()
def logits(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """``model``'s logits for every image of ``x``, in eval mode, batch by batch, on the CPU."""
    device = next(model.parameters()).device
    with preserved_state(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def error_rate(scores: Tensor, y: Tensor) -> float:
    """Fraction of rows of ``scores`` whose largest entry is not the label ``y``."""
    if len(scores) != len(y):
        raise ValueError(f"scores and labels differ in length: {len(scores)} vs {len(y)}")
    return (scores.argmax(1) != y).float().mean().item()


def budget_summary(experiment: CifarExperiment) -> str:
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
        f"{list(experiment.seeds)}. The paper: CIFAR-10, {paper.TRAIN_IMAGES:,} images of 32x32, "
        f"{paper.ITERATIONS:,} steps, i.e. {paper.ITERATIONS / steps:.0f}x the steps of this run."
    )


def data_sentence(data: ImageDataset) -> str:
    """What a run trained on, as words for a chapter's prose: real photos and how many, or the stand-in."""
    if data.name == "cifar10":
        size = data.image_size
        return f"on {len(data.train_y):,} real CIFAR-10 training photos averaged down to {size}×{size} pixels"
    return "on the procedurally generated stand-in for CIFAR-10, not on real photos"


def rounded_like(count: int, printed: float) -> float:
    """``count`` in millions, rounded to as many decimals as the paper printed in ``printed`` (0.27, 1.7, ...)."""
    text = repr(float(printed))
    decimals = len(text.split(".")[1]) if "." in text else 0
    return round(count / 1e6, decimals)


def table6_rows(width: int = 16) -> list[dict]:
    """ResNet-20/32/44/56/110 as built here (option A) beside the figures He et al.'s Table 6 prints.

    ``params_paper_m`` is the paper's own count in millions (0.27, 0.46, 0.66, 0.85, 1.7);
    ``params_rounded_m`` is this library's count rounded to the same number of decimals, so
    ``match`` compares what the paper printed with what we built, not our count with itself.
    """
    rows = []
    for depth in TABLE6_DEPTHS:
        paper_error, paper_millions = paper.TABLE6[depth]
        resnet = count_parameters(cifar_net("residual", depth, width=width))
        plain = count_parameters(cifar_net("plain", depth, width=width))
        rounded = rounded_like(resnet, paper_millions)
        rows.append(
            {
                "depth": depth,
                "blocks_per_stage": blocks_per_stage(depth),
                "weight_layers": 6 * blocks_per_stage(depth) + 2,
                "params_resnet": resnet,
                "params_plain": plain,
                "params_rounded_m": rounded,
                "params_paper_m": paper_millions,
                "match": rounded == paper_millions,
                "paper_test_error": paper_error,
                "paper_error_note": "best of 5" if depth == 110 else "",
            }
        )
    return rows


def format_table6(rows: list[dict]) -> str:
    """:func:`table6_rows` as a fixed-width text table (deterministic, for nbval), with the paper's own counts."""
    header = (
        f"{'net':>10} {'n':>3} {'layers':>6} {'params (ours)':>14} {'plain twin':>11} {'ours, rounded':>14}"
        f" {'Table 6':>8} {'match':>5} {'paper test err':>15}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        note = f" ({r['paper_error_note']})" if r["paper_error_note"] else ""
        lines.append(
            f"{'ResNet-' + str(r['depth']):>10} {r['blocks_per_stage']:>3} {r['weight_layers']:>6} "
            f"{r['params_resnet']:>14,} {r['params_plain']:>11,} {str(r['params_rounded_m']) + 'M':>14} "
            f"{str(r['params_paper_m']) + 'M':>8} {'yes' if r['match'] else 'NO':>5} "
            f"{r['paper_test_error']:>14.2f}%{note}"
        )
    if any(r["paper_error_note"] for r in rows):
        mean, sd = paper.RESNET110_MEAN_STD
        lines.append(
            f"ResNet-110's {paper.TABLE6[110][0]:.2f}% is the best of 5 runs; their mean is {mean:.2f} ± {sd:.2f}%."
        )
    return "\n".join(lines)


def _torchvision_row(name: str, model: nn.Module) -> dict:
    stages = [getattr(model, f"layer{i}") for i in range(1, 5)]
    last = stages[0][-1]
    bottleneck = hasattr(last, "bn3")
    widths = [(stage[-1].bn3 if bottleneck else stage[-1].bn2).num_features for stage in stages]
    stem, pool = model.conv1, model.maxpool
    return {
        "net": f"torchvision {name}",
        "input": "224x224",
        "stem": f"{stem.kernel_size[0]}x{stem.kernel_size[0]}/{stem.stride[0]} conv + "
        f"{pool.kernel_size}x{pool.kernel_size}/{pool.stride} max-pool",
        "blocks": "-".join(str(len(stage)) for stage in stages),
        "block": "bottleneck" if bottleneck else "basic",
        "widths": "/".join(str(w) for w in widths),
        "shortcut": "B (1x1 proj.)",
        "params": count_parameters(model),
    }


def architecture_rows(depths: tuple[int, ...] = (20, 56, 110)) -> list[dict]:
    """The book's CIFAR ResNets beside torchvision's ResNet-18 and ResNet-50, read off the built models.

    Stem, blocks per stage, block type, output widths per stage, shortcut and parameter count; torchvision's
    nets are built without weights (nothing is downloaded).
    """
    from torchvision.models import resnet18, resnet50

    rows = []
    for depth in depths:
        net = cifar_net("residual", depth)
        stages = (net.stage1, net.stage2, net.stage3)
        rows.append(
            {
                "net": f"ResNet-{depth} (this book)",
                "input": "32x32",
                "stem": f"3x3/1 conv, {net.stem[0].out_channels} filters",
                "blocks": "-".join(str(len(stage)) for stage in stages),
                "block": "basic",
                "widths": "/".join(str(stage[-1].bn2.num_features) for stage in stages),
                "shortcut": f"{net.shortcut_option} (zero pad)",
                "params": count_parameters(net),
            }
        )
    rows += [_torchvision_row("ResNet-18", resnet18()), _torchvision_row("ResNet-50", resnet50())]
    return rows


def format_architectures(rows: list[dict]) -> str:
    """:func:`architecture_rows` as a fixed-width text table (deterministic, for nbval)."""
    columns = [
        ("net", "net"),
        ("input", "input"),
        ("stem", "stem"),
        ("blocks", "blocks per stage"),
        ("block", "block"),
        ("widths", "widths"),
        ("shortcut", "shortcut"),
        ("params", "parameters"),
    ]
    cells = [[f"{r[k]:,}" if k == "params" else str(r[k]) for k, _ in columns] for r in rows]
    sizes = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    header = "  ".join(title.ljust(n) for (_, title), n in zip(columns, sizes, strict=True))
    lines = [header, "-" * len(header)]
    lines += ["  ".join(c.ljust(n) for c, n in zip(row, sizes, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


__all__ = [
    "DEGRADATION",
    "EXERCISE_HEAD_START",
    "NO_GAP",
    "OUTCOMES",
    "SLOW_START",
    "TABLE6_DEPTHS",
    "UNSETTLED",
    "UNTESTED",
    "FinalErrors",
    "SlowStartControl",
    "architecture_rows",
    "budget_summary",
    "control_design",
    "data_sentence",
    "degradation_outcome",
    "equal_steps_sentence",
    "error_rate",
    "final_errors",
    "format_architectures",
    "format_table6",
    "logits",
    "rounded_like",
    "slow_start_sentences",
    "table6_rows",
    "train_nets",
    "train_slow_start_control",
]
