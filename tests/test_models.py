"""The CIFAR nets of He et al. (2016), section 4.2: sizes, shapes, shortcuts, and plain vs residual."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lib.models import (
    BasicBlock,
    CifarNet,
    ZeroPadShortcut,
    blocks_per_stage,
    cifar_net,
    cifar_resnet,
    count_parameters,
    plain_cifar_net,
)

# He et al. (2016), Table 6 (0.27M ... 1.7M), counted exactly for option A.
PAPER_COUNTS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.mark.parametrize(("depth", "expected"), PAPER_COUNTS.items())
def test_option_a_parameter_counts_match_the_paper(depth, expected):
    assert count_parameters(cifar_resnet(depth)) == expected
    assert count_parameters(plain_cifar_net(depth)) == expected  # option A adds no parameters


def test_option_b_adds_projections_only_where_the_shape_changes():
    net = cifar_resnet(20, shortcut="B")
    projections = {name for name, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)}
    assert projections == {"stage2.0.shortcut.0", "stage3.0.shortcut.0"}
    for block in (net.stage1[0], net.stage1[1], net.stage2[1], net.stage3[2]):
        assert isinstance(block.shortcut, nn.Identity)
    # 1x1 conv 16->32 and 32->64, each followed by a BatchNorm (weight and bias).
    extra = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    assert count_parameters(net) == PAPER_COUNTS[20] + extra


def test_option_a_uses_identity_where_shapes_match_and_zero_padding_where_not():
    net = cifar_resnet(14, width=4)
    kinds = [type(b.shortcut) for b in net.blocks()]
    assert kinds == [nn.Identity, nn.Identity, ZeroPadShortcut, nn.Identity, ZeroPadShortcut, nn.Identity]
    assert all(b.shortcut is None for b in plain_cifar_net(14, width=4).blocks())


@pytest.mark.parametrize("image_size", [32, 16, 8])
@pytest.mark.parametrize("family", ["plain", "residual"])
def test_output_and_feature_map_shapes(family, image_size):
    width, batch = 4, 3
    net = cifar_net(family, 8, width=width).eval()
    x = torch.randn(batch, 3, image_size, image_size)
    assert net(x).shape == (batch, 10)
    maps = net.feature_maps(x)
    s = image_size
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "stem": (batch, width, s, s),
        "stage1.0": (batch, width, s, s),
        "stage2.0": (batch, 2 * width, s // 2, s // 2),
        "stage3.0": (batch, 4 * width, s // 4, s // 4),
    }
    assert net.depth == 8 and net.family == family
    assert net.name == ("ResNet-8" if family == "residual" else "plain-8")


def test_depth_counts_weighted_layers():
    # depth = 6n + 2: the stem conv, 2 convs per block, 3n blocks, and the fc layer.
    for depth in (8, 20, 56):
        net = cifar_resnet(depth, width=2)
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        assert len(convs) + len(linears) == depth
        assert len(net.blocks()) == 3 * blocks_per_stage(depth)


def test_option_a_shortcut_is_zero_padding_of_a_strided_subsample():
    shortcut = ZeroPadShortcut(in_channels=3, out_channels=8, stride=2)
    x = torch.randn(2, 3, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 8, 4, 4)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2])  # exactly the subsample, bit for bit
    assert torch.count_nonzero(y[:, 3:]) == 0  # exactly zero in the new channels
    assert count_parameters(shortcut) == 0
    # The same holds inside a network, on channels-last tensors too.
    block = cifar_resnet(8, width=4).stage2[0]
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    y = block.shortcut(x)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2]) and torch.count_nonzero(y[:, 4:]) == 0


def test_plain_and_residual_nets_have_the_same_parameters():
    plain, residual = plain_cifar_net(20, width=4), cifar_resnet(20, width=4)
    shapes = lambda net: {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes(plain) == shapes(residual)
    residual.load_state_dict(plain.state_dict())  # strict: nothing missing, nothing extra


@pytest.mark.parametrize(("in_ch", "out_ch", "stride"), [(4, 4, 1), (4, 8, 2)])
def test_a_residual_block_is_the_plain_block_plus_the_shortcut_before_the_final_relu(in_ch, out_ch, stride):
    torch.manual_seed(0)
    plain, residual = BasicBlock(in_ch, out_ch, stride, shortcut=None), BasicBlock(in_ch, out_ch, stride)
    warm = torch.randn(16, in_ch, 8, 8)
    with torch.no_grad():  # BatchNorm scales and shifts away from their initial 1 and 0
        for name, p in plain.named_parameters():
            if name.startswith("bn"):
                low = 0.5 if name.endswith("weight") else -0.5
                p.uniform_(low, low + 1.0)
    residual.load_state_dict(plain.state_dict())
    for block in (plain, residual):  # the same non-trivial BatchNorm statistics in both
        block.train()(warm)
        block.eval()
    x = torch.randn(5, in_ch, 8, 8)
    with torch.no_grad():
        f = plain.bn2(plain.conv2(plain.relu(plain.bn1(plain.conv1(x)))))  # F(x), before the final ReLU
        assert torch.equal(plain(x), torch.relu(f))
        assert torch.equal(residual(x), torch.relu(f + residual.shortcut(x)))  # bit for bit


def test_plain_and_residual_nets_differ_only_by_the_shortcut():
    # With the shortcuts switched off, a residual net computes exactly what the plain net does.
    torch.manual_seed(0)
    plain, residual = plain_cifar_net(14, width=4).eval(), cifar_resnet(14, width=4).eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        differs = not torch.allclose(plain(x), residual(x))
        for block in residual.blocks():
            block.shortcut = None
        assert torch.equal(plain(x), residual(x))
    assert differs


def test_initialization_is_deterministic_for_a_seed():
    torch.manual_seed(3)
    a = cifar_resnet(8, width=4).state_dict()
    torch.manual_seed(3)
    b = cifar_resnet(8, width=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_width_multiplier_and_classes():
    net = CifarNet(8, width=8, num_classes=7)
    assert net.stage3[0].conv1.out_channels == 32 and net.fc.out_features == 7
    assert count_parameters(cifar_resnet(20, width=8)) < count_parameters(cifar_resnet(20))


@pytest.mark.parametrize("depth", [21, 7, 2, 0, -4, 20.0, "20", True])
def test_a_depth_that_is_not_6n_plus_2_is_refused(depth):
    with pytest.raises(ValueError, match=r"depth must be 6n\+2") as err:
        cifar_resnet(depth)
    assert "\n" not in str(err.value)


def test_unknown_shortcut_option_family_and_width_are_refused():
    with pytest.raises(ValueError, match=r"unknown shortcut option 'C'; choose one of: A, B"):
        cifar_resnet(20, shortcut="C")
    with pytest.raises(ValueError, match=r"unknown shortcut option 'a'"):
        BasicBlock(4, 8, 2, shortcut="a")
    with pytest.raises(ValueError, match=r"unknown model family 'resnet'; choose 'plain' or 'residual'"):
        cifar_net("resnet", 20)
    with pytest.raises(ValueError, match=r"width must be a positive"):
        cifar_resnet(20, width=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"residual": False},
        {"residual": True, "shortcut": "B", "width": 4},
        {"residual": True, "block": "preact", "width": 4},
        {"residual": True, "block": "unnormalized", "branch_scale": 0.0, "width": 4},
        {"residual": True, "zero_init_residual": True, "width": 4, "num_classes": 7},
    ],
)
def test_a_fresh_copy_has_the_architecture_and_new_weights(kwargs):
    from resnet_lib.models import CifarNet

    torch.manual_seed(0)
    net = CifarNet(8, **kwargs)
    torch.manual_seed(1)
    copy = net.fresh_copy()
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert {k: v.shape for k, v in copy.state_dict().items()} == shapes
    assert copy.name == net.name and copy.config == net.config
    assert not torch.equal(copy.stem[0].weight, net.stem[0].weight)
    deeper = net.fresh_copy(depth=14)
    assert deeper.depth == 14 and len(deeper.blocks()) == 6 and deeper.config["block"] == net.config["block"]


def test_net_label_names_family_and_depth():
    from resnet_lib.models import net_label

    assert (net_label("plain", 56), net_label("residual", 110)) == ("plain-56", "ResNet-110")
    with pytest.raises(ValueError, match="unknown model family 'resnet'"):
        net_label("resnet", 20)
