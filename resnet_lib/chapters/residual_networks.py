"""Chapter 5's measurements as plain data and words: the budget runs' comparisons over seeds, chapter 4's
correlations carried forward, and the nets trained to convergence.

The budget runs' sentences go through the book's one verdict rule (:mod:`resnet_lib.measure.verdicts`).
Chapter 4's correlations are re-measured here with chapter 4's own functions (a few seconds on a CPU).
The converged nets: the published ResNet-20/32/44/56 scored on the test photos at hand, their depth orderings
by a paired test, and He et al.'s Fig. 7 (layer responses) on them.

The nets are :mod:`resnet_lib.models.published`'s, evaluated here, never trained. Every tolerance comes from
the photo count: a Wilson interval per net (:func:`~resnet_lib.measure.significance.error_interval`) and
McNemar's exact test per pair on the same photos (:func:`~resnet_lib.measure.significance.paired_comparison`).
On the stand-in the nets see images unlike any they were trained on: only their error is measured there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset, auto_dataset
from resnet_lib.measure.gradients import gradient_samples, shattering_sweep
from resnet_lib.measure.responses import responses_and_logits
from resnet_lib.measure.significance import PairedComparison, error_interval, mistakes, paired_comparison
from resnet_lib.measure.statistics import lag1_autocorrelation, pair_correlation_noise_floor, power_law_exponent
from resnet_lib.measure.verdicts import Verdict, compare_seeds, compare_to_reference
from resnet_lib.models.published import PUBLISHED, load_available, published_photos
from resnet_lib.models.scalar import NetSpec
from resnet_lib.paper import TABLE6
from resnet_lib.profiles import ConvergedExperiment, ShatteringExperiment

#: Family-wise miss rate of the check cells' intervals: a correctly loaded net, scored on a fair sample of
#: CIFAR-10's test photos, fails "its interval holds the publisher's error" with at most this probability.
CHECK_MISS_RATE = 0.001


def load_photos(experiment: ConvergedExperiment, n_train: int = 1, verbose: bool = False) -> ImageDataset:
    """The test photos the published nets are scored on: ``experiment.n_test`` of CIFAR-10 (``None``: all at
    hand), or ``experiment.standin_test`` of the stand-in (the weights mean nothing there)."""
    _check_whole("standin_test", experiment.standin_test)
    standin = auto_dataset() == "standin"
    data = published_photos(n_train=n_train, n_test=experiment.standin_test if standin else experiment.n_test,
                            verbose=verbose)  # fmt: skip
    if data.name == "standin" and len(data.test_y) > experiment.standin_test:  # "auto" fell back to the stand-in
        data.test_x, data.test_y = data.test_x[: experiment.standin_test], data.test_y[: experiment.standin_test]
    return data


def _check_whole(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"ConvergedExperiment.{name} must be a whole number >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class ConvergedError:
    """One published net's test error on the photos at hand, its Wilson interval, and the errors stated for it."""

    depth: int
    errors: int
    n: int
    low: float
    high: float
    stated: float
    paper: float

    @property
    def label(self) -> str:
        return f"ResNet-{self.depth}"

    @property
    def error(self) -> float:
        return self.errors / self.n


@dataclass
class ConvergedStudy:
    """The published nets on one set of test photos: errors, paired orderings and (real photos) Fig. 7."""

    dataset: str
    dataset_label: str
    n_test: int
    num_classes: int
    errors: dict[int, ConvergedError]
    missing: dict[int, str]
    wrong: dict[int, np.ndarray] = field(repr=False)
    pairs: list[PairedComparison]
    #: depth -> (groups, layers) response stds, one row per disjoint group of images; empty on the stand-in.
    response_groups: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    response_images: int = 0

    @property
    def chance(self) -> float:
        """The error of a net that guesses (or answers one class for everything, on balanced classes)."""
        return 1 - 1 / self.num_classes

    def responses(self) -> dict[int, np.ndarray]:
        """depth -> the mean over image groups of each layer's response std (He et al.'s Fig. 7, input side first)."""
        return {d: g.mean(0) for d, g in self.response_groups.items()}


