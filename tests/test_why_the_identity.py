"""Chapter 9: He et al. (2016b)'s shortcut variants, and the gradient through k blocks against its derivation."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from resnet_lib.chapters import why_the_identity as wi
from resnet_lib.models.shortcuts import SHORTCUT_KINDS, ShortcutBlock, ShortcutStack
from resnet_lib.plots.why_the_identity import plot_gradient_ratios

BLOCKS = 10


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _stack(kind: str, zero_branch: bool = True, seed: int = 0, width: int = 4, **kwargs) -> ShortcutStack:
    torch.manual_seed(seed)
    return ShortcutStack(BLOCKS, kind=kind, width=width, zero_branch=zero_branch, **kwargs)


@pytest.mark.parametrize("scale", [0.5, 0.9, 1.1])
def test_constant_scaling_with_the_branch_zeroed_is_lambda_to_the_k(images, scale):
    ratios = wi.gradient_ratios(_stack("scaling", scale=scale), images)
    np.testing.assert_allclose(ratios, scale ** np.arange(BLOCKS + 1), rtol=1e-6, atol=0)
    np.testing.assert_allclose(wi.derived_ratios(_stack("scaling", scale=scale), images)["central"], ratios, rtol=1e-6)


def test_the_identity_with_the_branch_zeroed_passes_the_gradient_unchanged(images):
    np.testing.assert_allclose(wi.gradient_ratios(_stack("identity"), images), 1.0, rtol=1e-7, atol=0)


def test_a_zeroed_branch_leaves_only_the_shortcut(images):
    block = ShortcutBlock(3, "scaling", scale=0.5)
    torch.nn.init.zeros_(block.branch.conv2.weight)
    torch.testing.assert_close(block.train()(images), 0.5 * images)


def test_with_the_branch_on_the_scaled_shortcut_is_no_longer_lambda_to_the_k(images):
    ratios = wi.gradient_ratios(_stack("scaling", zero_branch=False), images)
    assert ratios[-1] > 100 * 0.5**BLOCKS  # the branch terms add to the product


@pytest.mark.parametrize(
    ("kind", "bias", "decades"),
    [("exclusive_gating", -6.0, 0.01), ("shortcut_gating", 0.0, 0.15), ("shortcut_gating", -6.0, 0.01)],
)
def test_gating_follows_the_product_of_one_minus_g(images, kind, bias, decades):
    """At the chapter's width (16); the gate's own derivative, which the derivation leaves out, grows with ``x``."""
    for seed in range(3):
        net = _stack(kind, gate_bias=bias, seed=seed, width=16)
        gap = wi.log_gap(wi.gradient_ratios(net, images), wi.derived_ratios(net, images)["central"])
        assert gap.max() < decades, (seed, gap)


@pytest.mark.parametrize("kind", ["exclusive_gating", "shortcut_gating"])
def test_a_gated_block_computes_he_et_al_s_formula(images, kind):
    torch.manual_seed(0)
    block = ShortcutBlock(3, kind, gate_bias=-1.0).train()
    with torch.no_grad():
        g, f = block.gate(images), block.branch(images)
        expected = (1 - g) * images + (g * f if kind == "exclusive_gating" else f)
        torch.testing.assert_close(block(images), expected)


def test_exclusive_gating_at_minus_6_keeps_its_branches_out_at_initialization(images):
    """Its gates multiply the branches by about sigmoid(-6): with them on, the ratio stays near the shortcut's."""
    net = _stack("exclusive_gating", zero_branch=False, gate_bias=-6.0, width=16)
    gap = wi.log_gap(wi.gradient_ratios(net, images), wi.derived_ratios(net, images)["central"])
    assert gap.max() < 0.05, gap


def test_gates_start_at_their_bias(images):
    net = _stack("exclusive_gating", gate_bias=-6.0)
    with torch.no_grad():
        g = net.blocks[0].gate(net.stem(images))
    assert float(g.mean()) < 0.05  # sigmoid(-6) = 0.0025, moved a little by W_g x


