"""Linear probes, frozen features, the untrained control and the sample photo (chapter 1)."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_lib.data import ImageDataset
from resnet_lib.measure import probes
from resnet_lib.models import calibrate_batchnorm, cifar_resnet, plain_cifar_net
from resnet_lib.plots.depth_and_features import (
    most_active_channels,
    plot_feature_maps,
    plot_first_layer_filters,
    plot_probe_accuracy,
)
from resnet_lib.profiles import FeatureExperiment


def _net(depth: int = 8, width: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    return cifar_resnet(depth, width=width).eval()


def _images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _dataset(n_train: int = 120, n_test: int = 60, size: int = 8) -> ImageDataset:
    """Three classes told apart by the mean of one colour channel: linearly separable in pixels."""
    gen = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.arange(n) % 3
        x = 0.3 * torch.randn(n, 3, size, size, generator=gen)
        x[torch.arange(n), y] += 1.0
        return x, y

    (tx, ty), (vx, vy) = split(n_train), split(n_test)
    return ImageDataset("toy", "toy data", ("r", "g", "b"), tx, ty, vx, vy)


# --------------------------------------------------------------------------- layers


def test_probe_layers_and_depths_follow_the_net():
    net = _net(depth=20)
    layers = probes.probe_layers(net)
    assert layers[0] == "stem" and layers[-1] == "stage3.2" and len(layers) == 10
    assert probes.layer_depths(net, layers) == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    assert probes.probe_layers(net, every_block=False) == ["stem", "stage1.2", "stage2.2", "stage3.2"]
    assert probes.layer_depths(net, ["pixels", "stem", "stage3.2"]) == [0, 1, 19]
    assert set(layers) == set(net.feature_maps(_images(2)))
    titles = probes.layer_titles(net, ["pixels", "stem", "stage2.2"])
    assert titles == {"pixels": "raw pixels", "stem": "stem, layer 1", "stage2.2": "stage 2, block 3, layer 13"}


@pytest.mark.parametrize("name", ["stage4.0", "stage1.3", "block1", "stage1.x"])
def test_an_unknown_layer_is_refused_in_one_line(name):
    net = _net(depth=20)
    with pytest.raises(ValueError, match="unknown layer") as err:
        probes.layer_depths(net, [name])
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown layer"):
        probes.frozen_features(net, _images(2), [name])


# --------------------------------------------------------------------------- features


def test_pooled_features_are_the_pooled_feature_maps_and_leave_the_mode_alone():
    net, x = _net(), _images(10)
    net.train()
    feats = probes.pooled_features(net, x, [("stem", 2), ("stage3.0", 1), ("stem", 4)], batch_size=3)
    assert net.training, "the net is returned in the mode it came in"
    with torch.no_grad():
        maps = net.eval().feature_maps(x)
    torch.testing.assert_close(feats["stem", 2], F.adaptive_avg_pool2d(maps["stem"], 2).flatten(1))
    torch.testing.assert_close(feats["stem", 4], F.adaptive_avg_pool2d(maps["stem"], 4).flatten(1))
    assert feats["stem", 2].shape == (10, 4 * 4) and feats["stage3.0", 1].shape == (10, 16)


def test_the_last_layer_pooled_to_one_pixel_is_what_the_classifier_sees():
    net, x = _net(), _images(6)
    last = probes.frozen_features(net, x, ["stage3.0"], pool=1)["stage3.0"]
    with torch.no_grad():
        torch.testing.assert_close(net.fc(last), net(x), rtol=1e-5, atol=1e-5)


def test_a_bad_pool_is_refused():
    with pytest.raises(ValueError, match="pool must be a grid size"):
        probes.frozen_features(_net(), _images(2), ["stem"], pool=0)


def test_pca_features_keep_the_directions_of_largest_variance():
    gen = torch.Generator().manual_seed(1)
    train = torch.randn(200, 6, generator=gen, dtype=torch.float64) * torch.tensor([5.0, 3, 2, 1, 0.5, 0.1])
    test = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    tr, te = probes.pca_features(train, test, 3)
    assert tr.shape == (200, 3) and te.shape == (20, 3)
    cov = tr.T @ tr / (len(tr) - 1)
    eig = torch.linalg.eigvalsh(torch.cov(train.T)).flip(0)[:3]
    torch.testing.assert_close(cov.diagonal(), eig)  # projected variances are the top eigenvalues
    torch.testing.assert_close(cov - torch.diag(cov.diagonal()), torch.zeros(3, 3, dtype=torch.float64))
    full_tr, full_te = probes.pca_features(train, test, 6)  # all components: a rotation, distances kept
    torch.testing.assert_close(torch.cdist(full_te, full_tr), torch.cdist(test, train))
    with pytest.raises(ValueError, match=r"components must be in 1\.\.6"):
        probes.pca_features(train, test, 7)


def test_grey_share_is_one_for_colour_blind_filters_and_a_third_for_random_ones():
    gen = torch.Generator().manual_seed(5)
    pattern = torch.randn(8, 1, 3, 3, generator=gen)
    torch.testing.assert_close(probes.grey_share(pattern.expand(8, 3, 3, 3)), torch.ones(8))
    opponent = torch.cat([pattern, -pattern, torch.zeros_like(pattern)], dim=1)  # red minus green
    torch.testing.assert_close(probes.grey_share(opponent), torch.zeros(8))
    random = probes.grey_share(torch.randn(4000, 3, 3, 3, generator=gen))
    assert abs(random.mean().item() - 1 / 3) < 0.01
    with pytest.raises(ValueError, match="weight must be a convolution's"):
        probes.grey_share(torch.zeros(3, 3))


def test_untrained_copy_with_the_runs_seed_is_the_runs_initialization():
    """``cifar_run`` seeds torch, then builds the net: the same seed rebuilds its starting point."""
    torch.manual_seed(3)
    start = cifar_resnet(8, width=4)
    copy = probes.untrained_copy(_net(depth=8, width=4, seed=9), seed=3)
    for a, b in zip(start.state_dict().values(), copy.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_calibrate_batchnorm_sets_the_statistics_of_the_data():
    net, x = _net(), _images(40)
    calibrate_batchnorm(net, x, batch_size=8)  # equal batches: the average of means is the mean
    bn = net.stem[1]
    with torch.no_grad():
        z = net.stem[0](x)
    torch.testing.assert_close(bn.running_mean, z.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    # Per-batch unbiased variances averaged: close to, not exactly, the pooled variance.
    torch.testing.assert_close(bn.running_var, z.var(dim=(0, 2, 3)), rtol=0.05, atol=1e-4)
    assert not net.training and bn.momentum == 0.1, "eval mode, the momentum restored"


def test_untrained_copy_is_seeded_and_leaves_the_global_rng_alone():
    net = _net(depth=8, width=4)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = probes.untrained_copy(net, seed=5)
    torch.testing.assert_close(torch.rand(3), expected)
    b, c = probes.untrained_copy(net, seed=5), probes.untrained_copy(net, seed=6)
    torch.testing.assert_close(a.stem[0].weight, b.stem[0].weight)
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)
    assert (a.depth, a.width, a.residual) == (8, 4, True) and not a.training
    plain = probes.untrained_copy(plain_cifar_net(8, width=4), seed=0)
    assert not plain.residual
    calibrated = probes.untrained_copy(net, seed=5, calibrate_on=_images(16))
    assert not torch.equal(calibrated.stem[1].running_mean, a.stem[1].running_mean)


# --------------------------------------------------------------------------- the probe


def test_logistic_regression_reaches_the_minimum_autograd_agrees():
    """At the returned weights, the gradient of the penalized loss (by torch.autograd, in float64) is ~0."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(150, 5, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(150, generator=gen, dtype=torch.float64) > 0).long() + (x[:, 1] > 1).long()
    l2 = 0.05
    weight, bias = probes.logistic_regression(x, y, num_classes=3, l2=l2, max_iter=200)
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    loss = F.cross_entropy(F.linear(x, w, b), y) + 0.5 * l2 * w.pow(2).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert gw.abs().max() < 1e-5 and gb.abs().max() < 1e-5  # it starts near 0.3 at zero weights
    # The penalty shrinks the weights: a larger l2 gives a smaller norm.
    weight_big, _ = probes.logistic_regression(x, y, num_classes=3, l2=1.0, max_iter=200)
    assert weight_big.norm() < weight.norm()