def converged_study(experiment: ConvergedExperiment, progress: bool = True) -> ConvergedStudy:
    """Score the published nets of ``experiment.depths`` on the test photos, pair them, and (real photos
    only) measure Fig. 7 over the first ``response_images`` photos in ``response_groups`` disjoint groups."""
    groups = _check_whole("response_groups", experiment.response_groups)
    data = load_photos(experiment)
    nets, missing = load_available(experiment.depths)
    n = len(data.test_y)
    real = data.name == "cifar10"
    n_responses = min(experiment.response_images, n)
    errors, wrong, response_groups = {}, {}, {}
    for depth, net in tqdm(nets.items(), desc="published nets", unit="net", disable=not progress):
        if real:  # one pass: the logits, and Fig. 7's stds over the first n_responses photos
            response_groups[depth], logits = responses_and_logits(net, data.test_x, n_responses, groups)
            wrong[depth] = (logits.argmax(1) != data.test_y).numpy()
        else:
            wrong[depth] = mistakes(net, data.test_x, data.test_y)
        k = int(wrong[depth].sum())
        low, high = error_interval(k, n)
        errors[depth] = ConvergedError(depth, k, n, low, high, PUBLISHED[depth].stated_error / 100,
                                       TABLE6[depth][0] / 100)  # fmt: skip
    pairs = [
        paired_comparison(wrong[deep], wrong[shallow], f"ResNet-{deep}", f"ResNet-{shallow}")
        for shallow, deep in itertools.combinations(sorted(wrong), 2)
    ]
    return ConvergedStudy(data.name, data.label, n, len(data.classes), errors, missing, wrong, pairs,
                          response_groups, n_responses if real else 0)  # fmt: skip


# --------------------------------------------------------------------------- the budget runs, over seeds


def _points(values: Sequence[float]) -> str:
    return ", ".join(f"{100 * v:.1f}%" for v in values)


def seed_comparison(first: Sequence[float], second: Sequence[float], names: tuple[str, str], measure: str) -> str:
    """``names[0]`` against ``names[1]`` in ``measure`` (errors as fractions, one per seed, the same seeds on
    both sides), in the words of :func:`~resnet_lib.measure.verdicts.compare_seeds` paired by seed."""
    verdict = compare_seeds(first, second)
    a, b = names
    gaps = 100 * (np.asarray(second, dtype=float) - np.asarray(first, dtype=float))
    size = f"by {abs(gaps).min():.1f} to {abs(gaps).max():.1f} points" if len(gaps) > 1 else f"by {abs(gaps[0]):.1f}"
    shown = f"({a} {_points(first)}; {b} {_points(second)}, seed by seed)"
    return verdict.words(
        f"{a} ends with a lower {measure} than {b} {verdict.basis}, {size} {shown}",
        f"{a} ends with a higher {measure} than {b} {verdict.basis}, {size} {shown}",
        f"this run does not order {a} and {b} in {measure} ({verdict.basis}: {shown[1:]}",
    )


def degradation_verdicts(
    plain: tuple[Sequence[float], Sequence[float]], residual: tuple[Sequence[float], Sequence[float]]
) -> tuple[Verdict, Verdict]:
    """Training errors (shallow, deep) per seed of each family: whether the deeper ResNet trains to a lower error
    than the shallower (chapter 3's degradation gone), and whether the shortcuts shrink the deep-minus-shallow gap."""
    (p_shallow, p_deep), (r_shallow, r_deep) = plain, residual
    gone = compare_seeds(r_deep, r_shallow)
    gap_res = np.asarray(r_deep, dtype=float) - np.asarray(r_shallow, dtype=float)
    gap_plain = np.asarray(p_deep, dtype=float) - np.asarray(p_shallow, dtype=float)
    return gone, compare_seeds(gap_res, gap_plain)


def degradation_sentence(
    plain: tuple[Sequence[float], Sequence[float]], residual: tuple[Sequence[float], Sequence[float]],
    depths: tuple[int, int],
) -> str:  # fmt: skip
    """Chapter 3's degradation (the deeper plain net trains worse) with shortcuts, in words both ways."""
    gone, shrunk = degradation_verdicts(plain, residual)
    shallow, deep = depths
    gap_res = 100 * (np.asarray(residual[1], dtype=float) - np.asarray(residual[0], dtype=float))
    gap_plain = 100 * (np.asarray(plain[1], dtype=float) - np.asarray(plain[0], dtype=float))
    gaps = (f"ResNet-{deep} minus ResNet-{shallow}: {', '.join(f'{g:+.1f}' for g in gap_res)} points; "
            f"plain-{deep} minus plain-{shallow}: {', '.join(f'{g:+.1f}' for g in gap_plain)}")  # fmt: skip
    first = gone.words(
        f"with shortcuts the deeper net trains better: ResNet-{deep} ends with a lower training error than "
        f"ResNet-{shallow} {gone.basis}, so on this run the degradation is gone",
        f"with shortcuts the deeper net still trains worse: ResNet-{deep} ends with a higher training error than "
        f"ResNet-{shallow} {gone.basis}, so on this run the degradation is not gone",
        f"this run does not order ResNet-{deep} and ResNet-{shallow} in training error ({gone.basis})",
    )
    second = shrunk.words(
        f"the shortcuts shrink the cost of depth: the deep-minus-shallow gap in training error is smaller for the "
        f"ResNets than for the plain nets {shrunk.basis}",
        f"the deep-minus-shallow gap in training error is larger for the ResNets than for the plain nets "
        f"{shrunk.basis}",
        f"whether the shortcuts shrink the deep-minus-shallow gap in training error this run cannot say "
        f"({shrunk.basis})",
    )
    return f"{first}; {second} ({gaps})"


