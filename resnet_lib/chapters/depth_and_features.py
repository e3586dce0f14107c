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
from resnet_lib.measure.probes import ProbeResult, fit_linear_probe, layer_titles, pooled_features, probe_layers
from resnet_lib.measure.significance import (
    CONFIDENCE,
    PairedComparison,
    error_interval,
    mistakes,
    paired_comparison,
    paired_difference,
)
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
    """McNemar's test of two probes on the same test photos (the later layer first: "fewer" means it rose)."""
    if first.test_mistakes is None or last.test_mistakes is None:
        raise ValueError("both probes must carry their test mistakes (fit_linear_probe records them)")
    return paired_comparison(last.test_mistakes, first.test_mistakes, name_last, name_first)


def rise_interval(first: ProbeResult, last: ProbeResult, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Accuracy of ``last`` minus ``first`` on the same photos, with its paired interval (fractions)."""
    diff, low, high = paired_difference(first.test_mistakes, last.test_mistakes, confidence)
    return diff, low, high


def rise_words(comparison: PairedComparison) -> str:
    """``"rises"``, ``"falls"`` or ``"does not change measurably"`` from the stem's probe to the last stage's."""
    return {"fewer": "rises", "more": "falls", "unresolved": "does not change measurably"}[comparison.verdict]


def compare_rises(
    converged: tuple[float, float, float], budget: tuple[float, float, float], confidence: float = CONFIDENCE
) -> str:
    """``"larger"``, ``"smaller"`` or ``"unresolved"``: the converged net's rise against the budget net's, each
    given as ``(rise, low, high)`` from :func:`rise_interval` (the two nets' photos are scored independently)."""
    for name, (value, low, high) in (("converged", converged), ("budget", budget)):
        if not low <= value <= high or not all(math.isfinite(v) for v in (value, low, high)):
            raise ValueError(
                f"the {name} rise must be (rise, low, high) with low <= rise <= high, got {(value, low, high)}"
            )
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    z_wanted = NormalDist().inv_cdf(0.5 + confidence / 2)
    se = math.hypot((converged[2] - converged[1]) / (2 * z), (budget[2] - budget[1]) / (2 * z))
    gap = converged[0] - budget[0]
    if gap - z_wanted * se > 0:
        return "larger"
    if gap + z_wanted * se < 0:
        return "smaller"
    return "unresolved"


def stage_accuracies(results: dict[str, ProbeResult], layers: list[str]) -> np.ndarray:
    """Probe test accuracies at ``layers`` (fractions), in that order; a one-line error for a layer not probed."""
    unknown = [name for name in layers if name not in results]
    if unknown:
        raise ValueError(f"no probe at layer {unknown[0]!r}; probed: {', '.join(results)}")
    return np.array([results[name].test_accuracy for name in layers])


__all__ = [
    "ConvergedProbes",
    "PublishedNetMissing",
    "compare_rises",
    "converged_probes",
    "rise",
    "rise_interval",
    "rise_words",
    "stage_accuracies",
]
