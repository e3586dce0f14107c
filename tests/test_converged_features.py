"""Chapter 1's probes on the converged ResNet-56: the words follow made-up numbers either way, probes carry their
mistakes, the figure is labelled, and bad input is refused in one line."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from resnet_lib.chapters import depth_and_features as cp
from resnet_lib.measure.probes import ProbeResult, fit_linear_probe
from resnet_lib.plots import depth_and_features as figs
from resnet_lib.profiles import ConvergedExperiment, FeatureExperiment


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _probe(wrong: list[bool]) -> ProbeResult:
    wrong = np.array(wrong)
    return ProbeResult(1.0, 1 - wrong.mean(), 64, wrong)


def _pair(only_first: int, only_last: int, both: int = 10, neither: int = 100) -> tuple[ProbeResult, ProbeResult]:
    first = [True] * only_first + [False] * only_last + [True] * both + [False] * neither
    last = [False] * only_first + [True] * only_last + [True] * both + [False] * neither
    return _probe(first), _probe(last)


def test_rise_words_say_rises_falls_or_no_measurable_change():
    assert cp.rise_words(cp.probe_verdict(*_pair(40, 3)[::-1])) == "rises"
    assert cp.rise_words(cp.probe_verdict(*_pair(3, 40)[::-1])) == "falls"
    assert cp.rise_words(cp.probe_verdict(*_pair(12, 10)[::-1])) == "does not change measurably"
    assert cp.rise(*_pair(40, 3)).verdict == "fewer"
    gain, low, high = cp.rise_interval(*_pair(40, 3))
    assert gain == pytest.approx(37 / 153) and low < gain < high
    with pytest.raises(ValueError, match="must carry their test mistakes"):
        cp.rise(ProbeResult(1.0, 0.5, 4), ProbeResult(1.0, 0.6, 4))
    with pytest.raises(ValueError, match="must carry its test mistakes"):
        cp.probe_verdict(ProbeResult(1.0, 0.5, 4), ProbeResult(1.0, 0.6, 4))


def test_compare_rises_is_the_books_reference_rule_either_way():
    assert cp.compare_rises((0.54, 0.50, 0.58), (0.03, 0.0, 0.06)).direction == "ahead"
    assert cp.compare_rises((0.03, 0.0, 0.06), (0.54, 0.50, 0.58)).direction == "behind"
    assert cp.compare_rises((0.05, 0.0, 0.10), (0.03, -0.02, 0.08)).direction == "unresolved"
    with pytest.raises(ValueError, match="low <= rise <= high"):
        cp.compare_rises((0.5, 0.6, 0.7), (0.0, -0.1, 0.1))


def test_a_fitted_probe_carries_its_test_mistakes():
    torch.manual_seed(0)
    x, y = torch.randn(60, 5), torch.randint(0, 3, (60,))
    result = fit_linear_probe(x[:40], y[:40], x[40:], y[40:], max_iter=20)
    assert result.test_mistakes.shape == (20,) and result.test_mistakes.dtype == bool
    assert 1 - result.test_mistakes.mean() == pytest.approx(result.test_accuracy)


def test_stage_accuracies_refuse_a_layer_not_probed():
    results = {"stem": _probe([True, False]), "stage3.8": _probe([False, False])}
    np.testing.assert_allclose(cp.stage_accuracies(results, ["stem", "stage3.8"]), [0.5, 1.0])
    with pytest.raises(ValueError, match=r"no probe at layer 'stage1\.8'"):
        cp.stage_accuracies(results, ["stage1.8"])


def test_converged_probes_refuse_bad_input_in_one_line():
    with pytest.raises(ValueError, match="one of the experiment's published depths") as err:
        cp.converged_probes(ConvergedExperiment(), FeatureExperiment(), depth=110)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"ConvergedExperiment\.probe_train must be a whole number"):
        cp.converged_probes(dataclasses.replace(ConvergedExperiment(), probe_train=0), FeatureExperiment())


def test_converged_probes_on_the_standin_measure_only_the_error(monkeypatch):
    monkeypatch.setenv("RESNET_BOOK_DATASET", "standin")
    experiment = dataclasses.replace(ConvergedExperiment(), standin_test=20)
    try:
        result = cp.converged_probes(experiment, FeatureExperiment(), depth=20, progress=False)
    except cp.PublishedNetMissing as exc:  # no copy of the weights here: one line
        assert "\n" not in str(exc)
        return
    assert result.dataset == "standin" and result.results == {} and result.n_test == 20
    assert result.error_low <= result.error <= result.error_high


def test_stage_figure_is_labelled_and_draws_each_net():
    series = {
        "converged": ([0.39, 0.56, 0.75, 0.94], [0.36, 0.53, 0.72, 0.92], [0.42, 0.6, 0.78, 0.95]),
        "budget": ([0.42, 0.45, 0.44, 0.45], [0.39, 0.42, 0.41, 0.42], [0.45, 0.48, 0.47, 0.48]),
    }
    fig = figs.plot_stage_probes(["stem", "stage 1", "stage 2", "stage 3"], series, "CIFAR-10", chance=0.1)
    ax = fig.axes[0]
    assert "CIFAR-10" in ax.get_title() and ax.get_xlabel() and "%" in ax.get_ylabel()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["budget", "chance", "converged"]
    with pytest.raises(ValueError, match="one accuracy, low and high per stage"):
        figs.plot_stage_probes(["stem", "stage 1"], series, "CIFAR-10")
    with pytest.raises(ValueError, match="at least one net"):
        figs.plot_stage_probes(["stem"], {}, "CIFAR-10")