def line_comparison(first: Sequence[float], second: Sequence[float]) -> Verdict:
    """Two nets' lag-1 autocorrelations along the same lines between image pairs, one value per pair: the rule of
    :func:`~resnet_lib.measure.verdicts.compare_seeds` (higher is smoother), paired by image pair."""
    verdict = compare_seeds(first, second, better="higher")
    return replace(verdict, basis=verdict.basis.replace("one seed", "one image pair").replace("seeds", "image pairs"))


# --------------------------------------------------------------------------- chapter 4, carried forward

#: Chapter 4's check cell calls the ResNet's exponent steeper than the theory's -0.5 only below -0.65: over
#: 8 groups of nets it measured -1.15..-0.87 with an sd of ~0.10, so 0.15 is 1.5 sd of one fit.
EXPONENT_TOLERANCE = 0.15
THEORY_EXPONENT = -0.5


@dataclass(frozen=True)
class ShatteringCarry:
    """Chapter 4's numbers that chapter 5 leans on, re-measured with chapter 4's functions and profile."""

    exponent: float  # correlation ~ L**exponent for one-layer ResNet modules with BatchNorm
    depth: int  # the deepest depth of chapter 4's sweep
    lag1_one_layer: np.ndarray  # per seed, ResNet + BN of `depth` one-layer modules
    lag1_two_layer: np.ndarray  # per seed, the same depth in He et al.'s two-layer blocks
    lag1_plain: np.ndarray  # per seed, the plain net with BatchNorm at the same depth


def shattering_carry(cfg: ShatteringExperiment) -> ShatteringCarry:
    """Measure, as chapter 4 does, the ResNet's correlation exponent and lag-1 at its deepest depth by block."""
    floor = pair_correlation_noise_floor(len(cfg.seeds), cfg.n_inputs)
    resnet = NetSpec(1, residual=True, batch_norm=True)
    sweep = shattering_sweep([resnet], cfg.depths, cfg.seeds, cfg.units, cfg.n_inputs, progress=False)
    deepest = max(cfg.depths)

    def lag1(spec: NetSpec) -> np.ndarray:
        return lag1_autocorrelation(gradient_samples(spec, cfg.seeds, cfg.units, cfg.n_inputs))

    return ShatteringCarry(
        power_law_exponent(cfg.depths, sweep.pair[resnet.kind], floor),
        deepest,
        sweep.lag1[resnet.kind][list(cfg.depths).index(deepest)],
        lag1(NetSpec(deepest, residual=True, batch_norm=True, block_layers=2)),
        lag1(NetSpec(deepest, batch_norm=True)),
    )


