"""The identity-mapping construction: a deeper net built from a shallower one computes the same function."""

import pytest
import torch
from torch import nn

from resnet_lib.models import cifar_net, count_parameters
from resnet_lib.models.identity import deepen_with_identity, dirac_conv_, identity_block, pass_through_bn_


def _trained_looking(family: str, depth: int, width: int = 4, seed: int = 0) -> nn.Module:
    """A net whose BatchNorms have non-trivial statistics and affine parameters, as after training."""
    torch.manual_seed(seed)
    net = cifar_net(family, depth, width=width)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return net.eval()


@pytest.mark.parametrize("family", ["plain", "residual"])
@pytest.mark.parametrize("shallow, deep", [(8, 8), (8, 14), (14, 32), (20, 56)])
def test_deepened_net_computes_the_same_function(family, shallow, deep):
    net = _trained_looking(family, shallow)
    deeper = deepen_with_identity(net, deep)
    assert deeper.depth == deep and deeper.residual == net.residual
    assert not deeper.training
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = net(x), deeper(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()
    # ... block by block: the trained blocks come first, then identity blocks.
    assert len(deeper.blocks()) == 3 * (deep - 2) // 6


def test_deepened_net_has_the_deeper_nets_parameter_count_and_leaves_the_original_alone():
    net = _trained_looking("plain", 20)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    deeper = deepen_with_identity(net, 56)
    assert count_parameters(deeper) == count_parameters(cifar_net("plain", 56, width=4))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    # The copy shares no storage with the original.
    with torch.no_grad():
        deeper.fc.weight.add_(1.0)
    assert torch.equal(net.fc.weight, before["fc.weight"])


@pytest.mark.parametrize("residual", [False, True])
def test_identity_block_passes_non_negative_inputs_through(residual):
    block = identity_block(6, residual=residual)
    x = torch.rand(2, 6, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), x, atol=1e-6)
        # The ReLU is why inputs must be non-negative: negative values are cut to 0.
        assert torch.allclose(block(-x), torch.zeros_like(x))


def test_pass_through_bn_and_dirac_conv_helpers():
    bn = pass_through_bn_(nn.BatchNorm2d(3)).eval()
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(bn(x), x, atol=1e-6)
    conv = dirac_conv_(nn.Conv2d(3, 3, 3, padding=1, bias=True))
    assert torch.allclose(conv(x), x, atol=1e-6)
    with pytest.raises(ValueError, match="stride 1"):
        dirac_conv_(nn.Conv2d(3, 3, 3, stride=2, padding=1))
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        dirac_conv_(nn.Conv2d(3, 4, 3, padding=1))


def test_bad_inputs_raise_one_line_errors():
    net = cifar_net("plain", 20, width=4)
    with pytest.raises(ValueError, match="at least the net's depth 20"):
        deepen_with_identity(net, 14)
    with pytest.raises(ValueError, match="6n\\+2"):
        deepen_with_identity(net, 30)
    with pytest.raises(ValueError, match="CifarNet"):
        deepen_with_identity(nn.Linear(2, 2), 20)
    with pytest.raises(ValueError, match="positive int"):
        identity_block(0)


def test_every_depth_pair_up_to_n_5():
    """Any 6n+2 -> 6m+2 with m >= n (here n, m <= 5), both families, random BatchNorm statistics."""
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for family in ("plain", "residual"):
        for n in range(1, 6):
            net = _trained_looking(family, 6 * n + 2, width=2, seed=n)
            with torch.no_grad():
                expected = net(x)
                for m in range(n, 6):
                    got = deepen_with_identity(net, 6 * m + 2)(x)
                    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (family, n, m)
