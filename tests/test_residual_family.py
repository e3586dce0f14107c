"""Chapter 8's measurements, checked against direct computation, autograd-free enumeration, and torchvision's tables."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from resnet_lib.chapters.residual_family import (
    KINDS,
    compare_per_seed,
    family_net,
    family_table,
    kind_label,
    signal_vs_depth,
    train_family,
)
from resnet_lib.measure.cost import multiply_adds
from resnet_lib.measure.signal import block_mean_squares, identity_defects, residual_branch, signal_growth
from resnet_lib.models import imagenet_resnet
from resnet_lib.profiles import PROFILES, DataSpec
from resnet_lib.recipe import Recipe


def test_block_mean_squares_are_the_feature_maps_mean_squares():
    torch.manual_seed(0)
    net = family_net("original", 14, width=4).train()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        direct = [float((v.double() ** 2).sum() / v.numel()) for v in net.feature_maps(x).values()]
    assert block_mean_squares(net, x).tolist() == pytest.approx(direct, rel=1e-12)
    assert len(direct) == 1 + 6  # the stem and 2 blocks per stage


@pytest.mark.parametrize("kind", ["skipinit", "zero_gamma"])
def test_zero_start_blocks_are_the_identity_at_init(kind):
    """Inside stage 1 (no downsampling) every zero-start block returns its input exactly."""
    torch.manual_seed(1)
    net = family_net(kind, 20, width=4).train()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        stem = net.stem(x)
        assert torch.equal(net.stage1(stem), stem)
    ms = block_mean_squares(net, x)
    assert ms[1:4].tolist() == [ms[0]] * 3
    # the two downsampling blocks are option A alone: keep every other pixel, append as many zero channels
    assert ms[-1] == pytest.approx(float((stem[:, :, ::4, ::4].double() ** 2).mean()) / 4, rel=1e-9)


def test_a_preact_net_adds_exactly_its_branches_and_the_2016_net_does_not():
    torch.manual_seed(2)
    x = torch.randn(4, 3, 8, 8)
    pre = identity_defects(family_net("preact", 14, width=4).eval(), x)
    orig_net = family_net("original", 14, width=4).eval()
    orig = identity_defects(orig_net, x)
    assert pre.max() < 1e-6
    # by hand for the first 2016 block: its output is ReLU(s + F), so the defect is ||ReLU(z) - z|| / ||ReLU(z)||
    with torch.no_grad():
        h = orig_net.stem(x)
        block = orig_net.stage1[0]
        z = h + residual_branch(block, h)
        by_hand = float((torch.relu(z) - z).norm() / torch.relu(z).norm())
    assert orig[0] == pytest.approx(by_hand, rel=1e-5) and orig.min() > 0.01


def test_the_residual_branch_is_the_block_without_its_shortcut():
    torch.manual_seed(3)
    for kind in ("preact", "nobn", "skipinit"):
        block = family_net(kind, 8, width=4).stage1[0].eval()
        x = torch.randn(2, 4, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(block(x) - block.shortcut(x), residual_branch(block, x))
    with pytest.raises(ValueError, match="no residual branch known for a Linear"):
        residual_branch(nn.Linear(2, 2), torch.zeros(1, 2))


def test_the_resnet_without_bn_grows_with_depth_and_the_zero_start_one_does_not():
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    growth = signal_vs_depth(("nobn", "skipinit"), (8, 32), (0,), x, width=4)
    assert growth["nobn"][0, 1] > 10 * growth["nobn"][0, 0]
    assert (growth["skipinit"] < 1).all()  # identity blocks; option A's zero channels halve the mean square twice
    torch.manual_seed(0)
    assert signal_growth(family_net("nobn", 8, width=4).train(), x) == pytest.approx(growth["nobn"][0, 0], rel=1e-9)


def test_multiply_adds_of_one_convolution_and_one_linear_layer_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(5 * 4 * 4, 7))
    assert multiply_adds(net, 8) == 5 * 4 * 4 * 3 * 9 + 80 * 7
    with pytest.raises(ValueError, match="image_size must be a whole number"):
        multiply_adds(net, 0)


@pytest.mark.parametrize(("depth", "gflops"), [(18, 1.81), (34, 3.66), (50, 4.09)])
def test_multiply_adds_of_the_imagenet_resnets_are_torchvisions_published_gflops(depth, gflops):
    # torchvision's model tables list GFLOPS (multiply-adds) 1.81, 3.66 and 4.09 for ResNet-18, -34 and -50 at 224x224
    assert round(multiply_adds(imagenet_resnet(depth), 224) / 1e9, 2) == gflops


def test_the_family_table_is_measured_on_the_built_nets():
    rows = family_table()
    assert [r["net"] for r in rows] == ["CIFAR ResNet-20", "ResNet-18", "ResNet-34", "ResNet-50"]
    assert rows[0]["stages"] == [(3, 16), (3, 32), (3, 64)] and rows[3]["stages"][-1] == (3, 2048)
    assert rows[1]["parameters"] == 11_689_512 and rows[3]["parameters"] == 25_557_032


def test_resnet50_is_v1_5_like_torchvisions_and_resnet18_uses_option_b_shortcuts():
    # chapter 8 says so in its prose: torchvision's bottleneck downsamples in its 3x3 convolution ("v1.5"), not in the
    # first 1x1 as He et al. did, and torchvision's ResNet-18/34 use option B (a 1x1 projection), not the paper's A
    import torchvision

    ours, theirs = imagenet_resnet(50), torchvision.models.resnet50(weights=None)
    for net in (ours, theirs):
        first = net.layer2[0]
        assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    shortcut = imagenet_resnet(18).layer2[0].shortcut
    assert any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in shortcut.modules())
    assert isinstance(torchvision.models.resnet18(weights=None).layer2[0].downsample[0], nn.Conv2d)


def test_every_profile_names_known_kinds_and_a_clear_error_for_others():
    for profile in PROFILES.values():
        spec = profile.residual_family
        assert set(spec.kinds) <= set(KINDS) and spec.depth >= 8
    with pytest.raises(ValueError, match="unknown kind of net 'vgg'; choose one of"):
        kind_label("vgg")


def test_compare_per_seed_says_ahead_behind_or_not_resolved():
    assert compare_per_seed(np.array([0.5, 0.6]), np.array([0.7, 0.7]), "B") == "ahead of B in every seed"
    assert compare_per_seed([0.8, 0.9], [0.7, 0.7], "B") == "behind B in every seed"
    assert compare_per_seed([0.5, 0.9], [0.7, 0.7], "B") == "not resolved from B at this budget (the 2 seeds disagree)"
    assert compare_per_seed([0.5], [0.7], "B") == "not resolved from B at this budget (one seed)"
    assert compare_per_seed([0.7, 0.6], [0.7, 0.7], "B").startswith("not resolved")  # a tie is not "ahead"
    with pytest.raises(ValueError, match="one value per seed on each side"):
        compare_per_seed([0.5, 0.6], [0.7], "B")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"deep_depth": 100}, "deep_depth must be 6n\\+2"),
        ({"depth": 2}, "depth must be 6n\\+2"),
        ({"deep_kinds": ("vgg",)}, "unknown kinds \\['vgg'\\]"),
    ],
)
def test_a_family_experiment_refuses_a_depth_or_kind_it_cannot_build(changes, message):
    spec = PROFILES["ci"].residual_family
    with pytest.raises(ValueError, match=message):
        replace(spec, **changes)


def test_train_family_returns_every_kind_at_both_depths_and_trains_a_shared_net_once():
    spec = replace(
        PROFILES["ci"].residual_family,
        data=DataSpec(dataset="standin", n_train=64, n_test=32, image_size=8),
        recipe=Recipe(epochs=1, batch_size=32, lr=0.05, warmup_steps=1),
        depth=8,
        deep_depth=14,
        kinds=("original", "skipinit"),
        deep_kinds=("original", "preact"),
        seeds=(0, 1),
    )
    runs = train_family(spec, progress=False, workers=1)
    assert {d: list(by_kind) for d, by_kind in runs.items()} == {
        8: ["original", "skipinit"],
        14: ["original", "preact"],
    }
    for depth, by_kind in runs.items():
        for kind, seed_runs in by_kind.items():
            assert [(r.kind, r.depth, r.seed) for r in seed_runs] == [(kind, depth, 0), (kind, depth, 1)]
            assert [len(r.history.step_losses) for r in seed_runs] == [2, 2]  # 64 images in batches of 32
    # everything is in the cache now: a second call trains nothing and returns the same runs
    again = train_family(spec, progress=False, workers=1)
    assert all(r.stored.from_cache for by_kind in again.values() for seed_runs in by_kind.values() for r in seed_runs)
    assert again[14]["preact"][1].final_train_error == runs[14]["preact"][1].final_train_error
    # the depth is part of the run: the 8- and 14-layer 2016 nets are two runs with two different nets
    assert runs[8]["original"][0].stored.json_path != runs[14]["original"][0].stored.json_path
    assert [len(runs[d]["original"][0].model().stage1) for d in (8, 14)] == [1, 2]
