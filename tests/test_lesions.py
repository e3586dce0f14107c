"""Chapter 6's lesions and paths, against cases computed by hand or by exact enumeration."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lib.measure import lesions
from resnet_lib.models import ZeroPadShortcut, cifar_net


def _trained_like(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and scales, so that eval mode is not the identity BN of a fresh net."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
            m.weight.data.copy_(0.5 + 0.5 * torch.rand(m.num_features, generator=gen))
            m.bias.data.copy_(0.2 * torch.randn(m.num_features, generator=gen))
    return net.eval()


@pytest.fixture
def resnet8():
    """A ResNet with 3 blocks (one per stage; the last two downsample with option A): 8 paths."""
    torch.manual_seed(0)
    return _trained_like(cifar_net("residual", 8, width=4)).double()


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 8, 8, generator=gen, dtype=torch.float64), torch.randint(10, (6,), generator=gen)


def test_deleted_residual_block_keeps_its_shortcut_and_plain_block_becomes_identity_or_zero_pad():
    res, plain = cifar_net("residual", 14, width=4), cifar_net("plain", 14, width=4)
    r_blocks, p_blocks = res.blocks(), plain.blocks()
    assert [lesions.is_downsampling(b) for b in r_blocks] == [False, False, True, False, True, False]
    for i, (rb, pb) in enumerate(zip(r_blocks, p_blocks, strict=True)):
        assert lesions.deleted_block(rb) is rb.shortcut
        kept = lesions.deleted_block(pb)
        assert isinstance(kept, ZeroPadShortcut if i in (2, 4) else nn.Identity)
    x = torch.rand(2, 4, 8, 8)  # non-negative, as every block's input (the output of a ReLU)
    down = lesions.deleted_block(p_blocks[2])
    expected = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 4, 4)], dim=1)
    assert torch.equal(down(x), expected)
    # Deleting the residual branch leaves ReLU(0 + s(x)) = s(x): the block with F set to zero.
    block = r_blocks[2]
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    block.eval()
    assert torch.allclose(block(x), lesions.deleted_block(block)(x))


def test_delete_and_swap_build_the_sequences_by_hand():
    net = cifar_net("residual", 14, width=4)
    b = net.blocks()
    seq = lesions.delete_blocks(net, [0, 4])
    assert seq[1:4] == b[1:4] and seq[5] is b[5]
    assert seq[0] is b[0].shortcut and seq[4] is b[4].shortcut
    assert lesions.swappable_pairs(net) == [0]  # blocks 2 and 4 downsample; 1-2, 2-3, 3-4, 4-5 cannot trade
    assert lesions.swap_adjacent(net, 0) == [b[1], b[0], *b[2:]]
    with pytest.raises(ValueError, match="cannot be swapped"):
        lesions.swap_adjacent(net, 2)
    with pytest.raises(ValueError, match=r"block indices 0\.\.5"):
        lesions.delete_blocks(net, [6])
    with pytest.raises(ValueError, match="distinct"):
        lesions.delete_blocks(net, [1, 1])
    with pytest.raises(ValueError, match="CifarNet"):
        lesions.delete_blocks(nn.Linear(2, 2), [0])


def test_evaluator_errors_equal_a_plain_forward_of_the_lesioned_net():
    torch.manual_seed(0)
    net = _trained_like(cifar_net("residual", 14, width=4))
    x, y = torch.randn(40, 3, 8, 8), torch.randint(10, (40,))
    ev = lesions.BlockSequenceEvaluator(net, x, y, batch_size=16)
    with torch.no_grad():
        assert ev.intact_error == pytest.approx((net(x).argmax(1) != y).float().mean().item())
        for seq in (lesions.delete_blocks(net, [3]), lesions.delete_blocks(net, [0, 5]), lesions.swap_adjacent(net, 0)):
            direct = (lesions.LesionedNet(net, seq)(x).argmax(1) != y).float().mean().item()
            assert ev.error(seq) == pytest.approx(direct)
    single = lesions.single_block_lesions(ev)
    assert single.shape == (6,) and single[3] == pytest.approx(ev.error(lesions.delete_blocks(net, [3])))
    drawn = lesions.random_deletions(ev, ks=(0, 2, 6), draws=3, seed=0)
    assert drawn[0].tolist() == [ev.intact_error] * 3
    assert np.allclose(drawn[6], ev.error(lesions.delete_blocks(net, range(6))))
    assert list(lesions.adjacent_swap_errors(ev)) == [0]
    with pytest.raises(ValueError, match="0 <= k <= 6"):
        lesions.random_deletions(ev, ks=(7,), draws=1)


def test_path_length_distribution_is_binomial():
    assert lesions.path_length_distribution(3).tolist() == [1 / 8, 3 / 8, 3 / 8, 1 / 8]
    p = lesions.path_length_distribution(27)
    assert p.sum() == pytest.approx(1) and (p * np.arange(28)).sum() == pytest.approx(13.5)
    assert p[13] == pytest.approx(math.comb(27, 13) / 2**27)
    with pytest.raises(ValueError, match="positive integer"):
        lesions.path_length_distribution(0)


def _all_paths(n: int) -> list[tuple[bool, ...]]:
    return list(itertools.product((False, True), repeat=n))


def test_the_eight_paths_of_a_three_block_resnet_sum_to_the_autograd_gradient(resnet8, images):
    x, y = images
    with torch.no_grad():
        h0 = resnet8.stem(x)
    h0.requires_grad_(True)
    loss = F.cross_entropy(
        resnet8.fc(torch.flatten(resnet8.pool(resnet8.stage3(resnet8.stage2(resnet8.stage1(h0)))), 1)),
        y,
        reduction="sum",
    )
    (full,) = torch.autograd.grad(loss, h0)
    total = torch.zeros_like(full)
    for path in _all_paths(3):
        total += lesions.path_gradients(resnet8, x, y, torch.tensor([path] * len(x)))
    assert torch.allclose(total, full, rtol=1e-9, atol=1e-12)


def test_the_shortest_path_by_hand(resnet8, images):
    """Length 0: every shortcut. With option A, the gradient at the input is the top gradient,
    masked by each block's ReLU, with the zero-padded channels dropped and upsampled back onto the stride-2 grid."""
    x, y = images
    resnet8.eval()
    with torch.no_grad():
        feats = resnet8.feature_maps(x)
    top = feats["stage3.0"].clone().requires_grad_(True)
    loss = F.cross_entropy(resnet8.fc(torch.flatten(resnet8.pool(top), 1)), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, top)
    blocks = resnet8.blocks()
    inputs = [feats["stem"], feats["stage1.0"], feats["stage2.0"]]
    for block, h in zip(reversed(blocks), reversed(inputs), strict=True):
        pre = lesions._branch(block, h) + block.shortcut(h)
        g = g * (pre > 0)
        c_in = block.conv1.in_channels
        back = torch.zeros_like(h)
        stride = block.conv1.stride[0]
        back[:, :, ::stride, ::stride] = g[:, :c_in]
        g = back
    got = lesions.path_gradients(resnet8, x, y, torch.zeros(len(x), 3, dtype=torch.bool))
    assert torch.allclose(got, g, rtol=1e-10)


