"""Chapter 6 on nets trained to convergence: Veit et al.'s three lesions on the published ResNets.

:func:`converged_lesions` deletes each block of a published CIFAR-10 ResNet in turn, ``k``
random blocks at once, and swaps neighbouring blocks, all at test time in eval mode, and keeps
*which* photos each lesioned net gets wrong (:class:`ConvergedLesions`), so that every reading
is judged on the same photos: a lesion against the intact net by McNemar's paired test, a mean
over random draws by a tolerance that adds the photos' paired sampling error to the spread
between draws. The readings (:func:`single_block_reading`, :func:`deletion_reading`,
:func:`swap_reading`, :func:`standin_reading`) return objects whose ``sentence()`` says what the
photos show, in either direction, or that they do not resolve it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.measure.lesions import (
    BlockSequenceEvaluator,
    LesionStudy,
    delete_blocks,
    is_downsampling,
    swap_adjacent,
    swappable_pairs,
)
from resnet_lib.measure.significance import CONFIDENCE, error_interval
from resnet_lib.measure.verdicts import (
    AHEAD,
    BEHIND,
    UNRESOLVED,
    Verdict,
    compare_photos,
    compare_seeds,
    compare_to_reference,
)

#: z of the two-sided tolerances at CONFIDENCE (95%).
_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
#: The error of guessing among CIFAR-10's ten classes.
CHANCE = 0.9
#: "Costs little": under this share of the way from the intact error to chance, the same tolerance as the
#: chapter's check of the budget nets (its MEDIAN_SHARE_MAX and SWAP_SHARE_MAX). The converged ResNet-56's median
#: deletion goes 2% of the way, one deletion's cost has a sampling error of about 1 point on 500 photos.
CHEAP_SHARE = 0.15


@dataclass(frozen=True)
class ConvergedLesions:
    """Which photos a net gets wrong, intact and after each lesion (True = wrong).

    ``single[i]``: block ``i`` deleted; ``deletions[k]``: ``(draws, photos)``, ``k`` random blocks
    deleted per draw; ``swaps[i]``: blocks ``i`` and ``i + 1`` swapped.
    """

    label: str
    intact: np.ndarray
    single: np.ndarray
    deletions: dict[int, np.ndarray]
    swaps: dict[int, np.ndarray]
    downsampling: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(self.intact.size)

    @property
    def n_blocks(self) -> int:
        return int(self.single.shape[0])

    @property
    def intact_error(self) -> float:
        return float(self.intact.mean())

    @property
    def single_errors(self) -> np.ndarray:
        return self.single.mean(1)

    def single_intervals(self) -> np.ndarray:
        """``(2, n_blocks)``: Wilson 95% interval of each single-deletion error."""
        return np.array([error_interval(int(w.sum()), self.n) for w in self.single]).T

    @property
    def inner(self) -> list[int]:
        """The blocks that keep the shape (every block but the downsampling ones)."""
        return [i for i in range(self.n_blocks) if i not in self.downsampling]


def _check_labels(x: Tensor, y: Tensor) -> None:
    if x.dim() != 4 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need images (N, C, H, W) and N labels, got {tuple(x.shape)} and {tuple(y.shape)}")


def converged_lesions(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    label: str,
    ks: Sequence[int],
    draws: int,
    swap_pairs: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ConvergedLesions:
    """The three lesions on one net, keeping each lesion's mistakes photo by photo.

    ``swap_pairs``: how many swappable neighbour pairs to swap, evenly spaced over the net
    (``None``: all). ``draws`` random sets of ``k`` blocks per ``k`` in ``ks`` (at least 2 draws,
    so that the spread between draws can be estimated).
    """
    _check_labels(x, y)
    if draws < 2:
        raise ValueError(f"need at least 2 draws per k (their spread is part of the tolerance), got {draws}")
    ev = BlockSequenceEvaluator(net, x, y)
    n = len(ev.blocks)
    bad = [k for k in ks if not 1 <= k <= n]
    if bad or not ks:
        raise ValueError(f"need numbers of deleted blocks in 1..{n}, got {list(ks)}")
    pairs = swappable_pairs(ev.net)
    if swap_pairs is not None:
        if swap_pairs < 1:
            raise ValueError(f"swap_pairs must be at least 1 or None (all), got {swap_pairs}")
        pairs = [pairs[i] for i in sorted({round(j) for j in np.linspace(0, len(pairs) - 1, swap_pairs)})]
    rng = np.random.default_rng(seed)
    chosen = {k: [rng.choice(n, size=k, replace=False).tolist() for _ in range(draws)] for k in ks}
    jobs = (
        [("single", i) for i in range(n)]
        + [("swap", i) for i in pairs]
        + [("delete", (k, d)) for k in ks for d in range(draws)]
    )
    single, swaps, deleted = {}, {}, {k: [None] * draws for k in ks}
    for kind, what in tqdm(jobs, desc=f"lesions of {label}", unit="net", disable=not progress, leave=False):
        if kind == "single":
            single[what] = ev.mistakes(delete_blocks(ev.net, [what])).numpy()
        elif kind == "swap":
            swaps[what] = ev.mistakes(swap_adjacent(ev.net, what)).numpy()
        else:
            k, d = what
            deleted[k][d] = ev.mistakes(delete_blocks(ev.net, chosen[k][d])).numpy()
    return ConvergedLesions(
        label=label,
        intact=ev.intact_mistakes.numpy(),
        single=np.array([single[i] for i in range(n)]),
        deletions={k: np.array(v) for k, v in deleted.items()},
        swaps=swaps,
        downsampling=tuple(i for i, b in enumerate(ev.blocks) if is_downsampling(b)),
    )


def lesion_nets(
    nets: Mapping[int, nn.Module],
    x: Tensor,
    y: Tensor,
    ks: Sequence[int],
    draws: int,
    swap_pairs: int | None = None,
    seed: int = 0,
) -> dict[int, ConvergedLesions]:
    """:func:`converged_lesions` of every published ResNet in ``nets`` ({depth: net}), deepest first."""
    return {
        depth: converged_lesions(
            nets[depth],
            x,
            y,
            f"ResNet-{depth}",
            [k for k in ks if k < len(nets[depth].blocks())],
            draws,
            swap_pairs,
            seed,
        )
        for depth in sorted(nets, reverse=True)
    }


def _points(errors: float) -> str:
    return f"{100 * errors:+.1f} points"


@dataclass(frozen=True)
class SingleBlockReading:
    """Veit et al.'s first reading: one block deleted barely matters, except the downsampling blocks."""

    label: str
    n: int
    intact_error: float
    inner_costs: np.ndarray  # per inner block: lesioned minus intact error
    inner_worse: np.ndarray  # per inner block: McNemar says it makes more mistakes than the intact net
    downsampling: tuple[int, ...]
    downsampling_costs: np.ndarray
    beaten: np.ndarray  # per downsampling block: inner deletions it makes more mistakes than (paired test)

    @property
    def inner_unchanged(self) -> int:
        """Inner deletions the photos cannot tell from the intact net (or that make fewer mistakes)."""
        return int((~self.inner_worse).sum())

    @property
    def median_share(self) -> float:
        """The median inner deletion's cost as a share of the way from the intact error to chance."""
        return float(np.median(self.inner_costs)) / (CHANCE - self.intact_error)

    @property
    def cost_verdict(self) -> Verdict:
        """The median inner deletion's share of the way to chance against no cost, within :data:`CHEAP_SHARE`.

        An effect size, not a count of unresolved tests: how many deletions McNemar resolves grows
        with the photo count (the sentence reports it), the share of the way to chance does not.
        """
        return compare_to_reference(self.median_share, 0.0, CHEAP_SHARE, better="lower")

    @property
    def barely_changes(self) -> bool:
        """The median inner deletion lies within :data:`CHEAP_SHARE` of the way to chance of no cost."""
        return self.cost_verdict.direction == UNRESOLVED

    @property
    def downsampling_costlier(self) -> bool:
        """Every downsampling deletion makes more mistakes than most inner deletions (paired tests)."""
        return bool(len(self.beaten)) and bool((self.beaten > len(self.inner_costs) / 2).all())

    def sentence(self) -> str:
        m = len(self.inner_costs)
        first = (
            f"deleting one of {self.label}'s {m} blocks that keep the shape "
            f"{self.cost_verdict.words('lowers', 'changes', 'barely changes')} its error: "
            f"the median deletion costs {_points(float(np.median(self.inner_costs)))} "
            f"({100 * self.median_share:.1f}% of the way to chance), the costliest "
            f"{_points(float(self.inner_costs.max()))}, and {self.inner_unchanged} of {m} such deletions cannot be "
            f"told from the intact net on these {self.n:,} photos (McNemar, 5%)"
        )
        blocks = ", ".join(
            f"block {d + 1} {_points(float(c))}, more mistakes than {int(b)} of {m}"
            for d, c, b in zip(self.downsampling, self.downsampling_costs, self.beaten, strict=True)
        )
        verdict = "cost more than the rest" if self.downsampling_costlier else "do not all cost more than the rest"
        return f"{first}; its downsampling blocks {verdict} ({blocks})"