def carry_sentences(carry: ShatteringCarry) -> dict[str, str]:
    """What chapter 4 measured, in words through the verdict rule: ``"exponent"`` (whether the correlation falls
    with depth, and against the theory's L^-0.5) and ``"block"`` (two-layer blocks against one-layer modules,
    and against the plain net)."""
    rate = compare_to_reference(carry.exponent, THEORY_EXPONENT, EXPONENT_TOLERANCE, better="higher")
    falls = compare_to_reference(carry.exponent, 0.0, EXPONENT_TOLERANCE, better="higher")
    law = f"like L to the power {carry.exponent:.2f}, against the theory's {THEORY_EXPONENT} (1/√L)"
    exponent = falls.words(
        f"grows with depth, against Balduzzi et al.'s theory: {law}",
        rate.words(
            f"falls with depth, more slowly than Balduzzi et al.'s theory: {law}",
            f"falls with depth, faster than Balduzzi et al.'s theory: {law}",
            f"falls with depth at the rate of Balduzzi et al.'s theory: {law} (within {EXPONENT_TOLERANCE})",
        ),
        f"does not change with depth by more than {EXPONENT_TOLERANCE} in its exponent, against Balduzzi et al.'s "
        f"theory: {law}",
    )
    two, one, plain = (float(v.mean()) for v in (carry.lag1_two_layer, carry.lag1_one_layer, carry.lag1_plain))
    block = compare_seeds(carry.lag1_two_layer, carry.lag1_one_layer, better="higher")
    floor = compare_seeds(carry.lag1_two_layer, carry.lag1_plain, better="higher")
    n = f"{carry.depth} layers"
    said = block.words(
        f"He et al.'s two-layer block keeps more of it than one-layer modules: at {n}, lag-1 {two:.2f} against "
        f"{one:.2f}, higher {block.basis}",
        f"He et al.'s two-layer block keeps less of it than one-layer modules: at {n}, lag-1 {two:.2f} against "
        f"{one:.2f}, lower {block.basis}",
        f"at {n}, He et al.'s two-layer block and one-layer modules are not told apart (lag-1 {two:.2f} against "
        f"{one:.2f}; {block.basis})",
    )
    above = floor.words(
        f"still above the plain net with BatchNorm ({plain:.2f}) {floor.basis}",
        f"below even the plain net with BatchNorm ({plain:.2f}) {floor.basis}",
        f"not told apart from the plain net with BatchNorm ({plain:.2f}; {floor.basis})",
    )
    return {"exponent": exponent, "block": f"{said}, and {above}"}


# --------------------------------------------------------------------------- words


def pair_verdict(comparison: PairedComparison) -> str:
    """``"deeper better"``, ``"deeper worse"`` or ``"unresolved"`` for a pair named deeper net first."""
    return {"fewer": "deeper better", "more": "deeper worse", "unresolved": "unresolved"}[comparison.verdict]


def pairs_sentence(pairs: list[PairedComparison], n: int) -> str:
    """Which depth pairs the photos resolve, and which they do not, in words that follow the counts."""
    if not pairs:
        return "no pair of published nets could be compared here"
    resolved = [c for c in pairs if c.resolved]
    if not resolved:
        return f"none of the {len(pairs)} pairs resolves on these {n:,} photos"
    said = "; ".join(f"{c.name_a} makes {c.verdict} mistakes than {c.name_b} (p = {c.p_value:.2g})" for c in resolved)
    rest = [f"{c.name_a[7:]}-{c.name_b[7:]}" for c in pairs if not c.resolved]
    tail = f"; the other {len(rest)} pairs ({', '.join(rest)}) do not resolve" if rest else "; every pair resolves"
    verb = "resolves" if len(resolved) == 1 else "resolve"
    return f"{len(resolved)} of the {len(pairs)} pairs {verb} on these {n:,} photos: {said}{tail}"


def interval_sentence(errors: list[ConvergedError], which: str) -> str:
    """Whether each net's 95% interval holds the ``which`` error (``"stated"``: the publisher's; ``"paper"``:
    Table 6's), in words: every one, or which ones miss it and on which side."""
    if which not in ("stated", "paper"):
        raise ValueError(f"which must be 'stated' or 'paper', got {which!r}")
    if not errors:
        return "no net could be scored"
    name = "the publisher's stated error" if which == "stated" else "Table 6's error"
    above = [e.label for e in errors if getattr(e, which) > e.high]
    below = [e.label for e in errors if getattr(e, which) < e.low]
    if not above and not below:
        return f"every one of the {len(errors)} intervals holds {name}"
    said = [f"{', '.join(above)} err less than {name}"] if above else []
    said += [f"{', '.join(below)} err more than {name}"] if below else []
    return "; ".join(said) + ", outside their 95% intervals"


def ordering_sentence(pairs: list[PairedComparison]) -> str:
    """The pairs against Table 6's order (deeper is better at every step from 20 to 56 layers), in words."""
    if not pairs:
        return "no pair could be compared"
    against = [f"{c.name_a} against {c.name_b}" for c in pairs if c.verdict == "more"]
    along = [c for c in pairs if c.verdict == "fewer"]
    if against:
        return f"against Table 6's order, the photos resolve {'; '.join(against)} in favour of the shallower net"
    if len(along) == len(pairs):
        return "every pair resolves in Table 6's order: the deeper net makes fewer mistakes"
    if along:
        that = "the one that resolves goes" if len(along) == 1 else f"the {len(along)} that resolve go"
        return (f"no pair resolves against Table 6's order; {that} its way, and the other {len(pairs) - len(along)} "
                "would need more photos, not a verdict")  # fmt: skip
    return "no pair resolves, either way: at this photo count the depths cannot be ordered"