def test_logistic_regression_refuses_bad_settings():  # that it restores threads: tests/test_threads.py
    x, y = torch.randn(20, 3), torch.arange(20) % 2
    with pytest.raises(ValueError, match="max_iter must be >= 1 and l2 >= 0"):
        probes.logistic_regression(x, y, num_classes=2, l2=-1.0)
    with pytest.raises(ValueError, match="threads must be a positive int, 'auto' or None"):
        probes.logistic_regression(x, y, num_classes=2, threads=0)


def test_a_probe_separates_separable_data_and_is_deterministic():
    gen = torch.Generator().manual_seed(3)
    centres = 3 * torch.randn(4, 10, generator=gen)
    y = torch.arange(200) % 4
    x = centres[y] + torch.randn(200, 10, generator=gen)
    first = probes.fit_linear_probe(x[:150], y[:150], x[150:], y[150:])
    assert first.train_accuracy == 1.0 and first.test_accuracy >= 0.95 and first.n_features == 10
    assert probes.fit_linear_probe(x[:150], y[:150], x[150:], y[150:]) == first
    # Features are standardized first: rescaling a feature changes nothing.
    scaled = x * torch.linspace(0.01, 100, 10)
    again = probes.fit_linear_probe(scaled[:150], y[:150], scaled[150:], y[150:])
    assert abs(again.test_accuracy - first.test_accuracy) <= 1 / 50


