"""Chapters 3 and 5's helpers: shared runs, summaries, Table 6, and their figures."""

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from resnet_lib.chapters import degradation as dg
from resnet_lib.models import cifar_net
from resnet_lib.plots import curves, style
from resnet_lib.plots import residual_networks as figs
from resnet_lib.profiles import CifarExperiment, DataSpec
from resnet_lib.recipe import Recipe

TINY = CifarExperiment(
    data=DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8),
    recipe=Recipe(epochs=2, batch_size=32, warmup_steps=1),
    width=2,
    depths=(8, 14),
    seeds=(0, 1),
)


def test_table6_compares_our_rounded_counts_with_the_papers_printed_figures():
    rows = dg.table6_rows()
    assert [r["depth"] for r in rows] == [20, 32, 44, 56, 110]
    assert [r["blocks_per_stage"] for r in rows] == [3, 5, 7, 9, 18]
    assert [r["params_paper_m"] for r in rows] == [0.27, 0.46, 0.66, 0.85, 1.7]  # as Table 6 prints them
    for r in rows:
        assert r["params_resnet"] == r["params_plain"]
        assert r["match"] and r["params_rounded_m"] == r["params_paper_m"]
    text = dg.format_table6(rows)
    assert text.count(" yes ") == 5 and "NO" not in text
    assert "1,727,962" in text and "1.7M" in text and "best of 5" in text and "6.61 ± 0.16" in text


def test_table6_says_no_when_the_built_nets_differ_from_the_paper():
    rows = dg.table6_rows(width=12)  # not the paper's 16/32/64 filters
    assert not any(r["match"] for r in rows)
    assert "NO" in dg.format_table6(rows)


def test_train_nets_trains_every_depth_and_seed_once_then_loads_them():
    from resnet_lib.runs import is_stored

    assert not any(is_stored("plain", d, TINY, seed=s) for d in (8, 14) for s in (0, 1))
    runs = dg.train_nets("plain", TINY, progress=False)  # two worker processes where torch runs one thread
    assert sorted(runs) == [8, 14] and all(len(v) == 2 for v in runs.values())
    assert [r.seed for r in runs[8]] == [0, 1]
    assert all(is_stored("plain", d, TINY, seed=s) for d in (8, 14) for s in (0, 1))
    again = dg.train_nets("plain", TINY, depths=(8,), progress=False)
    assert list(again) == [8] and all(r.stored.from_cache for r in again[8])
    assert again[8][0].history.final == runs[8][0].history.final
    with pytest.raises(ValueError, match="'plain' or 'residual'"):
        dg.train_nets("dense", TINY)


def test_final_errors_summarize_over_seeds():
    runs = dg.train_nets("residual", TINY, depths=(8,), progress=False)[8]
    e = dg.final_errors(runs)
    assert e.label == "ResNet-8"
    assert e.train == tuple(r.history.final["train_error"] for r in runs)
    assert e.train_mean == pytest.approx(sum(e.train) / 2)
    assert e.train_spread == pytest.approx(max(e.train) - min(e.train))
    with pytest.raises(ValueError, match="at least one run"):
        dg.final_errors([])


