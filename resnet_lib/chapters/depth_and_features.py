"""Chapter 1 on a net trained to convergence: linear probes at the stem and at the end of each stage of the
published ResNet-56, scored on the test photos, beside the chapter's budget net, as plain data and words.

The probes are chapter 1's (:func:`~resnet_lib.measure.probes.fit_linear_probe` on pooled, frozen features);
the net is :mod:`resnet_lib.models.published`'s, evaluated here, never trained. Rises are judged on the same
test photos by McNemar's paired test, gaps between two nets' rises by their paired intervals. On the stand-in
the net sees images unlike any it was trained on: only its error is measured there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from tqdm.auto import tqdm

from resnet_lib.data import auto_dataset
from resnet_lib.measure.probes import (
    LayerProbes,
    ProbeResult,
    fit_linear_probe,
    layer_titles,
    pooled_features,
    probe_layers,
)
from resnet_lib.measure.significance import (
    CONFIDENCE,
    PairedComparison,
    error_interval,
    mistakes,
    paired_comparison,
    paired_difference,
)
from resnet_lib.measure.verdicts import Verdict, compare_photos, compare_to_reference
from resnet_lib.models.published import PUBLISHED, load_available, published_photos
from resnet_lib.profiles import ConvergedExperiment, FeatureExperiment


@dataclass
class ConvergedProbes:
    """Probes on one published net's stem and stage ends; on the stand-in only its error (``results`` empty)."""

    depth: int
    dataset: str
    dataset_label: str
    n_train: int
    n_test: int
    num_classes: int
    #: The net's own test error on the photos (errors, n) and its Wilson interval.
    errors: int
    error_low: float
    error_high: float
    stated_error: float
    layers: list[str]
    titles: dict[str, str]
    results: dict[str, ProbeResult]
    pool: int

    @property
    def label(self) -> str:
        return f"ResNet-{self.depth}"

    @property
    def error(self) -> float:
        return self.errors / self.n_test

    @property
    def chance(self) -> float:
        return 1 - 1 / self.num_classes

    def accuracies(self) -> list[float]:
        """Probe test accuracy at each probed layer, stem first."""
        return [self.results[name].test_accuracy for name in self.layers]


class PublishedNetMissing(RuntimeError):
    """The published net could not be had here (offline, no copy): one line saying why."""


def converged_probes(
    experiment: ConvergedExperiment, features: FeatureExperiment, depth: int = 56, progress: bool = True
) -> ConvergedProbes:
    """Chapter 1's probes (``features.pool``, ``probe_l2``, ``probe_iterations``) at the stem and each stage's end
    of the published ResNet-``depth``, fit on ``experiment.probe_train`` training photos and scored on the test
    photos (CIFAR-10: ``experiment.n_test``; the stand-in: ``experiment.standin_test``, and no probes)."""
    if isinstance(depth, bool) or depth not in experiment.depths:
        raise ValueError(f"depth must be one of the experiment's published depths {experiment.depths}, got {depth!r}")
    for name in ("probe_train", "standin_test"):
        value = getattr(experiment, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"ConvergedExperiment.{name} must be a whole number >= 1, got {value!r}")
    nets, missing = load_available((depth,))
    if missing:
        raise PublishedNetMissing(missing[depth])
    net = nets[depth]
    standin = auto_dataset() == "standin"
    n_test = experiment.standin_test if standin else experiment.n_test
    data = published_photos(n_train=1 if standin else experiment.probe_train, n_test=n_test, verbose=False)
    if data.name == "standin":  # also when "auto" fell back to it
        data.test_x, data.test_y = data.test_x[: experiment.standin_test], data.test_y[: experiment.standin_test]
    layers = probe_layers(net, every_block=False)
    results: dict[str, ProbeResult] = {}
    if data.name == "standin":
        wrong = mistakes(net, data.test_x, data.test_y)
    else:
        bar = tqdm(total=2 + len(layers), desc=f"probes, published ResNet-{depth}", disable=not progress, leave=False)
        wanted = [(name, features.pool) for name in layers]
        train = pooled_features(net, data.train_x, wanted)
        bar.update(1)
        test = pooled_features(net, data.test_x, wanted)
        bar.update(1)
        for key in wanted:
            results[key[0]] = fit_linear_probe(
                train[key], data.train_y, test[key], data.test_y,
                l2=features.probe_l2, max_iter=features.probe_iterations, num_classes=len(data.classes),
            )  # fmt: skip
            bar.update(1)
        bar.close()
        wrong = mistakes(net, data.test_x, data.test_y)
    k = int(wrong.sum())
    low, high = error_interval(k, len(wrong))
    return ConvergedProbes(
        depth, data.name, data.label, len(data.train_y) if results else 0, len(data.test_y), len(data.classes),
        k, low, high, PUBLISHED[depth].stated_error / 100, layers, layer_titles(net, layers), results, features.pool,
    )  # fmt: skip