def test_a_probe_on_noise_is_near_chance_on_the_test_set():
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(400, 50, generator=gen), torch.randint(0, 4, (400,), generator=gen)
    result = probes.fit_linear_probe(x[:300], y[:300], x[300:], y[300:], l2=1e-3)
    assert result.train_accuracy > 0.5 and result.test_accuracy < 0.45


def test_a_probe_refuses_mismatched_inputs():
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    with pytest.raises(ValueError, match=r"features must be \(N, D\)"):
        probes.fit_linear_probe(x, y, torch.randn(5, 4), y[:5])
    with pytest.raises(ValueError, match="same number of rows"):
        probes.fit_linear_probe(x, y[:9], x, y)


# --------------------------------------------------------------------------- the study


def test_layer_probes_and_baselines_on_a_tiny_separable_set():
    data = _dataset()
    fx = FeatureExperiment(pool=2, probe_iterations=50, baseline_l2s=(1e-3, 1.0), pca_components=8, seeds=(0,))
    net = _net(depth=8, width=4)
    study = probes.layer_probes(net, data, fx, compare_pools=(1, 2), progress=False)
    assert study.layers == ["stem", "stage1.0", "stage2.0", "stage3.0"] and study.depths == [1, 3, 5, 7]
    assert study.first is study.results["stem"] and study.last is study.results["stage3.0"]
    assert set(study.by_pool) == {1, 2} and set(study.by_pool[1]) == {"stem", "stage3.0"}
    assert study.by_pool[2]["stem"] == study.first, "the experiment's grid is not probed twice"
    assert study.results["stem"].n_features == 4 * 2 * 2
    assert study.best_layer in study.layers and len(study.test_accuracies()) == 4
    assert study.stage_starts() == [(3, "stage 1"), (5, "stage 2"), (7, "stage 3")]
    base = probes.baseline_probes(data, fx, progress=False)
    assert set(base) == {"raw pixels", "PCA"}
    for b in base.values():
        assert set(b.by_l2) == {1e-3, 1.0}
        # by_l2 scores each penalty on the validation split (its test_accuracy field) and the best one is kept
        assert b.by_l2[b.l2].test_accuracy == max(r.test_accuracy for r in b.by_l2.values())
    assert base["raw pixels"].result.test_accuracy >= 0.95  # the toy classes are separable in pixels
    assert base["PCA"].result.n_features == 8


