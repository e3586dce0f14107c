"""The residual family after 2016: pre-activation, zero-start and BatchNorm-free CIFAR nets, and the
ImageNet ResNets, which must be torchvision's (same parameter counts, same logits from the same weights)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from resnet_lib.models import CifarNet, PreActBlock, count_parameters, imagenet_resnet, load_torchvision_state

# ----------------------------------------------------------------------------- ImageNet ResNets = torchvision's

TORCHVISION = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}
# torchvision's documented parameter counts (its model tables): 11.7M, 21.8M, 25.6M.
PARAMETERS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032}


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_our_imagenet_resnets_are_torchvisions(depth):
    torch.manual_seed(depth)
    theirs = TORCHVISION[depth](weights=None).eval()
    ours = load_torchvision_state(imagenet_resnet(depth), theirs.state_dict()).eval()  # strict: every key, every shape
    assert count_parameters(ours) == count_parameters(theirs) == PARAMETERS[depth]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_a_bottleneck_net_does_not_take_a_basic_nets_weights():
    with pytest.raises(RuntimeError, match=r"size mismatch|Missing key|Unexpected key"):
        load_torchvision_state(imagenet_resnet(50), torchvision.models.resnet34(weights=None).state_dict())


def test_the_logit_check_sees_a_one_weight_difference():
    theirs = torchvision.models.resnet18(weights=None).eval()
    ours = load_torchvision_state(imagenet_resnet(18), theirs.state_dict()).eval()
    with torch.no_grad():
        ours.layer3[1].conv2.weight[0, 0, 1, 1] += 1.0
        x = torch.randn(2, 3, 64, 64)
        assert not torch.allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- pre-activation


def test_a_preact_block_adds_exactly_its_branch_to_its_input():
    """He et al. (2016b): with nothing after the sum, x_{l+1} - x_l is the branch F(x_l) itself."""
    torch.manual_seed(0)
    block = PreActBlock(8, 8).eval()
    branch = copy.deepcopy(block)
    branch.shortcut = None  # the plain twin with the same weights computes F alone
    x = torch.randn(4, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x) - x, branch(x))


def test_a_basic_block_does_not_add_its_branch_alone():
    """The paper's block applies a ReLU after the sum, so its output minus its input is not F(x)."""
    torch.manual_seed(0)
    net = CifarNet(8, width=8)
    block = net.stage1[0].eval()
    x = torch.randn(4, 8, 6, 6)
    with torch.no_grad():
        f = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        assert not torch.allclose(block(x) - x, f)


def test_a_preact_net_normalizes_before_its_pooling_and_has_a_bare_stem():
    net = CifarNet(20, block="preact")
    assert [type(m).__name__ for m in net.stem] == ["Conv2d"]
    assert [type(m).__name__ for m in net.head] == ["BatchNorm2d", "ReLU"]
    assert net.name == "pre-activation ResNet-20" and net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


# ----------------------------------------------------------------------------- zero-start and BatchNorm-free


@pytest.mark.parametrize("kwargs", [{"zero_init_residual": True}, {"block": "unnormalized", "branch_scale": 0.0}])
def test_a_zero_start_net_begins_with_identity_blocks(kwargs):
    """Goyal et al. (2017)'s zero gamma, and SkipInit's zero alpha: every stride-1 block starts as x -> x."""
    torch.manual_seed(0)
    net = CifarNet(20, **kwargs)
    maps = net.feature_maps(torch.randn(4, 3, 16, 16))
    assert torch.equal(maps["stage1.2"], maps["stem"])
    start = {k: v for k, v in kwargs.items() if k == "block"}  # the same net at its default start: not identities
    torch.manual_seed(0)
    maps = CifarNet(20, **start).feature_maps(torch.randn(4, 3, 16, 16))
    assert not torch.allclose(maps["stage1.2"], maps["stem"])


def test_skipinit_learns_its_branch_scale_and_the_default_keeps_it_at_one():
    skip = CifarNet(8, block="unnormalized", branch_scale=0.0)
    skip(torch.randn(4, 3, 16, 16)).square().mean().backward()
    alphas = [b.alpha for b in skip.blocks()]
    assert all(a.requires_grad for a in alphas) and any(a.grad.abs() > 0 for a in alphas)
    default = CifarNet(8, block="unnormalized")
    assert all(not b.alpha.requires_grad and b.alpha.item() == 1.0 for b in default.blocks())
    assert count_parameters(default) == count_parameters(skip) - len(alphas)


def _mean_squares(net: CifarNet, x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return {key: value.square().mean().item() for key, value in net.feature_maps(x).items()}


def test_without_batchnorm_the_forward_signal_grows_with_depth_and_with_it_about_linearly():
    """x_{l+1} = x_l + F(x_l) with var F ~ var x doubles the signal per block at He initialization;
    with a BatchNorm ending each branch, each block adds about one unit of variance instead.
    Measured at init (seeds 0-1, 64 images of 16x16): after stage 1 of ResNet-56 (9 blocks) the
    mean square is 86-112x the stem's without BatchNorm, and 7.7-7.8 with it (stem 0.5)."""
    x = torch.randn(64, 3, 16, 16)
    for seed in (0, 1):
        torch.manual_seed(seed)
        free = _mean_squares(CifarNet(56, block="unnormalized"), x)
        torch.manual_seed(seed)
        normed = _mean_squares(CifarNet(56), x)
        assert free["stage1.8"] > 32 * free["stem"], free  # 2^9 in theory; zero padding on 16x16 maps loses some
        assert 0.5 * 9 < normed["stage1.8"] < 2 * 9 + 1, normed  # about 1 per block


def test_variant_options_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="unknown block 'bottle'; choose one of: basic, preact, unnormalized"):
        CifarNet(20, block="bottle")
    with pytest.raises(ValueError, match="zero_init_residual needs residual basic blocks"):
        CifarNet(20, block="preact", zero_init_residual=True)
    with pytest.raises(ValueError, match="branch_scale is for residual nets of unnormalized blocks"):
        CifarNet(20, branch_scale=0.0)
    with pytest.raises(ValueError, match="ImageNet ResNet depth must be one of 18, 34, 50, got 20"):
        imagenet_resnet(20)