def single_block_reading(lesions: ConvergedLesions) -> SingleBlockReading:
    """Judge reading (a) on the same photos: each deletion against the intact net and against each other."""
    inner = lesions.inner
    if not inner:
        raise ValueError("the net has no block that keeps the shape; nothing to compare")
    worse = np.array([compare_photos(lesions.single[i], lesions.intact).direction == BEHIND for i in inner], dtype=bool)
    beaten = np.array(
        [
            sum(compare_photos(lesions.single[d], lesions.single[i]).direction == BEHIND for i in inner)
            for d in lesions.downsampling
        ],
        dtype=int,
    )
    errors = lesions.single_errors
    return SingleBlockReading(
        label=lesions.label,
        n=lesions.n,
        intact_error=lesions.intact_error,
        inner_costs=errors[inner] - lesions.intact_error,
        inner_worse=worse,
        downsampling=lesions.downsampling,
        downsampling_costs=errors[list(lesions.downsampling)] - lesions.intact_error,
        beaten=beaten,
    )


@dataclass(frozen=True)
class DeletionReading:
    """Veit et al.'s second reading: the error grows smoothly with the number of deleted blocks ``k``.

    ``ks`` starts at 0 (the intact net). ``mean[j]`` is the mean error over draws at ``ks[j]``,
    ``half_width[j]`` its 95% tolerance; ``steps[j]`` the change from ``ks[j]`` to ``ks[j + 1]``
    with ``step_tolerance[j]``.
    """

    label: str
    n: int
    draws: int
    ks: np.ndarray
    mean: np.ndarray
    half_width: np.ndarray
    steps: np.ndarray
    step_tolerance: np.ndarray
    overall_tolerance: float  # of the change from the intact net to the largest k, the same way

    @property
    def step_verdicts(self) -> list[str]:
        """Per step in k: the error at the larger k against the smaller, within the step's tolerance."""
        return [
            compare_to_reference(s, 0.0, t, better="lower").words("falls", "rises", "unresolved")
            for s, t in zip(self.steps, self.step_tolerance, strict=True)
        ]

    @property
    def total_rise(self) -> float:
        return float(self.mean[-1] - self.mean[0])

    @property
    def rises_overall(self) -> bool:
        """The error with the most blocks deleted lies above the intact error beyond both tolerances."""
        return compare_to_reference(self.total_rise, 0.0, self.overall_tolerance, better="lower").direction == BEHIND

    @property
    def grows_smoothly(self) -> bool:
        """Rises overall and never falls by more than a step's tolerance."""
        return self.rises_overall and "falls" not in self.step_verdicts

    def sentence(self) -> str:
        verdicts = self.step_verdicts
        rises, falls = verdicts.count("rises"), verdicts.count("falls")
        counts = (
            f"from {100 * self.mean[0]:.1f}% intact to {100 * self.mean[-1]:.1f}% with {int(self.ks[-1])} "
            f"blocks deleted ({self.draws} draws per k, {self.n:,} photos); of its {len(verdicts)} steps in k, "
            f"{rises} rise beyond their 95% tolerance, {falls} fall beyond it and {len(verdicts) - rises - falls} "
            f"stay within it"
        )
        if self.grows_smoothly:
            return f"{self.label}'s error rises with k without a resolved fall: {counts}"
        if self.rises_overall:
            return f"{self.label}'s error rises overall with k but falls resolvably at some step: {counts}"
        return f"{self.label}'s error does not rise resolvably with k: {counts}"