def test_baselines_choose_their_penalty_without_the_test_images():
    """Scrambling the test labels changes the reported test accuracy, never the chosen penalty."""
    data = _dataset()
    fx = FeatureExperiment(probe_iterations=30, baseline_l2s=(1e-4, 1e-2, 10.0), pca_components=8, seeds=(0,))
    honest = probes.baseline_probes(data, fx, progress=False)
    scrambled = dataclasses.replace(data, test_y=data.test_y.roll(1))
    cheat = probes.baseline_probes(scrambled, fx, progress=False)
    for name in honest:
        assert honest[name].l2 == cheat[name].l2
        assert honest[name].by_l2 == cheat[name].by_l2
        assert cheat[name].result.test_accuracy < honest[name].result.test_accuracy
    assert honest["raw pixels"].l2 != 10.0, "a huge penalty should not win on separable pixels"


def test_validation_split_is_seeded_disjoint_and_checked():
    fit_rows, val_rows = probes.validation_split(100, 0.1)
    assert len(val_rows) == 10 and len(fit_rows) == 90
    assert set(fit_rows.tolist()).isdisjoint(val_rows.tolist())
    assert torch.equal(val_rows, probes.validation_split(100, 0.1)[1])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        probes.validation_split(100, 1.0)
    with pytest.raises(ValueError, match="too few"):
        probes.validation_split(1, 0.5)


# --------------------------------------------------------------------------- the photo