def test_the_1x1_convolution_follows_the_product_of_its_matrices(images):
    for seed in range(3):
        net = _stack("conv1x1", seed=seed)
        derived = wi.derived_ratios(net, images)
        gap = wi.log_gap(wi.gradient_ratios(net, images), derived["central"])
        assert gap.max() < 0.1, (seed, gap)  # 4 x 4 x 8 x 8 upstream entries: a finite sample of directions


def test_dropout_keeps_keep_to_the_k_of_the_squared_ratio_on_average(images):
    keep, draws = 0.5, 200
    net = _stack("dropout", keep=keep)
    torch.manual_seed(1)
    squares = np.array([wi.gradient_ratios(net, images) ** 2 for _ in range(draws)])
    k = np.arange(4)  # 256 entries: about 32 survive 3 masks
    np.testing.assert_allclose(squares.mean(0)[k], keep**k, rtol=0.1)


def test_dropout_agreement_judges_its_own_noise(images):
    m = wi.measure_variant("dropout", BLOCKS, (0, 1, 2, 3), images, width=4)
    entries = images.shape[0] * 4 * images.shape[2] * images.shape[3]
    k, error, tolerance = wi.dropout_agreement(m, keep=0.5, entries=entries)
    assert list(k) == [0, 1, 2, 3, 4, 5]  # 1024 entries: at least 30 expected to survive 5 masks, not 6
    assert (error < tolerance).all(), (error, tolerance)


def test_dropout_in_evaluation_mode_scales_by_keep(images):
    block = ShortcutBlock(3, "dropout", keep=0.25).eval()
    torch.nn.init.zeros_(block.branch.conv2.weight)
    torch.testing.assert_close(block(images), 0.25 * images)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "highway"}, "unknown shortcut kind"),
        ({"kind": "scaling", "scale": 0.0}, "scale > 0"),
        ({"kind": "scaling", "scale": -0.5}, "scale > 0"),
        ({"kind": "dropout", "keep": 0.0}, "keep probability in (0, 1]"),
        ({"kind": "dropout", "keep": 1.5}, "keep probability in (0, 1]"),
    ],
)
def test_bad_shortcuts_get_a_one_line_value_error(kwargs, message):
    with pytest.raises(ValueError, match=r"^[^\n]+$") as info:
        ShortcutStack(2, **kwargs)
    assert message in str(info.value)
    with pytest.raises(ValueError):
        ShortcutBlock(4, **kwargs)


def test_every_kind_builds_and_runs(images):
    for kind in SHORTCUT_KINDS:
        assert _stack(kind, zero_branch=False)(images).shape == (4, 10)


def test_unknown_variant_and_profile_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        wi.variant_net("highway", 2)
    with pytest.raises(ValueError, match="no chapter 9 sizes"):
        wi.sizes_for("laptop")


def test_closer_to_one_reads_distance_in_decades_either_way():
    assert wi.closer_to_one(np.array([2.0, 3.0]), np.array([1e-3, 1e3])).direction == "ahead"
    assert wi.closer_to_one(np.array([1e3, 1e-3]), np.array([2.0, 0.5])).direction == "behind"
    assert wi.closer_to_one(np.array([2.0, 1e3]), np.array([1e3, 2.0])).direction == "unresolved"


def test_figure_draws_what_it_is_given_with_labels():
    k = np.arange(6)
    zero = {"identity": np.ones(6), "dropout": np.r_[0.5 ** (k[:3] / 2), np.zeros(3)]}
    on = {"identity": 1.1**k, "dropout": 1.2**k}
    fig = plot_gradient_ratios(k, zero, on, zero, {"identity": "id", "dropout": "drop"}, "stand-in")
    left, right = fig.axes[:2]
    assert "stand-in" in fig.get_suptitle()
    assert all(ax.get_title() and ax.get_xlabel() for ax in (left, right)) and left.get_ylabel()
    solid = [line for line in right.lines if line.get_linestyle() == "-" and line.get_label() == "id"]
    assert list(solid[0].get_ydata()) == list(1.1**k)
    dropped = next(line for line in left.lines if line.get_label() == "drop").get_ydata()
    assert np.isnan(dropped[3:]).all()  # zeros are hidden from the log axis, not drawn at 0
    plt.close(fig)