# --------------------------------------------------------------------------- words


def rise(
    first: ProbeResult, last: ProbeResult, name_first: str = "stem", name_last: str = "last stage"
) -> PairedComparison:
    """McNemar's counts of two probes on the same test photos (the later layer first), for the sentence."""
    if first.test_mistakes is None or last.test_mistakes is None:
        raise ValueError("both probes must carry their test mistakes (fit_linear_probe records them)")
    return paired_comparison(last.test_mistakes, first.test_mistakes, name_last, name_first)


def rise_interval(first: ProbeResult, last: ProbeResult, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Accuracy of ``last`` minus ``first`` on the same photos, with its paired interval (fractions)."""
    diff, low, high = paired_difference(first.test_mistakes, last.test_mistakes, confidence)
    return diff, low, high


def rise_words(verdict: Verdict) -> str:
    """``"rises"``, ``"falls"`` or ``"does not change measurably"``, from the verdict of the later probe
    against the earlier one (:func:`probe_verdict`)."""
    return verdict.words("rises", "falls", "does not change measurably")


def compare_rises(
    converged: tuple[float, float, float], budget: tuple[float, float, float], confidence: float = CONFIDENCE
) -> Verdict:
    """The converged net's rise against the budget net's, each ``(rise, low, high)`` from :func:`rise_interval`
    (independent photos): :func:`compare_to_reference` with the tolerance ``z * se`` of the two intervals combined."""
    for name, (value, low, high) in (("converged", converged), ("budget", budget)):
        if not all(math.isfinite(v) for v in (value, low, high)) or not low <= value <= high:
            raise ValueError(
                f"the {name} rise must be (rise, low, high) with low <= rise <= high, got {(value, low, high)}"
            )
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    z_wanted = NormalDist().inv_cdf(0.5 + confidence / 2)
    se = math.hypot((converged[2] - converged[1]) / (2 * z), (budget[2] - budget[1]) / (2 * z))
    return compare_to_reference(converged[0], budget[0], z_wanted * se, better="higher")


# --------------------------------------------------------------------------- the budget net's words


def probe_verdict(first: ProbeResult | np.ndarray, second: ProbeResult | np.ndarray) -> Verdict:
    """``first`` against ``second`` on the same test photos, by the book's rule (McNemar's test): ahead when
    ``first`` makes fewer mistakes. Each side is a probe or a net's own mistakes (a boolean array)."""
    return compare_photos(_wrong(first), _wrong(second))


def _wrong(side: ProbeResult | np.ndarray) -> np.ndarray:
    wrong = side.test_mistakes if isinstance(side, ProbeResult) else side
    if wrong is None:
        raise ValueError("a probe must carry its test mistakes (fit_linear_probe records them)")
    return np.asarray(wrong, dtype=bool)


def _acc(side: ProbeResult | np.ndarray) -> float:
    return 100 * (1 - _wrong(side).mean())


def _p(first: ProbeResult | np.ndarray, second: ProbeResult | np.ndarray) -> str:
    return f"McNemar p = {paired_comparison(_wrong(first), _wrong(second)).p_value:.2g}"


def _change(new: ProbeResult, old: ProbeResult) -> str:
    """``"rises by 3.1 points"``, ``"falls by ..."`` or ``"moves by +0.9 points, which the photos do not resolve"``,
    with McNemar's p, from ``old`` to ``new`` on the same photos."""
    gap = _acc(new) - _acc(old)
    return probe_verdict(new, old).words(
        f"rises by {abs(gap):.1f} points", f"falls by {abs(gap):.1f} points",
        f"moves by {gap:+.1f} points, which the photos do not resolve",
    ) + f" ({_p(new, old)})"  # fmt: skip


def _versus(first, second, ahead: str, behind: str, unresolved: str) -> str:
    """One of three templates, by the verdict of ``first`` against ``second``; each may use ``{gap}`` (points,
    unsigned), ``{signed}`` (points, first minus second) and ``{p}`` (McNemar's p)."""
    signed = _acc(first) - _acc(second)
    template = probe_verdict(first, second).words(ahead, behind, unresolved)
    return template.format(gap=f"{abs(signed):.1f}", signed=f"{signed:+.1f}", p=_p(first, second))