def deletion_reading(lesions: ConvergedLesions) -> DeletionReading:
    """Mean error over draws for each ``k`` with a tolerance from the photos and from the draws.

    For a step from ``k`` to ``k'`` the photos' part is paired: per photo, the share of draws
    that get it wrong at ``k'`` minus that at ``k``, whose mean is the step and whose standard
    error over photos is the photos' sampling error; the draws' part is the standard error of each
    mean over draws. Both add in variance; the tolerance is 1.96 standard errors.
    """
    ks = sorted(lesions.deletions)
    share = [lesions.intact.astype(float)] + [lesions.deletions[k].mean(0) for k in ks]  # per photo, per k
    draw_var = [0.0] + [lesions.deletions[k].mean(1).var(ddof=1) / len(lesions.deletions[k]) for k in ks]
    n = lesions.n
    mean = np.array([s.mean() for s in share])
    half = np.array([_Z * math.sqrt(s.var(ddof=1) / n + v) for s, v in zip(share, draw_var, strict=True)])

    def tolerance(a: int, b: int) -> float:
        return _Z * math.sqrt((share[b] - share[a]).var(ddof=1) / n + draw_var[a] + draw_var[b])

    steps = [float((share[j + 1] - share[j]).mean()) for j in range(len(ks))]
    tol = [tolerance(j, j + 1) for j in range(len(ks))]
    draws = {len(v) for v in lesions.deletions.values()}
    return DeletionReading(
        label=lesions.label,
        n=n,
        draws=min(draws),
        ks=np.array([0, *ks]),
        mean=mean,
        half_width=half,
        steps=np.array(steps),
        step_tolerance=np.array(tol),
        overall_tolerance=tolerance(0, len(ks)),
    )