def test_logits_in_batches_equal_one_pass_and_error_rate_counts_mistakes():
    torch.manual_seed(0)
    net = cifar_net("residual", 8, width=2).eval()
    x = torch.randn(7, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
    net.train()
    got = dg.logits(net, x, batch_size=3)
    assert net.training, "the model's mode is restored"
    assert torch.allclose(got, expected, atol=1e-6)
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert dg.error_rate(scores, torch.tensor([0, 1, 1, 0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="differ in length"):
        dg.error_rate(scores, torch.tensor([0, 1]))


def test_budget_summary_names_the_data_the_steps_and_the_papers_budget():
    text = dg.budget_summary(TINY)
    assert "procedural stand-in" in text
    assert "64 training and 32 test images of 8x8" in text
    assert "2 epochs = 4 steps" in text and "linear warm-up over 1 steps" in text
    assert "64,000 steps" in text and "16000x" in text


def test_seed_curves_draw_mean_and_band_and_reject_bad_input():
    def epoch(e, train, test):
        return {"epoch": e, "step": 10 * e, "train_error": train, "test_error": test}

    history = [[epoch(1, 0.5, 0.4), epoch(2, 0.3, 0.2)], [epoch(1, 0.7, 0.6), epoch(2, 0.5, 0.4)]]
    fig, ax = style.new_figure()
    curves.plot_seed_curves(ax, history, style.family_color("plain"), "plain-8")
    train, test = ax.lines
    assert train.get_linestyle() == "--" and test.get_linestyle() == "-"
    assert list(train.get_ydata()) == pytest.approx([60.0, 40.0]) and list(test.get_xdata()) == [10, 20]
    assert len(ax.collections) == 2, "one min-max band per curve with two seeds"
    assert ax.get_xlabel().startswith("iteration")
    curves.add_line_style_legend(ax)
    with pytest.raises(ValueError, match="'step' or 'epoch'"):
        curves.plot_seed_curves(ax, history, "k", "x", x="time")
    with pytest.raises(ValueError, match="non-empty history"):
        curves.plot_seed_curves(ax, [], "k", "x")
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("residual", [False, True])
def test_block_diagram_draws_the_shortcut_only_for_the_residual_block(residual):
    fig, ax = style.new_figure()
    figs.draw_basic_block(ax, residual=residual)
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("3x3 conv, BatchNorm") == 2 and texts.count("ReLU") == 2
    assert ("+" in texts) == residual
    assert ax.get_title() == ("residual block" if residual else "plain block")
    matplotlib.pyplot.close(fig)


def test_rounded_like_keeps_the_papers_decimals():
    assert dg.rounded_like(269_722, 0.27) == 0.27
    assert dg.rounded_like(1_727_962, 1.7) == 1.7
    assert dg.rounded_like(19_400_000, 19.4) == 19.4


def test_a_longer_experiment_multiplies_epochs_and_steps_and_keeps_the_rest():
    from resnet_lib.profiles import PROFILES

    base = PROFILES["ci"].cifar
    long = base.longer(3)
    assert long.recipe.epochs == 3 * base.recipe.epochs
    assert long.recipe.warmup_steps == base.recipe.warmup_steps
    assert long.recipe.lr_milestones == base.recipe.lr_milestones
    assert (long.data, long.width, long.seeds) == (base.data, base.width, base.seeds)
    capped = replace(base, recipe=replace(base.recipe, max_steps=100)).longer(2)
    assert capped.recipe.max_steps == 200
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="factor must be a whole number >= 1"):
            base.longer(bad)


def test_data_sentence_says_real_photos_and_how_many_or_the_standin():
    from resnet_lib.data import load_dataset

    standin = load_dataset(DataSpec(dataset="standin", n_train=20, n_test=10, image_size=8), verbose=False)
    assert dg.data_sentence(standin) == "on the procedurally generated stand-in for CIFAR-10, not on real photos"
    photos = replace(
        standin, name="cifar10", train_x=standin.train_x.repeat(60, 1, 1, 1), train_y=standin.train_y.repeat(60)
    )
    assert dg.data_sentence(photos) == "on 1,200 real CIFAR-10 training photos averaged down to 8×8 pixels"


def test_architecture_rows_read_the_book_nets_and_torchvision_off_the_models():
    rows = {r["net"]: r for r in dg.architecture_rows()}
    assert rows["ResNet-20 (this book)"]["blocks"] == "3-3-3" and rows["ResNet-20 (this book)"]["widths"] == "16/32/64"
    assert rows["ResNet-20 (this book)"]["params"] == dg.table6_rows()[0]["params_resnet"]
    r18, r50 = rows["torchvision ResNet-18"], rows["torchvision ResNet-50"]
    assert (r18["blocks"], r18["block"], r18["widths"]) == ("2-2-2-2", "basic", "64/128/256/512")
    assert (r50["blocks"], r50["block"], r50["widths"]) == ("3-4-6-3", "bottleneck", "256/512/1024/2048")
    assert r18["stem"] == "7x7/2 conv + 3x3/2 max-pool"
    assert r18["params"] == 11_689_512 and r50["params"] == 25_557_032  # torchvision's documented sizes
    text = dg.format_architectures(list(rows.values()))
    assert "11,689,512" in text and "bottleneck" in text


def _fake_runs(label: str, depth: int, steps: int, train_errors: tuple[float, ...]) -> list:
    """Stand-ins for CifarRun with only what the control reads: label, depth, seed and the final epoch."""
    from types import SimpleNamespace

    return [
        SimpleNamespace(label=label, depth=depth, seed=seed, history=SimpleNamespace(
            final={"step": steps, "train_error": e, "test_error": e}
        ))
        for seed, e in enumerate(train_errors)
    ]  # fmt: skip


def _control(deep_errors, shallow_errors, factor=2, by="shallow"):
    deep = _fake_runs("plain-56", 56, 710, deep_errors)
    shallow = _fake_runs("plain-20", 20, 710 // factor, shallow_errors)
    return dg.SlowStartControl(factor, by, deep, shallow)


def test_degradation_needs_the_deep_net_behind_at_equal_steps_and_with_more_steps():
    from resnet_lib.measure.verdicts import compare_seeds

    behind = compare_seeds([0.8, 0.85], [0.6, 0.62])  # plain-56 first: worse in each seed
    degraded = _control((0.8, 0.85), (0.66, 0.67))  # still worse with twice plain-20's steps
    assert degraded.verdict.direction == "behind" and degraded.steps == (710, 355)
    assert dg.degradation_outcome(behind, degraded.verdict) == dg.DEGRADATION
    # The control removed: the same gap cannot be called degradation.
    assert dg.degradation_outcome(behind, None) == dg.UNTESTED
    # The control reversed: the deep net with more steps ends ahead, a slow start.
    caught_up = _control((0.5, 0.55), (0.66, 0.67))
    assert dg.degradation_outcome(behind, caught_up.verdict) == dg.SLOW_START
    # The seeds disagree: not settled.
    split = _control((0.7, 0.6), (0.66, 0.67))
    assert dg.degradation_outcome(behind, split.verdict) == dg.UNSETTLED
    # No gap at equal steps: nothing for a control to explain, whatever it says.
    for equal in (compare_seeds([0.5, 0.5], [0.6, 0.6]), compare_seeds([0.7, 0.5], [0.6, 0.6])):
        assert dg.degradation_outcome(equal, degraded.verdict) == dg.NO_GAP
        assert dg.degradation_outcome(equal, None) == dg.NO_GAP


def test_the_slow_start_sentences_follow_the_outcome_and_name_the_factor():
    degraded, caught_up, split = (
        _control((0.8, 0.85), (0.66, 0.67)),
        _control((0.5, 0.55), (0.66, 0.67)),
        _control((0.7, 0.6), (0.66, 0.67)),
    )
    verdict, takeaway = dg.slow_start_sentences(dg.DEGRADATION, degraded)
    assert "With 2 times plain-20's steps, plain-56 still ends behind it in each of the 2 seeds" in verdict
    assert "82.5% against 66.5%" in verdict and "degradation, not a start 2 times slower" in verdict
    assert "even with 2 times the steps" in takeaway
    verdict, takeaway = dg.slow_start_sentences(dg.SLOW_START, caught_up)
    assert "ends ahead of it in each of the 2 seeds" in verdict and "slow start, not degradation" in verdict
    assert "not the degradation" in takeaway
    verdict, takeaway = dg.slow_start_sentences(dg.UNSETTLED, split)
    assert "not behind it in every seed (the 2 seeds disagree" in verdict and "cannot tell" in takeaway
    assert "cannot tell degradation from a slow start" in dg.slow_start_sentences(dg.UNTESTED, None)[0]
    assert "no degradation shown" in dg.slow_start_sentences(dg.NO_GAP, degraded)[1]
    with pytest.raises(ValueError, match="unknown outcome 'maybe'"):
        dg.slow_start_sentences("maybe", degraded)
    with pytest.raises(ValueError, match="needs the control's runs"):
        dg.slow_start_sentences(dg.DEGRADATION, None)


def test_the_control_design_says_which_net_was_stretched_or_compressed():
    assert dg.control_design(None) == "This profile trains no such control."
    shallow = dg.control_design(_control((0.8, 0.85), (0.66, 0.67)))
    assert "compresses plain-20" in shallow and "1/2 of its steps (355 against plain-56's 710)" in shallow
    assert "more than 355, before it starts" in shallow
    deep = dg.control_design(dg.SlowStartControl(3, "deep", _fake_runs("plain-56", 56, 2130, (0.7, 0.7)),
                                                 _fake_runs("plain-20", 20, 710, (0.5, 0.5))))  # fmt: skip
    assert "trains plain-56 again, every seed, for 3 times the steps (2,130 against plain-20's 710)" in deep


def test_equal_steps_sentence_says_either_direction_or_neither():
    from resnet_lib.measure.verdicts import compare_seeds

    assert "ended behind plain-20 in training error in each of the 2 seeds" in dg.equal_steps_sentence(
        compare_seeds([0.8, 0.85], [0.6, 0.62])
    )
    assert "ended ahead" in dg.equal_steps_sentence(compare_seeds([0.5, 0.5], [0.6, 0.6]))
    assert "did not end behind plain-20 in every seed (one seed)" in dg.equal_steps_sentence(
        compare_seeds([0.8], [0.6])
    )


def test_the_slow_start_control_trains_through_the_results_cache_at_the_step_ratio():
    from resnet_lib.runs import is_stored

    base = replace(TINY, recipe=Recipe(epochs=2, batch_size=32, warmup_steps=2), data=replace(TINY.data, n_train=96))
    assert dg.train_slow_start_control(base, depths=(8, 14), progress=False) is None  # factor 0: no control
    shallow = replace(base, slow_start_factor=2)
    control = dg.train_slow_start_control(shallow, depths=(8, 14), progress=False)
    assert control.by == "shallow" and control.factor == 2
    assert control.steps == (6, 3)  # 96 images in batches of 32: 3 steps an epoch; plain-8 compressed to one epoch
    assert [r.seed for r in control.deep] == [0, 1] == [r.seed for r in control.shallow]
    assert all(is_stored("plain", 8, shallow.shorter(2), seed=s) for s in (0, 1))
    assert control.verdict.direction in ("ahead", "behind", "unresolved")
    deep = dg.train_slow_start_control(replace(base, slow_start_factor=2, slow_start_by="deep"), (8, 14), False)
    assert deep.steps == (12, 6) and deep.by == "deep"
    with pytest.raises(ValueError, match="shallow < deep"):
        dg.train_slow_start_control(shallow, depths=(14, 8), progress=False)