@dataclass
class BudgetProbes:
    """What chapter 1's prose reads about its budget net, every probe scored on the same test photos."""

    #: Probes on every layer of the trained net (``by_pool`` holds the stem and last block at other grids).
    trained: LayerProbes
    #: The same probes on the net at its own starting weights (BatchNorm given the training images' statistics).
    start: LayerProbes
    #: Untrained copies of other seeds, for the range of random starts (may include ``start``).
    untrained: list[LayerProbes]
    #: ``{"raw pixels": ..., "PCA": ...}``: the hand-made baselines' probes.
    baselines: dict[str, ProbeResult]
    #: True for each test photo the network's own classifier gets wrong.
    net_wrong: np.ndarray
    #: Readable layer names (:func:`~resnet_lib.measure.probes.layer_titles`) and the end of stage 1's layer.
    titles: dict[str, str]
    stage1: str

    def __post_init__(self) -> None:
        if "raw pixels" not in self.baselines or not self.baselines:
            raise ValueError(f"baselines must hold 'raw pixels' (and may hold 'PCA'), got {list(self.baselines)}")
        if self.stage1 not in self.trained.results:
            raise ValueError(
                f"stage1 must be a probed layer, got {self.stage1!r}; probed: {', '.join(self.trained.layers)}"
            )
        n = len(_wrong(self.trained.last))
        if len(self.net_wrong) != n:
            raise ValueError(f"net_wrong must mark the same {n} test photos as the probes, got {len(self.net_wrong)}")


def budget_words(b: BudgetProbes) -> dict[str, str]:
    """Chapter 1's measured sentences, each chosen by a verdict on the same test photos (glue key: sentence)."""
    t = b.trained
    stem, last, stage1 = t.first, t.last, t.results[b.stage1]
    n = len(_wrong(last))
    best_name = max(b.baselines, key=lambda name: b.baselines[name].test_accuracy)
    base = b.baselines[best_name]
    total = probe_verdict(last, stem)
    words = {
        "ch1_learned_verdict": f"On the same {n:,} test photos that is "
        + _versus(last, base, "{gap} points above the better baseline, " + best_name + " ({p}): only the features "
                  "changed, and the network found them itself.",
                  "{gap} points below the better baseline, " + best_name + " ({p}): at this budget the learned "
                  "features do not help the linear classifier.",
                  "{signed} points against the better baseline, " + best_name + ", which the photos do not "
                  "resolve ({p})."),
        "ch1_learned_takeaway": "here the same linear classifier on the last block's learned features "
        + _versus(last, base, "beats", "falls behind", "is not told apart from")
        + f" the better of raw pixels and their principal components ({_acc(last):.1f}% against {_acc(base):.1f}%,"
        " on the same test photos)",
    }  # fmt: skip
    depth = [
        f"The probe on the stem, a single convolution, reads {_acc(stem):.1f}%; at the end of stage 1 "
        f"({b.titles[b.stage1]}) {_acc(stage1):.1f}%; on the last block {_acc(last):.1f}%.",
        f"From the stem to the last block it {_change(last, stem)}; in the first stage it {_change(stage1, stem)},"
        f" and after it {_change(last, stage1)}.",
    ]
    best = t.best_layer
    if best not in (t.layers[0], t.layers[-1], b.stage1):
        depth.append(
            f"The highest of the {len(t.layers)} probes is {b.titles[best]}'s, {_acc(t.results[best]):.1f}%; "
            "picked as the highest on these same photos, it is "
            + _versus(t.results[best], last, "{gap} points above the last block even so ({p})",
                      "{gap} points below the last block ({p})",
                      "not told apart from the last block ({signed} points, {p})") + "."
        )  # fmt: skip
    depth.append(
        total.words(
            "Here deeper layers are easier to read linearly, as the argument says.",
            "Here deeper layers are harder, not easier, to read linearly: the argument fails at this budget.",
            "So this run neither confirms nor refutes that deeper layers are easier to read linearly.",
        )
    )
    words["ch1_depth_paragraph"] = " ".join(depth)
    words["ch1_depth_takeaway"] = (
        "here the probe on the last block "
        + total.words("rises above", "falls below", "is not told apart from")
        + f" the probe on the stem ({_acc(last):.1f}% against {_acc(stem):.1f}% on the same test photos)"
    )
    words.update(_untrained_words(b, total))
    words["ch1_grid_paragraph"], words["ch1_grid_change"] = _grid_words(t)
    words["ch1_classifier_paragraph"], words["ch1_fit_vs_grid"] = _classifier_words(b)
    return words