@dataclass(frozen=True)
class SwapReading:
    """Veit et al.'s third reading: re-ordering neighbouring blocks costs little."""

    label: str
    n: int
    pairs: tuple[int, ...]
    intact_error: float
    costs: np.ndarray  # per swapped pair: lesioned minus intact error
    worse: np.ndarray  # per pair: McNemar says the swapped net makes more mistakes

    @property
    def unchanged(self) -> int:
        return int((~self.worse).sum())

    @property
    def mean_share(self) -> float:
        """The mean swap's cost as a share of the way from the intact error to chance."""
        return float(self.costs.mean()) / (CHANCE - self.intact_error)

    @property
    def cost_verdict(self) -> Verdict:
        """The mean swap's share of the way to chance against no cost, within :data:`CHEAP_SHARE` (as for deletions)."""
        return compare_to_reference(self.mean_share, 0.0, CHEAP_SHARE, better="lower")

    @property
    def costs_little(self) -> bool:
        return self.cost_verdict.direction == UNRESOLVED

    def sentence(self) -> str:
        m, verdict = len(self.pairs), self.cost_verdict.words("lowers the error", "is not cheap", "costs little")
        return (
            f"swapping two neighbouring blocks of {self.label} {verdict}: the mean swap costs "
            f"{_points(float(self.costs.mean()))} ({100 * self.mean_share:.1f}% of the way to chance), the costliest "
            f"{_points(float(self.costs.max()))}; {self.unchanged} of {m} swaps cannot be told from the intact net "
            f"on these {self.n:,} photos (McNemar, 5%)"
        )


def swap_reading(lesions: ConvergedLesions) -> SwapReading:
    """Each swap against the intact net, on the same photos."""
    if not lesions.swaps:
        raise ValueError(f"{lesions.label} has no swapped pair to judge")
    pairs = tuple(sorted(lesions.swaps))
    worse = np.array([compare_photos(lesions.swaps[i], lesions.intact).direction == BEHIND for i in pairs])
    costs = np.array([lesions.swaps[i].mean() - lesions.intact_error for i in pairs])
    return SwapReading(lesions.label, lesions.n, pairs, lesions.intact_error, costs, worse.astype(bool))


