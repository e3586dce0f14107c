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