def test_sampled_gradient_per_length_matches_exact_enumeration(resnet8, images):
    x, y = images
    # Exact: the mean over every image and every path of length k of that path's gradient norm.
    exact = np.zeros(4)
    for path in _all_paths(3):
        norms = lesions.path_gradients(resnet8, x, y, torch.tensor([path] * len(x))).flatten(1).norm(dim=1)
        exact[sum(path)] += norms.sum().item() / (math.comb(3, sum(path)) * len(x))
    est = lesions.gradient_by_path_length(resnet8, x, y, samples=4000, batch_size=2000, seed=0)
    assert est.norms.shape == (4, 4000)
    standard_error = est.std / np.sqrt(est.samples)
    assert np.all(np.abs(est.mean - exact) < 5 * standard_error + 1e-12), (est.mean, exact, standard_error)
    assert np.all(np.abs(est.mean - exact) < 0.05 * exact)


def test_sample_paths_draws_each_length_uniformly():
    gen = torch.Generator().manual_seed(0)
    paths = lesions.sample_paths(4, [2] * 6000, gen)
    assert paths.sum(1).tolist() == [2] * 6000
    counts = {}
    for row in paths.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert len(counts) == 6 and all(abs(c - 1000) < 150 for c in counts.values())  # 6 = C(4, 2) paths, 1000 each
    assert lesions.sample_paths(3, [0, 3]).tolist() == [[False] * 3, [True] * 3]
    with pytest.raises(ValueError, match=r"0\.\.3"):
        lesions.sample_paths(3, [4])