@dataclass(frozen=True)
class StandinReading:
    """A published net on images unlike CIFAR-10: is its error nearer chance than its CIFAR-10 error?"""

    label: str
    errors: int
    n: int
    chance: float
    stated_error: float  # the publisher's CIFAR-10 test error, a fraction

    @property
    def interval(self) -> tuple[float, float]:
        return error_interval(self.errors, self.n)

    @property
    def midpoint(self) -> float:
        return (self.chance + self.stated_error) / 2

    @property
    def verdict(self) -> Verdict:
        """The lower end of the 95% interval against the midpoint between the CIFAR-10 error and chance."""
        return compare_to_reference(self.interval[0], self.midpoint, 0.0, better="higher")

    @property
    def near_chance(self) -> bool:
        """The whole 95% interval lies above the midpoint between the CIFAR-10 error and chance."""
        return self.verdict.direction == AHEAD

    def sentence(self) -> str:
        low, high = self.interval
        where = self.verdict.words("near chance", "not near chance", "not near chance")
        return (
            f"{self.label} errs on {100 * self.errors / self.n:.1f}% of {self.n:,} images "
            f"(95% interval {100 * low:.1f}-{100 * high:.1f}%), {where} ({100 * self.chance:.0f}%), against "
            f"{100 * self.stated_error:.1f}% on CIFAR-10's test photos"
        )


def standin_reading(wrong: np.ndarray, label: str, chance: float, stated_error: float) -> StandinReading:
    """Judge a published net's mistakes on other images against chance (``stated_error`` and ``chance`` fractions)."""
    wrong = np.asarray(wrong)
    if wrong.ndim != 1 or wrong.size == 0 or wrong.dtype != bool:
        raise ValueError(f"expected a non-empty 1-D boolean array of mistakes, got shape {wrong.shape} {wrong.dtype}")
    if not 0 <= stated_error < chance < 1:
        raise ValueError(f"need 0 <= stated_error < chance < 1, got {stated_error} and {chance}")
    return StandinReading(label, int(wrong.sum()), int(wrong.size), chance, stated_error)


def readings(lesions: ConvergedLesions) -> dict[str, SingleBlockReading | DeletionReading | SwapReading]:
    """Veit et al.'s three readings of one net, built once: ``{"single", "k", "swap"}``."""
    return {"single": single_block_reading(lesions), "k": deletion_reading(lesions), "swap": swap_reading(lesions)}


def takeaway(single: SingleBlockReading, deletion: DeletionReading, swap: SwapReading) -> str:
    """One line: which of Veit et al.'s three readings the converged net's photos bear out, and which not."""
    readings = {
        "single deletions of blocks that keep the shape barely change the error": single.barely_changes,
        "downsampling deletions cost more": single.downsampling_costlier,
        "the error grows with k without a resolved fall": deletion.grows_smoothly,
        "neighbour swaps cost little": swap.costs_little,
    }
    held = [r for r, ok in readings.items() if ok]
    failed = [r for r, ok in readings.items() if not ok]
    text = f"on {single.label} trained to convergence ({single.n:,} photos), "
    if not failed:
        return text + f"as in the paper: {'; '.join(held)}"
    if not held:
        return text + f"none of the paper's readings holds: not {'; not '.join(failed)}"
    return text + f"as in the paper: {'; '.join(held)}; unlike it, not {'; not '.join(failed)}"


