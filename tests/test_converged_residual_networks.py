"""Chapter 5's converged-nets section: the words follow made-up numbers either way, the measurement's single pass
equals separate ones, the figures are labelled, and bad input is refused in one line."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from resnet_lib.chapters import residual_networks as conv
from resnet_lib.measure.responses import layer_response_std, responses_and_logits
from resnet_lib.measure.significance import paired_comparison, paired_difference
from resnet_lib.models import CifarNet
from resnet_lib.plots import residual_networks as figs
from resnet_lib.profiles import ConvergedExperiment


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _wrong(only_a: int, only_b: int, both: int = 5, neither: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Made-up mistakes of two nets on the same photos."""
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    return a, b


def _error(depth: int, errors: int, n: int, stated: float) -> conv.ConvergedError:
    from resnet_lib.measure.significance import error_interval

    low, high = error_interval(errors, n)
    return conv.ConvergedError(depth, errors, n, low, high, stated, stated + 0.005)


def test_pair_words_say_deeper_better_worse_or_unresolved():
    better = paired_comparison(*_wrong(2, 30), "ResNet-56", "ResNet-20")
    worse = paired_comparison(*_wrong(30, 2), "ResNet-56", "ResNet-20")
    tie = paired_comparison(*_wrong(10, 12), "ResNet-56", "ResNet-20")
    assert [conv.pair_verdict(c) for c in (better, worse, tie)] == ["deeper better", "deeper worse", "unresolved"]
    said = conv.pairs_sentence([better, tie], 1000)
    assert said.startswith("1 of the 2 pairs resolves on") and "ResNet-56 makes fewer mistakes" in said
    assert "56-20) do not resolve" in said
    assert conv.pairs_sentence([tie], 1000) == "none of the 1 pairs resolves on these 1,000 photos"
    assert "every pair resolves" in conv.pairs_sentence([better], 1000)


def test_ordering_sentence_names_pairs_against_table6_and_says_when_none_resolve():
    better = paired_comparison(*_wrong(2, 30), "ResNet-44", "ResNet-20")
    worse = paired_comparison(*_wrong(30, 2), "ResNet-32", "ResNet-20")
    tie = paired_comparison(*_wrong(10, 12), "ResNet-56", "ResNet-44")
    assert "ResNet-32 against ResNet-20" in conv.ordering_sentence([better, worse, tie])
    assert conv.ordering_sentence([better]).startswith("every pair resolves in Table 6's order")
    assert conv.ordering_sentence([better, tie]).startswith("no pair resolves against Table 6's order; the one that")
    assert conv.ordering_sentence([tie]).startswith("no pair resolves, either way")


def test_interval_sentence_says_which_nets_miss_and_on_which_side():
    inside = _error(20, 70, 846, 0.0827)
    too_good = _error(32, 20, 846, 0.0737)  # 2.4% measured: the stated error lies above the interval
    assert (
        conv.interval_sentence([inside], "stated") == "every one of the 1 intervals holds the publisher's stated error"
    )
    said = conv.interval_sentence([inside, too_good], "stated")
    assert said.startswith("ResNet-32 err less than the publisher's stated error")
    assert "Table 6's error" in conv.interval_sentence([too_good], "paper")
    with pytest.raises(ValueError, match="which must be"):
        conv.interval_sentence([inside], "mine")


def test_response_verdict_needs_every_group_to_agree():
    assert conv.response_verdict([0.4, 0.41, 0.39], [0.6, 0.62, 0.61]) == "smaller"
    assert conv.response_verdict([0.7, 0.71, 0.69], [0.6, 0.62, 0.61]) == "larger"
    assert conv.response_verdict([0.59, 0.65, 0.6], [0.6, 0.62, 0.61]) == "unresolved"
    with pytest.raises(ValueError, match="one mean response per image group"):
        conv.response_verdict([0.4, 0.5], [0.6, 0.6, 0.6])


def test_fig7_words_follow_made_up_responses_both_ways():
    layers = {20: 19, 32: 31}
    shrinking = {d: np.full((3, n), 1.0 / d) + 0.001 * np.arange(3)[:, None] for d, n in layers.items()}
    verdicts = conv.response_verdicts(shrinking)
    assert conv.fig7_sentence(verdicts["all layers"]).startswith("holds")
    assert conv.stages_sentence(verdicts) == "it holds within every stage too, for every pair of depths"
    growing = {d: np.full((3, n), d / 10.0) for d, n in layers.items()}
    assert conv.fig7_sentence(conv.response_verdicts(growing)["all layers"]).startswith("is reversed")
    mixed = {20: np.full((3, 19), 0.5), 32: np.full((3, 31), 0.5)}
    mixed[32][:, 1:11] = 0.1  # smaller in stage 1 only
    mixed_verdicts = conv.response_verdicts(mixed)
    assert mixed_verdicts["stage 1"][20, 32] == "smaller" and mixed_verdicts["stage 2"][20, 32] == "unresolved"
    assert conv.stages_sentence(mixed_verdicts).startswith("it holds for every pair within stage 1; not in")
    assert conv.fig7_sentence({}) == "was not measured here"