def response_verdict(deeper: np.ndarray, shallower: np.ndarray) -> str:
    """``"smaller"`` when the deeper net's mean response is below the shallower's in every group of images,
    ``"larger"`` when above in every group, else ``"unresolved"`` (``deeper``, ``shallower``: one value per group)."""
    deeper, shallower = np.asarray(deeper, dtype=float), np.asarray(shallower, dtype=float)
    if deeper.shape != shallower.shape or deeper.ndim != 1 or deeper.size == 0:
        raise ValueError(f"need one mean response per image group for both nets, got {deeper.shape} and "
                         f"{shallower.shape}")  # fmt: skip
    if np.all(deeper < shallower):
        return "smaller"
    if np.all(deeper > shallower):
        return "larger"
    return "unresolved"


def stage_slices(depth: int) -> dict[str, slice]:
    """Which entries of a response-std vector (stem first) belong to each stage: ``{"stage 1": slice, ...}``."""
    n = (depth - 2) // 6
    return {f"stage {s}": slice(1 + 2 * n * (s - 1), 1 + 2 * n * s) for s in (1, 2, 3)}


def mean_responses(groups: np.ndarray, depth: int) -> dict[str, np.ndarray]:
    """Per image group, the mean response over all layers and over each stage's layers: ``{part: (groups,)}``."""
    groups = np.atleast_2d(groups)
    if groups.shape[1] != depth - 1:
        raise ValueError(f"ResNet-{depth} has {depth - 1} 3x3 layers, got {groups.shape[1]} response stds")
    parts = {"all layers": groups.mean(1)}
    parts.update({name: groups[:, s].mean(1) for name, s in stage_slices(depth).items()})
    return parts


def response_verdicts(response_groups: dict[int, np.ndarray]) -> dict[str, dict[tuple[int, int], str]]:
    """For each part (all layers, each stage) and each pair of depths (shallower, deeper): the deeper net's
    mean response against the shallower's (:func:`response_verdict`)."""
    means = {d: mean_responses(g, d) for d, g in response_groups.items()}
    parts = next(iter(means.values()), {})
    return {
        part: {
            (a, b): response_verdict(means[b][part], means[a][part])
            for a, b in itertools.combinations(sorted(means), 2)
        }
        for part in parts
    }


def fig7_sentence(verdicts: dict[tuple[int, int], str]) -> str:
    """He et al.'s "deeper ResNets have smaller responses", judged on every pair of depths."""
    if not verdicts:
        return "was not measured here"
    counts = {v: [f"{a}-{b}" for (a, b), x in verdicts.items() if x == v] for v in ("smaller", "larger", "unresolved")}
    if len(counts["smaller"]) == len(verdicts):
        return f"holds: in every one of the {len(verdicts)} pairs of depths the deeper net's mean response is smaller"
    if len(counts["larger"]) == len(verdicts):
        return (
            f"is reversed: in every one of the {len(verdicts)} pairs of depths the deeper net's mean response is larger"
        )
    said = "; ".join(f"{v} for {', '.join(p)}" for v, p in counts.items() if p)
    return f"holds only in part: the deeper net's mean response is {said}"


def stages_sentence(verdicts: dict[str, dict[tuple[int, int], str]]) -> str:
    """Fig. 7's comparison stage by stage (the parts of :func:`response_verdicts` other than "all layers")."""
    stages = {part: v for part, v in verdicts.items() if part != "all layers"}
    if not stages:
        return "no stage was compared"
    smaller = [part for part, v in stages.items() if v and all(x == "smaller" for x in v.values())]
    if len(smaller) == len(stages):
        return "it holds within every stage too, for every pair of depths"
    rest = [f"{part} ({fig7_sentence(v)})" for part, v in stages.items() if part not in smaller]
    head = f"it holds for every pair within {', '.join(smaller)}; " if smaller else ""
    return head + "not in " + "; ".join(rest)


__all__ = [
    "CHECK_MISS_RATE",
    "EXPONENT_TOLERANCE",
    "THEORY_EXPONENT",
    "ConvergedError",
    "ConvergedStudy",
    "ShatteringCarry",
    "carry_sentences",
    "converged_study",
    "degradation_sentence",
    "degradation_verdicts",
    "fig7_sentence",
    "interval_sentence",
    "line_comparison",
    "load_photos",
    "mean_responses",
    "ordering_sentence",
    "pair_verdict",
    "pairs_sentence",
    "response_verdict",
    "response_verdicts",
    "seed_comparison",
    "shattering_carry",
    "stage_slices",
    "stages_sentence",
]