@dataclass(frozen=True)
class BudgetReading:
    """Veit et al.'s lesions on the chapter's budget nets, one row per seed, judged by the book's verdict rule.

    ``intact[s]``: the intact error of seed ``s``; ``single[s, i]``: its error with block ``i`` deleted;
    ``ks``: the numbers of random blocks deleted, ``curve[s, j]``: the mean error over draws with
    ``ks[j]`` blocks deleted; ``plain_way[s]``: the plain net's mean single deletion as a share of its way
    to chance (paired with the ResNet by seed). Fractions throughout.
    """

    label: str
    plain_label: str
    seeds: tuple[int, ...]
    chance: float
    intact: np.ndarray
    single: np.ndarray
    downsampling: tuple[int, ...]
    ks: np.ndarray
    curve: np.ndarray
    plain_way: np.ndarray

    @property
    def costs(self) -> np.ndarray:
        """``(seeds, blocks)``: each deletion's error minus the intact error of its seed."""
        return self.single - self.intact[:, None]

    @property
    def inner(self) -> list[int]:
        return [i for i in range(self.single.shape[1]) if i not in self.downsampling]

    @property
    def median_share(self) -> np.ndarray:
        """Per seed: the median single deletion's cost as a share of the way from the intact error to chance."""
        return np.median(self.costs, axis=1) / (self.chance - self.intact)

    def cheap_verdicts(self) -> list[Verdict]:
        """Per seed: the median deletion's share of the way to chance against no cost, within :data:`CHEAP_SHARE`."""
        return [compare_to_reference(m, 0.0, CHEAP_SHARE, better="lower") for m in self.median_share]

    @property
    def cheap_in_every_seed(self) -> bool:
        return all(v.direction == UNRESOLVED for v in self.cheap_verdicts())

    def cheap_sentence(self) -> str:
        costly = sum(v.direction == BEHIND for v in self.cheap_verdicts())
        n, worst = len(self.seeds), 100 * float(self.median_share.max())
        where = f"within {100 * CHEAP_SHARE:.0f}% of the way to chance of no cost"
        if self.cheap_in_every_seed:
            return (
                f"deleting one block barely changes {self.label}: in each of the {n} seeds the median deletion "
                f"lies {where} (worst seed {worst:.1f}%), as in the paper"
            )
        return (
            f"deleting one block is not cheap in every seed of {self.label}: in {costly} of the {n} seeds the "
            f"median deletion goes more than {100 * CHEAP_SHARE:.0f}% of the way to chance (worst seed "
            f"{worst:.1f}%), unlike the paper"
        )

    def plain_verdict(self) -> Verdict:
        """ResNet's median single deletion against the plain net's mean one, in shares of the way to chance, by seed."""
        return compare_seeds(self.median_share, self.plain_way, better="lower")

    def plain_sentence(self) -> str:
        """Whether the plain net is the opposite: far towards chance after one deletion, and further than ResNet."""
        paired = self.plain_verdict()
        far = all(compare_to_reference(w, 0.0, CHEAP_SHARE, better="lower").direction == BEHIND for w in self.plain_way)
        share = f"{100 * CHEAP_SHARE:.0f}%"
        if paired.direction == AHEAD and far:
            return (
                f"{self.plain_label} is the opposite: {paired.basis}, one deletion takes it more than {share} of the "
                f"way to chance and further than {self.label}'s median one"
            )
        return paired.words(
            f"{self.plain_label}'s deletions go further towards chance than {self.label}'s median one {paired.basis}, "
            f"but not more than {share} of the way in every seed",
            f"{self.plain_label} is not the opposite: {paired.basis} its deletions go less of the way to chance "
            f"than {self.label}'s median one",
            f"{self.plain_label}'s deletions and {self.label}'s cannot be told apart by seed ({paired.basis})",
        )

    @property
    def costliest(self) -> np.ndarray:
        """Per seed: the index of the block whose deletion costs most."""
        return np.argmax(self.costs, axis=1)

    @property
    def costliest_on_average(self) -> int:
        return int(np.argmax(self.costs.mean(0)))

    def downsampling_verdict(self) -> Verdict:
        """Per seed, the mean downsampling deletion against the median of the others (paired by seed)."""
        if not self.downsampling or not self.inner:
            raise ValueError(f"{self.label} needs downsampling blocks and blocks that keep the shape to compare them")
        down = self.costs[:, list(self.downsampling)].mean(1)
        return compare_seeds(down, np.median(self.costs[:, self.inner], axis=1), better="lower")

    @property
    def downsampling_stands_out(self) -> bool:
        """As in the paper: downsampling deletions cost more than the rest in every seed, and the costliest is one."""
        return self.downsampling_verdict().direction == BEHIND and self.costliest_on_average in self.downsampling

    def costliest_sentence(self) -> str:
        worst = self.costliest_on_average
        kind = "a downsampling block" if worst in self.downsampling else "not a downsampling block"
        per_seed = int((self.costliest == worst).sum())
        verdict = self.downsampling_verdict()
        down = ", ".join(str(d + 1) for d in self.downsampling)
        compared = verdict.words(
            f"the downsampling blocks ({down}) cost less than the median deletion in each seed",
            f"the downsampling blocks ({down}) cost more than the median deletion in each seed",
            f"the downsampling blocks ({down}) do not cost more than the median deletion in every seed "
            f"({verdict.basis})",
        )
        return (
            f"the costliest deletion on average is block {worst + 1} ({kind}, "
            f"+{100 * float(self.costs.mean(0)[worst]):.1f} points; the costliest in {per_seed} of {len(self.seeds)} "
            f"seeds), and {compared}"
        )

    def lead_sentence(self, paper: str) -> str:
        """How many of the two single-deletion readings (cheap; downsampling blocks stand out) reproduce."""
        failed = [not self.cheap_in_every_seed, not self.downsampling_stands_out].count(True)
        return (
            f"Both readings of a single deletion reproduce as {paper} saw them",
            f"One of the two readings of a single deletion does not reproduce as {paper} saw it",
            f"Neither reading of a single deletion reproduces as {paper} saw it",
        )[failed]

    def step_verdicts(self) -> list[Verdict]:
        """Per step in k (intact to the first k, then each k to the next): the larger k against the smaller, by seed."""
        points = np.column_stack([self.intact, self.curve])
        return [compare_seeds(points[:, j + 1], points[:, j], better="lower") for j in range(points.shape[1] - 1)]

    @property
    def monotone_seeds(self) -> int:
        """Seeds whose mean error rises at every step in k."""
        points = np.column_stack([self.intact, self.curve])
        return int((np.diff(points, axis=1) > 0).all(axis=1).sum())

    def k_sentence(self) -> str:
        steps = self.step_verdicts()
        rises = sum(v.direction == BEHIND for v in steps)
        falls = sum(v.direction == AHEAD for v in steps)
        n, last = len(self.seeds), int(self.ks[-1])
        overall = compare_seeds(self.curve[:, -1], self.intact, better="lower")
        counts = (
            f"of the {len(steps)} steps from the intact net to k = {last}, {rises} rise in every seed, {falls} fall in "
            f"every seed and {len(steps) - rises - falls} differ between seeds; {self.monotone_seeds} of the {n} "
            f"seeds' curves rise at every step"
        )
        if rises == len(steps):
            head = "deleting more blocks raises the error step by step, in every seed"
        else:
            head = overall.words(
                f"with {last} blocks deleted the error lies below the intact one in every seed",
                f"deleting more blocks raises the error overall (from k = 0 to {last} in every seed), "
                "but not step by step",
                f"deleting more blocks does not raise the error in every seed ({overall.basis})",
            )
        return f"{head}: {counts}"