def _untrained_words(b: BudgetProbes, total: Verdict) -> dict[str, str]:
    t, start, pixels = b.trained, b.start, b.baselines["raw pixels"]
    u_stem, u_last = start.first, start.last
    u_rise = probe_verdict(u_last, u_stem)
    trained_last = probe_verdict(t.last, u_last)
    stems = [_acc(u.first) for u in b.untrained] or [_acc(u_stem)]
    lasts = [_acc(u.last) for u in b.untrained] or [_acc(u_last)]
    text = [
        f"The untrained copy at this network's own starting weights reads {_acc(u_stem):.1f}% at the stem, which "
        + _versus(u_stem, pixels, "is {gap} points above the raw pixels' " + f"{_acc(pixels):.1f}% ({{p}}): part of "
                  "a ConvNet's advantage comes from its architecture alone",
                  "is {gap} points below the raw pixels' " + f"{_acc(pixels):.1f}% ({{p}})",
                  "is not told apart from the raw pixels' " + f"{_acc(pixels):.1f}% " + "({signed} points, {p})")
        + f". With depth its probe {_change(u_last, u_stem)}, to {_acc(u_last):.1f}% at the last block"
        f" ({len(stems)} random starts: {min(stems):.1f}-{max(stems):.1f}% at the stem, "
        f"{min(lasts):.1f}-{max(lasts):.1f}% at the last block).",
        f"From the starting weights to the end of training the stem's probe {_change(t.first, u_stem)}, from "
        f"{_acc(u_stem):.1f}% to {_acc(t.first):.1f}%, and the last block's {_change(t.last, u_last)}, from "
        f"{_acc(u_last):.1f}% to {_acc(t.last):.1f}%.",
    ]  # fmt: skip
    if total.direction == "ahead":
        conclusion = u_rise.words(
            "The untrained copy rises with depth too, so not all of the trained net's rise is learned.",
            "The rise from the stem to the last block is learned: the same architecture at its starting weights "
            "falls with depth instead.",
            "The rise from the stem to the last block is learned: the same architecture at its starting weights "
            "shows none that the photos resolve.",
        )
    else:
        conclusion = "There is no measured rise from the stem to the last block for training to explain; " + (
            trained_last.words(
                "what training measurably did is lift the last block's probe above its untrained self.",
                "training even left the last block's probe below its untrained self.",
                "and training did not measurably change the last block's probe.",
            )
        )
    text.append(conclusion)
    takeaway = (
        "Against the same architecture at its starting weights, training "
        + trained_last.words("lifted", "lowered", "did not measurably change")
        + f" the last block's probe ({_acc(u_last):.1f}% to {_acc(t.last):.1f}%); "
        + (
            u_rise.words("the untrained copy rises with depth too", "the untrained copy falls with depth",
                         "the untrained copy shows no rise the photos resolve")
            if total.direction == "ahead"
            else "the trained net shows no rise with depth for training to explain"
        )
    )  # fmt: skip
    return {"ch1_untrained_paragraph": " ".join(text), "ch1_trained_takeaway": takeaway}