def test_sample_photo_is_a_square_rgb_image_in_the_unit_range():
    photo = probes.sample_photo(16)
    assert photo.shape == (3, 16, 16) and photo.dtype == torch.float32
    assert photo.min() >= 0.0 and photo.max() <= 1.0 and photo.std() > 0.05
    standard = probes.standardize_photo(photo)
    torch.testing.assert_close(standard.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    assert abs(standard.std().item() - 1.0) < 1e-4
    with pytest.raises(ValueError, match="size must be a positive number of pixels"):
        probes.sample_photo(0)


def test_photo_feature_maps_have_the_stage_shapes():
    net = _net(depth=8, width=4)
    maps = probes.photo_feature_maps(net, probes.standardize_photo(probes.sample_photo(16)))
    assert list(maps) == ["stem", "stage1.0", "stage2.0", "stage3.0"]
    assert [tuple(m.shape) for m in maps.values()] == [(4, 16, 16), (4, 16, 16), (8, 8, 8), (16, 4, 4)]
    with pytest.raises(ValueError, match=r"one image \(3, H, W\)"):
        probes.photo_feature_maps(net, torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="unknown layer 'fc'"):
        probes.photo_feature_maps(net, torch.zeros(3, 16, 16), ["fc"])


# --------------------------------------------------------------------------- the figures


def test_the_figures_name_the_dataset_and_label_their_axes():
    net = _net(depth=8, width=4)
    fig = plot_first_layer_filters({"trained": net.stem[0].weight}, "toy data", "Filters")
    assert "toy data" in fig._suptitle.get_text() and fig._supxlabel.get_text()
    photo = probes.sample_photo(16)
    maps = probes.photo_feature_maps(net, probes.standardize_photo(photo))
    fig = plot_feature_maps(photo, maps, "toy data", "Maps", channels=3)
    assert "toy data" in fig._suptitle.get_text() and fig._supxlabel.get_text()
    assert most_active_channels(maps["stem"], 2) == maps["stem"].mean(dim=(1, 2)).argsort(descending=True)[:2].tolist()
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    plot_probe_accuracy(ax, [1, 3], [0.5, 0.8], "toy data", untrained=[[0.4, 0.3], [0.45, 0.35]],
                        baselines={"raw pixels": 0.3}, chance=0.1, stage_starts=[(3, "stage 1")])  # fmt: skip
    assert "toy data" in ax.get_title() and ax.get_xlabel() and "%" in ax.get_ylabel()
    with pytest.raises(ValueError, match="same length"):
        plot_probe_accuracy(ax, [1, 3], [0.5], "toy data")
    with pytest.raises(ValueError, match=r"must be \(out, 3, k, k\)"):
        plot_first_layer_filters({"bad": torch.zeros(4, 1, 3, 3)}, "toy data", "Filters")
    plt.close("all")


# --------------------------------------------------------------------------- chapter 1's words follow the verdicts

N_PHOTOS = 400
LAYERS = ["stem", "stage1.0", "stage2.0", "stage3.0"]
TITLES = {"stem": "stem, layer 1", "stage1.0": "stage 1", "stage2.0": "stage 2", "stage3.0": "stage 3"}


def _wrong_first(k: int) -> probes.ProbeResult:
    """A probe wrong on the first ``k`` of the photos: two such probes differ only on one side (McNemar)."""
    wrong = np.arange(N_PHOTOS) < k
    return probes.ProbeResult(1.0, 1 - k / N_PHOTOS, 64, wrong)


def _layer_probes(errors: list[int], grid: dict[int, tuple[int, int]] | None = None) -> probes.LayerProbes:
    results = {name: _wrong_first(k) for name, k in zip(LAYERS, errors, strict=True)}
    grid = grid or {1: (errors[0], errors[-1]), 2: (errors[0], errors[-1])}
    by_pool = {p: {"stem": _wrong_first(a), "stage3.0": _wrong_first(b)} for p, (a, b) in grid.items()}
    return probes.LayerProbes(LAYERS, [1, 3, 5, 7], 2, results, by_pool)


def _words(trained, start=(240, 240, 250, 260), pixels=250, pca=260, net=200, **grid) -> dict[str, str]:
    from resnet_lib.chapters.depth_and_features import BudgetProbes, budget_words

    b = BudgetProbes(
        _layer_probes(list(trained), grid.get("grid")), _layer_probes(list(start)), [],
        {"raw pixels": _wrong_first(pixels), "PCA": _wrong_first(pca)}, np.arange(N_PHOTOS) < net, TITLES, "stage1.0",
    )  # fmt: skip
    return budget_words(b)


def test_chapter_1_says_rises_only_when_the_photos_resolve_it():
    rising = _words((250, 180, 170, 160))
    assert "From the stem to the last block it rises by 22.5 points" in rising["ch1_depth_paragraph"]
    assert "deeper layers are easier to read linearly" in rising["ch1_depth_paragraph"]
    assert rising["ch1_depth_takeaway"].startswith("here the probe on the last block rises above")
    level = _words((250, 252, 251, 248))
    assert "moves by +0.5 points, which the photos do not resolve" in level["ch1_depth_paragraph"]
    assert "neither confirms nor refutes" in level["ch1_depth_paragraph"]
    assert "is not told apart from" in level["ch1_depth_takeaway"]
    falling = _words((200, 230, 240, 260))
    assert "falls by 15.0 points" in falling["ch1_depth_paragraph"]
    assert "harder, not easier" in falling["ch1_depth_paragraph"]
    for words in (level, falling):
        assert "rise from the stem to the last block is learned" not in words["ch1_untrained_paragraph"]
        assert "no measured rise" in words["ch1_untrained_paragraph"]
    assert "is learned" in rising["ch1_untrained_paragraph"]


def test_chapter_1_names_the_best_layer_only_as_picked_on_the_test_photos():
    words = _words((250, 240, 200, 230))
    assert "The highest of the 4 probes is stage 2's" in words["ch1_depth_paragraph"]
    assert "picked as the highest on these same photos" in words["ch1_depth_paragraph"]


def test_chapter_1_compares_the_probe_with_the_networks_classifier_either_way():
    below = _words((250, 240, 230, 220), net=180, grid={1: (250, 250), 2: (250, 220)})["ch1_classifier_paragraph"]
    assert "the probe stays 10.0 points below it" in below and "beats it" not in below
    above = _words((250, 240, 230, 180), net=220)["ch1_classifier_paragraph"]
    assert "the probe beats it by 10.0 points" in above
    even = _words((250, 240, 230, 200), net=201)["ch1_classifier_paragraph"]
    assert "is not told apart from it (+0.2 points, McNemar p = 1)" in even
    # the 1x1 probe (250 wrong) against the 2x2 one (220): the grid's spatial information adds, with its sign
    grid = _words((250, 240, 230, 220), net=180, grid={1: (250, 250), 2: (250, 220)})["ch1_fit_vs_grid"]
    assert "fitting alone stays 17.5 points below" in grid
    assert "the 2×2 grid's extra spatial information adds 7.5 points" in grid
    costs = _words((250, 240, 230, 220), grid={1: (250, 200), 2: (250, 220)})["ch1_fit_vs_grid"]
    assert "costs 5.0 points against the 1×1 probe" in costs


def test_chapter_1_grid_sentences_follow_each_grid():
    flips = _words((250, 240, 230, 220), grid={1: (260, 230), 4: (180, 228)})["ch1_grid_paragraph"]
    assert "with a 1×1 grid the stem reads 35.0% and the last block 42.5%, the last block ahead by 7.5" in flips
    assert "with a 4×4 grid the stem reads 55.0% and the last block 43.0%, the stem ahead by 12.0 points" in flips
    assert "depends on the grid" in flips and "part of how the stem compares is the pooling" in flips
    change = _words((250, 240, 230, 220), grid={1: (260, 230), 4: (180, 228)})["ch1_grid_change"]
    assert change.startswith("From the 1×1 to the 4×4 grid the stem's probe rises by 20.0 points")
    same = _words((250, 240, 230, 220), grid={1: (260, 230), 4: (258, 228)})["ch1_grid_paragraph"]
    assert "At every grid the last block reads better." in same and "is the pooling" not in same


def test_chapter_1_architecture_and_learned_features_sentences_can_say_either_way():
    words = _words((250, 240, 230, 220), start=(248, 250, 260, 290), pixels=250)
    assert "is not told apart from the raw pixels' 37.5% (+0.5 points" in words["ch1_untrained_paragraph"]
    assert "falls by 10.5 points" in words["ch1_untrained_paragraph"]
    assert words["ch1_trained_takeaway"].startswith(
        "Against the same architecture at its starting weights, training lifted"
    )
    ahead = _words((250, 240, 230, 220), start=(200, 250, 260, 290), pixels=250)["ch1_untrained_paragraph"]
    assert "12.5 points above the raw pixels'" in ahead and "architecture alone" in ahead
    learned = _words((250, 240, 230, 220), pixels=300, pca=310)
    assert "20.0 points above the better baseline, PCA" not in learned["ch1_learned_verdict"]
    assert "20.0 points above the better baseline, raw pixels" in learned["ch1_learned_verdict"]
    assert "beats" in learned["ch1_learned_takeaway"]
    behind = _words((250, 240, 230, 260), pixels=220, pca=230)
    assert "10.0 points below the better baseline, raw pixels" in behind["ch1_learned_verdict"]
    assert "falls behind" in behind["ch1_learned_takeaway"]


def test_budget_probes_refuse_photos_that_do_not_match():
    from resnet_lib.chapters.depth_and_features import BudgetProbes

    with pytest.raises(ValueError, match="net_wrong must mark the same 400 test photos") as err:
        BudgetProbes(_layer_probes([1, 2, 3, 4]), _layer_probes([1, 2, 3, 4]), [],
                     {"raw pixels": _wrong_first(1)}, np.zeros(10, bool), TITLES, "stage1.0")  # fmt: skip
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="stage1 must be a probed layer"):
        BudgetProbes(_layer_probes([1, 2, 3, 4]), _layer_probes([1, 2, 3, 4]), [],
                     {"raw pixels": _wrong_first(1)}, np.zeros(400, bool), TITLES, "stage9.0")  # fmt: skip


def test_reference_words_follow_the_photo_count():
    from resnet_lib.chapters.depth_and_features import reference_words

    assert reference_words(0.45, 846, 0.9125, "the paper").startswith("46.2 points below the paper (91.25%)")
    assert reference_words(0.90, 846, 0.9125, "the paper").startswith("within the photo count's 95% interval")
    assert reference_words(0.99, 20_000, 0.9125, "the paper").startswith("7.8 points above")