def budget_reading(
    residual: Sequence[LesionStudy],
    plain: Sequence[LesionStudy],
    seeds: Sequence[int],
    chance: float,
    label: str,
    plain_label: str,
) -> BudgetReading:
    """One :class:`LesionStudy` per seed of each family (same seeds, same order) as a :class:`BudgetReading`."""
    if not residual or len(residual) != len(plain) or len(residual) != len(seeds):
        raise ValueError(
            f"need one residual and one plain study per seed, got {len(residual)}, {len(plain)}, {len(seeds)}"
        )
    ks = sorted(residual[0].deletions)
    if not ks or any(sorted(s.deletions) != ks for s in residual):
        raise ValueError("every residual study needs random deletions at the same numbers of blocks k")
    return BudgetReading(
        label=label,
        plain_label=plain_label,
        seeds=tuple(int(s) for s in seeds),
        chance=chance,
        intact=np.array([s.intact_error for s in residual]),
        single=np.array([s.single for s in residual]),
        downsampling=residual[0].downsampling,
        ks=np.array(ks),
        curve=np.array([[s.deletions[k].mean() for k in ks] for s in residual]),
        plain_way=np.array([(s.single.mean() - s.intact_error) / (chance - s.intact_error) for s in plain]),
    )


__all__ = [
    "BudgetReading",
    "ConvergedLesions",
    "DeletionReading",
    "SingleBlockReading",
    "StandinReading",
    "SwapReading",
    "budget_reading",
    "converged_lesions",
    "deletion_reading",
    "lesion_nets",
    "readings",
    "single_block_reading",
    "standin_reading",
    "swap_reading",
    "takeaway",
]