def test_stage_slices_cover_every_layer_after_the_stem_once():
    for depth in (20, 56):
        covered = sorted(i for s in conv.stage_slices(depth).values() for i in range(depth - 1)[s])
        assert covered == list(range(1, depth - 1))
    with pytest.raises(ValueError, match="ResNet-20 has 19 3x3 layers"):
        conv.mean_responses(np.ones((2, 18)), 20)


def test_one_pass_gives_the_logits_and_the_stds_of_separate_passes():
    torch.manual_seed(0)
    net = CifarNet(8, residual=True, shortcut="A", zero_padding="split").eval()
    x = torch.randn(12, 3, 32, 32)
    stds, logits = responses_and_logits(net, x, 8, groups=2, batch_size=3)
    with torch.no_grad():
        torch.testing.assert_close(logits, net(x))
    np.testing.assert_allclose(stds[0], layer_response_std(net, x[:4]), rtol=1e-6)
    np.testing.assert_allclose(stds[1], layer_response_std(net, x[4:8]), rtol=1e-6)
    with pytest.raises(ValueError, match="n_responses must lie in"):
        responses_and_logits(net, x, 13)


def test_paired_difference_counts_only_the_disagreements():
    a, b = _wrong(30, 10, both=20, neither=140)  # 200 photos: A wrong on 50, B on 30
    diff, low, high = paired_difference(a, b)
    assert diff == pytest.approx(0.1) and low < diff < high
    assert high - low == pytest.approx(2 * 1.959964 * np.sqrt(40 - 200 * 0.01) / 200, rel=1e-5)
    with pytest.raises(ValueError, match="same photos"):
        paired_difference(a, b[:-1])


def test_study_refuses_bad_sizes_in_one_line():
    for field, value in (("response_groups", 0), ("standin_test", -1)):
        with pytest.raises(ValueError, match=f"ConvergedExperiment.{field} must be a whole number") as err:
            conv.converged_study(dataclasses.replace(ConvergedExperiment(), **{field: value}), progress=False)
        assert "\n" not in str(err.value)


def test_study_on_the_standin_scores_only_the_error(monkeypatch):
    monkeypatch.setenv("RESNET_BOOK_DATASET", "standin")
    experiment = dataclasses.replace(ConvergedExperiment(), depths=(20,), standin_test=20)
    study = conv.converged_study(experiment, progress=False)
    assert study.dataset == "standin" and study.n_test == 20 and study.response_groups == {}
    assert set(study.errors) | set(study.missing) == {20}  # scored, or one line saying why not
    assert study.chance == pytest.approx(0.9)


def test_error_figure_is_labelled_and_refuses_an_interval_without_its_error():
    fig = figs.plot_converged_errors(
        [20, 56], [0.083, 0.067], [0.066, 0.052], [0.103, 0.086], [0.0827, 0.0661], [0.0875, 0.0697], 846, "CIFAR-10"
    )
    ax = fig.axes[0]
    assert "CIFAR-10" in ax.get_title() and ax.get_xlabel() and "%" in ax.get_ylabel()
    assert len(ax.get_legend().get_texts()) == 3
    with pytest.raises(ValueError, match="every interval must contain its error"):
        figs.plot_converged_errors([20], [0.2], [0.066], [0.103], [0.08], [0.09], 846, "CIFAR-10")
    with pytest.raises(ValueError, match="one error, interval"):
        figs.plot_converged_errors([20, 56], [0.08], [0.06], [0.1], [0.08], [0.09], 846, "CIFAR-10")