def _grid_words(t: LayerProbes) -> tuple[str, str]:
    """The stem against the last block at each grid, and (second) how each changes from the coarsest grid to
    the finest."""
    pools = sorted(t.by_pool)
    if not pools:
        return "The probes were not repeated at other grids here.", "The probes were not repeated at other grids here."
    first, last = t.layers[0], t.layers[-1]
    parts, directions = [], set()
    for pool in pools:
        stem, end = t.by_pool[pool][first], t.by_pool[pool][last]
        directions.add(probe_verdict(end, stem).direction)
        parts.append(
            f"with a {pool}×{pool} grid the stem reads {_acc(stem):.1f}% and the last block {_acc(end):.1f}%, "
            + _versus(end, stem, "the last block ahead by {gap} points ({p})", "the stem ahead by {gap} points ({p})",
                      "not told apart ({signed} points, {p})")
        )  # fmt: skip
    text = ["On the same test photos, " + "; ".join(parts) + "."]
    small, large = pools[0], pools[-1]
    change = "Only one grid was probed here."
    if small != large:
        stem_gain = probe_verdict(t.by_pool[large][first], t.by_pool[small][first])
        last_gain = probe_verdict(t.by_pool[large][last], t.by_pool[small][last])
        change = (
            f"From the {small}×{small} to the {large}×{large} grid the stem's probe "
            f"{_change(t.by_pool[large][first], t.by_pool[small][first])} and the last block's "
            f"{_change(t.by_pool[large][last], t.by_pool[small][last])}."
        )
        text.append(change)
        if stem_gain.direction == "ahead" and last_gain.direction != "ahead":
            text.append(
                "A finer grid keeps more of where things are, which the stem still encodes in positions while the "
                "last block has turned it into channels: part of how the stem compares is the pooling, not the "
                "features."
            )
    if len(directions) > 1:
        text.append("Which of the two layers reads better depends on the grid, so a statement about depth here holds "
                    "only with its grid.")  # fmt: skip
    else:
        text.append(
            {"ahead": "At every grid the last block reads better.", "behind": "At every grid the stem reads better.",
             "unresolved": "At no grid do the photos tell the two apart."}[directions.pop()]
        )  # fmt: skip
    return " ".join(text), change


def _classifier_words(b: BudgetProbes) -> tuple[str, str]:
    """The probe against the network's own classifier, and (second) that gap split into fitting and grid."""
    t, own = b.trained, b.net_wrong
    text = [
        f"The probe on the last block ({t.pool}×{t.pool} grid) reads {_acc(t.last):.1f}%, the network's own "
        f"classifier {_acc(own):.1f}% on the same test photos: the probe "
        + _versus(t.last, own, "beats it by {gap} points ({p}).", "stays {gap} points below it ({p}).",
                  "is not told apart from it ({signed} points, {p}).")
    ]  # fmt: skip
    one = t.by_pool.get(1, {}).get(t.layers[-1])
    if one is None or t.pool == 1:
        return text[0], "The probe was not fitted on a second grid here, so the two reasons are not separated."
    second = (
        f"On the same {one.n_features} numbers the classifier reads (a 1×1 grid) the probe reads {_acc(one):.1f}%: "
        "fitting alone "
        + _versus(one, own, "beats the network's classifier by {gap} points ({p})",
                  "stays {gap} points below the network's classifier ({p})",
                  "is not told apart from the network's classifier ({signed} points, {p})")
        + f", and the {t.pool}×{t.pool} grid's extra spatial information "
        + _versus(t.last, one, "adds {gap} points to the 1×1 probe", "costs {gap} points against the 1×1 probe",
                  "changes the 1×1 probe by {signed} points, which the photos do not resolve")
        + f" ({_p(t.last, one)})."
    )  # fmt: skip
    return text[0], second


def reference_words(accuracy: float, n: int, reference: float, what: str) -> str:
    """``accuracy`` on ``n`` photos against a published ``reference`` (fractions): below, above or within the
    tolerance of the 95% Wilson interval of ``n`` photos; ``what`` names the reference (cited by the caller)."""
    low, high = error_interval(round((1 - accuracy) * n), n)
    tolerance = (high - low) / 2
    verdict = compare_to_reference(accuracy, reference, tolerance, better="higher")
    gap, within = 100 * abs(accuracy - reference), f"the photo count's 95% interval (±{100 * tolerance:.1f} points)"
    return verdict.words(
        f"{gap:.1f} points above {what} ({100 * reference:.2f}%), beyond {within}",
        f"{gap:.1f} points below {what} ({100 * reference:.2f}%), beyond {within}",
        f"within {within} of {what} ({100 * reference:.2f}%)",
    )


def stage_accuracies(results: dict[str, ProbeResult], layers: list[str]) -> np.ndarray:
    """Probe test accuracies at ``layers`` (fractions), in that order; a one-line error for a layer not probed."""
    unknown = [name for name in layers if name not in results]
    if unknown:
        raise ValueError(f"no probe at layer {unknown[0]!r}; probed: {', '.join(results)}")
    return np.array([results[name].test_accuracy for name in layers])


__all__ = [
    "BudgetProbes",
    "ConvergedProbes",
    "PublishedNetMissing",
    "budget_words",
    "compare_rises",
    "converged_probes",
    "probe_verdict",
    "reference_words",
    "rise",
    "rise_interval",
    "rise_words",
    "stage_accuracies",
]