def test_effective_paths_by_hand():
    est = lesions.PathGradients(3, 1, np.array([8.0, 4.0, 2.0, 1.0]), np.zeros(4), np.zeros((4, 1)))
    eff = lesions.effective_paths(est, mass=0.4)
    # C(3, k) * g_k = 8, 12, 6, 1 of 27.
    assert eff.share.tolist() == pytest.approx([8 / 27, 12 / 27, 6 / 27, 1 / 27])
    assert eff.mean_length == pytest.approx((12 + 12 + 3) / 27)
    # Cumulative 8/27, 20/27, ...: the central 40% lies between 30% and 70%, all at length 1 (3 of 8 paths).
    assert eff.peak == 1 and (eff.low, eff.high) == (1, 1)
    assert eff.path_fraction == pytest.approx(3 / 8)
    wide = lesions.effective_paths(est, mass=0.9)  # 5% .. 95%: lengths 0..2
    assert (wide.low, wide.high) == (0, 2)
    assert est.decay_per_block() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="strictly between"):
        lesions.effective_paths(est, mass=1.0)


def test_path_gradients_rejects_plain_nets_and_bad_paths(resnet8, images):
    x, y = images
    with pytest.raises(ValueError, match="only in residual"):
        lesions.path_gradients(cifar_net("plain", 8, width=4), x, y, torch.zeros(6, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(N images, 3 blocks\)"):
        lesions.path_gradients(resnet8, x, y, torch.zeros(6, 2, dtype=torch.bool))


# The budget nets' readings (chapter 6, several seeds): each sentence can say either way.


def _study(intact: float, single: list[float], curve: dict[int, float], family: str = "residual"):
    deletions = {k: np.array([e - 0.01, e + 0.01]) for k, e in curve.items()}  # two draws around the mean
    return lesions.LesionStudy(family, intact, np.array(single), deletions, {}, (2, 4))


def _budget(residual, plain_single=0.85):
    from resnet_lib.chapters import ensembles_of_paths as ch

    plain = [lesions.LesionStudy("plain", 0.5, np.full(6, plain_single), {}, {}, (2, 4)) for _ in residual]
    return ch.budget_reading(residual, plain, list(range(len(residual))), 0.9, "ResNet-14", "plain-14")


# Per seed: intact 0.50; single deletions of 6 blocks (2 and 4 downsample); mean error at k = 1, 2, 3.
_CHEAP_DOWN = [0.51, 0.50, 0.60, 0.51, 0.58, 0.50]  # inner cost ~0.5 points, downsampling +8-10 points
_COSTLY_FIRST = [0.80, 0.70, 0.52, 0.75, 0.51, 0.72]  # inner deletions 20-30 points, downsampling cheap
_RISING = {1: 0.55, 2: 0.62, 3: 0.70}
_BUMPY = {1: 0.60, 2: 0.56, 3: 0.70}


def test_budget_reading_says_cheap_and_downsampling_or_the_opposite():
    good = _budget([_study(0.5, _CHEAP_DOWN, _RISING), _study(0.5, [e + 0.005 for e in _CHEAP_DOWN], _RISING)])
    assert good.cheap_in_every_seed and good.downsampling_stands_out
    assert "barely changes" in good.cheap_sentence() and "as in the paper" in good.cheap_sentence()
    assert "block 3 (a downsampling block" in good.costliest_sentence()
    assert "cost more than the median deletion in each seed" in good.costliest_sentence()
    assert good.lead_sentence("Veit et al.").startswith("Both readings")
    assert good.plain_verdict().direction == "ahead" and "is the opposite" in good.plain_sentence()

    bad = _budget([_study(0.5, _COSTLY_FIRST, _RISING), _study(0.5, _COSTLY_FIRST, _RISING)], plain_single=0.52)
    assert not bad.cheap_in_every_seed and not bad.downsampling_stands_out
    assert "not cheap in every seed" in bad.cheap_sentence() and "unlike the paper" in bad.cheap_sentence()
    assert "block 1 (not a downsampling block" in bad.costliest_sentence()
    assert "cost less than the median deletion" in bad.costliest_sentence()
    assert bad.lead_sentence("Veit et al.").startswith("Neither reading")
    assert "is not the opposite" in bad.plain_sentence()

    cheap_first = [0.60, 0.50, 0.52, 0.51, 0.51, 0.50]  # cheap median, but block 1 costs 10 points
    one = _budget([_study(0.5, cheap_first, _RISING), _study(0.5, cheap_first, _RISING)])
    assert one.cheap_in_every_seed and one.downsampling_verdict().direction == "behind"
    assert not one.downsampling_stands_out and "block 1 (not a downsampling block" in one.costliest_sentence()
    assert one.lead_sentence("Veit et al.").startswith("One of the two readings")
    near = _budget([_study(0.5, _CHEAP_DOWN, _RISING)] * 2, plain_single=0.52)  # plain costlier, yet near
    assert near.plain_verdict().direction == "ahead" and "but not more than 15% of the way" in near.plain_sentence()
    mixed = _budget([_study(0.5, _CHEAP_DOWN, _RISING), _study(0.5, _COSTLY_FIRST, _RISING)])
    assert "in 1 of the 2 seeds" in mixed.cheap_sentence()
    assert mixed.downsampling_verdict().direction == "unresolved" and "seeds disagree" in mixed.costliest_sentence()


def test_budget_k_reading_says_step_by_step_only_when_every_step_rises_in_every_seed():
    rising = _budget(
        [_study(0.5, _CHEAP_DOWN, _RISING), _study(0.5, _CHEAP_DOWN, {k: e + 0.01 for k, e in _RISING.items()})]
    )
    assert rising.monotone_seeds == 2 and "raises the error step by step, in every seed" in rising.k_sentence()
    bumpy = _budget([_study(0.5, _CHEAP_DOWN, _BUMPY), _study(0.5, _CHEAP_DOWN, _BUMPY)])
    assert bumpy.monotone_seeds == 0 and [v.direction for v in bumpy.step_verdicts()] == ["behind", "ahead", "behind"]
    assert "overall" in bumpy.k_sentence() and "but not step by step" in bumpy.k_sentence()
    assert "1 fall in every seed" in bumpy.k_sentence()
    one_bump = _budget([_study(0.5, _CHEAP_DOWN, _RISING), _study(0.5, _CHEAP_DOWN, _BUMPY)])
    assert one_bump.monotone_seeds == 1 and "not step by step" in one_bump.k_sentence()
    assert "1 differ between seeds" in one_bump.k_sentence()
    flat = _budget(
        [_study(0.5, _CHEAP_DOWN, {1: 0.51, 2: 0.49, 3: 0.52}), _study(0.5, _CHEAP_DOWN, {1: 0.49, 2: 0.5, 3: 0.48})]
    )
    assert "does not raise the error in every seed" in flat.k_sentence()


def test_budget_reading_rejects_unmatched_studies():
    from resnet_lib.chapters import ensembles_of_paths as ch

    res = [_study(0.5, _CHEAP_DOWN, _RISING)]
    with pytest.raises(ValueError, match="one residual and one plain study per seed") as err:
        ch.budget_reading(res, [], [0], 0.9, "ResNet-14", "plain-14")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="same numbers of blocks"):
        ch.budget_reading([*res, _study(0.5, _CHEAP_DOWN, {1: 0.5})], res * 2, [0, 1], 0.9, "ResNet-14", "plain-14")