def test_response_figure_draws_each_net_by_relative_depth_and_per_stage():
    stds = {20: np.linspace(0.6, 0.4, 19), 56: np.linspace(0.4, 0.3, 55)}
    means = {d: {"all layers": [s.mean()] * 2, "stage 1": [0.5, 0.52]} for d, s in stds.items()}
    fig = figs.plot_converged_responses(stds, means, "CIFAR-10")
    left, right = fig.axes[:2]
    assert "CIFAR-10" in fig.get_suptitle() and all(ax.get_xlabel() or ax.get_xticklabels() for ax in (left, right))
    assert left.get_ylabel() and right.get_ylabel() and len(left.get_lines()) == 2
    assert max(left.get_lines()[1].get_xdata()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same, non-empty set of depths"):
        figs.plot_converged_responses(stds, {20: means[20]}, "CIFAR-10")


def test_interval_sentence_on_nets_at_chance_says_they_err_more():
    at_chance = _error(20, 180, 200, 0.0827)
    assert conv.interval_sentence([at_chance], "stated") == (
        "ResNet-20 err more than the publisher's stated error, outside their 95% intervals"
    )


# --------------------------------------------------------------------------- the budget runs' words, over seeds


def test_seed_comparison_says_each_direction_paired_by_seed():
    resnet20, resnet56 = [0.535, 0.556], [0.554, 0.572]  # the finding: ResNet-56 worse in each seed
    names = ("ResNet-56", "ResNet-20")
    behind = conv.seed_comparison(resnet56, resnet20, names, "test error")
    assert behind.startswith("ResNet-56 ends with a higher test error than ResNet-20 in each of the 2 seeds")
    assert "by 1.6 to 1.9 points" in behind and "55.4%, 57.2%" in behind
    ahead = conv.seed_comparison(resnet20, resnet56, names[::-1], "test error")
    assert ahead.startswith("ResNet-20 ends with a lower test error than ResNet-56 in each of the 2 seeds")
    split = conv.seed_comparison([0.554, 0.550], resnet20, names, "test error")  # the seeds disagree
    assert split.startswith(
        "this run does not order ResNet-56 and ResNet-20 in test error (the 2 seeds disagree: ResNet-56 55.4%, 55.0%;"
    )
    one = conv.seed_comparison([0.554], [0.535], names, "test error")
    assert "(one seed: ResNet-56 55.4%; ResNet-20 53.5%, seed by seed)" in one and "higher" not in one


def test_degradation_sentence_follows_the_runs_both_ways():
    plain = ([0.50, 0.52], [0.80, 0.81])  # plain-20, plain-56: the degradation
    still = conv.degradation_sentence(plain, ([0.45, 0.46], [0.50, 0.49]), (20, 56))
    assert "still trains worse" in still and "the degradation is not gone" in still
    assert "the shortcuts shrink the cost of depth" in still and "+5.0, +3.0 points" in still
    gone = conv.degradation_sentence(plain, ([0.45, 0.46], [0.40, 0.41]), (20, 56))
    assert "trains better" in gone and "the degradation is gone" in gone and "not gone" not in gone
    worse = conv.degradation_sentence(plain, ([0.10, 0.10], [0.50, 0.45]), (20, 56))
    assert "gap in training error is larger for the ResNets" in worse
    mixed = conv.degradation_sentence(plain, ([0.45, 0.46], [0.44, 0.47]), (20, 56))
    assert "does not order ResNet-56 and ResNet-20 in training error (the 2 seeds disagree)" in mixed


def test_line_comparison_is_the_seed_rule_named_by_image_pair():
    smooth, rough = [0.9, 0.8, 0.85], [0.1, 0.2, 0.0]
    assert conv.line_comparison(smooth, rough).direction == "ahead"
    assert conv.line_comparison(rough, smooth).basis == "in each of the 3 image pairs"
    assert conv.line_comparison([0.9, 0.1], [0.5, 0.5]).basis == "the 2 image pairs disagree"


# --------------------------------------------------------------------------- chapter 4, carried forward


def _carry(exponent: float, one: list[float], two: list[float], plain: list[float]) -> conv.ShatteringCarry:
    return conv.ShatteringCarry(exponent, 50, np.array(one), np.array(two), np.array(plain))


def test_carry_sentences_follow_made_up_numbers_either_way():
    one, two, plain = [0.6, 0.7, 0.65], [0.2, 0.1, 0.15], [0.0, 0.05, -0.02]
    said = conv.carry_sentences(_carry(-0.91, one, two, plain))
    assert said["exponent"].startswith("falls with depth, faster than") and "L to the power -0.91" in said["exponent"]
    assert "keeps less of it" in said["block"] and "lower in each of the 3 seeds" in said["block"]
    assert "still above the plain net with BatchNorm (0.01) in each of the 3 seeds" in said["block"]
    assert conv.carry_sentences(_carry(-0.55, one, two, plain))["exponent"].startswith("falls with depth at the rate")
    assert conv.carry_sentences(_carry(-0.3, one, two, plain))["exponent"].startswith("falls with depth, more slowly")
    assert conv.carry_sentences(_carry(-0.1, one, two, plain))["exponent"].startswith("does not change with depth")
    assert conv.carry_sentences(_carry(0.4, one, two, plain))["exponent"].startswith("grows with depth")
    flipped = conv.carry_sentences(_carry(-0.9, two, one, [0.1, 0.8, 0.0]))["block"]
    assert "keeps more of it" in flipped and "not told apart from the plain net" in flipped


def test_shattering_carry_measures_chapter_4s_fall_with_depth():
    from resnet_lib.profiles import ShatteringExperiment

    cfg = ShatteringExperiment(units=100, depths=(1, 2, 4, 8, 16, 32), seeds=tuple(range(16)))
    carry = conv.shattering_carry(cfg)
    assert carry.depth == 32 and carry.lag1_one_layer.shape == carry.lag1_two_layer.shape == (16,)
    assert carry.exponent < -0.3, carry  # the ResNet's correlation falls with depth (-0.97 measured here)
    assert carry.lag1_one_layer.mean() > carry.lag1_plain.mean(), carry  # shortcuts keep more than a plain net
