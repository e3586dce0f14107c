"""Layer responses, per-layer gradient norms and line gradients of CIFAR nets, checked against plain autograd."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lib.measure import responses
from resnet_lib.measure.responses import (
    conv_gradient_norms,
    layer_response_std,
    line_gradients,
    response_layers,
    with_batch_statistics,
)
from resnet_lib.models import cifar_net


def _net(family: str, depth: int = 14, shortcut: str = "A", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = cifar_net(family, depth, width=4, shortcut=shortcut)
    with torch.no_grad():  # trained-looking BatchNorms
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.2, 1.5)
                m.bias.normal_(0, 0.2)
    return net


def _images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["plain", "residual"])
def test_layer_response_std_matches_a_hand_written_forward_pass(family):
    net, x = _net(family).eval(), _images()
    expected = []
    with torch.no_grad():
        h = net.stem[0](x)
        r = net.stem[1](h)
        expected.append(r)
        h = torch.relu(r)
        for block in net.blocks():
            r1 = block.bn1(block.conv1(h))
            r2 = block.bn2(block.conv2(torch.relu(r1)))
            expected += [r1, r2]
            h = torch.relu(r2 + block.shortcut(h)) if block.shortcut is not None else torch.relu(r2)
        assert torch.allclose(h, net.feature_maps(x)["stage3.1"], atol=1e-5)
    want = [r.transpose(0, 1).reshape(r.shape[1], -1).double().std(1).mean().item() for r in expected]
    got = layer_response_std(net, x, batch_size=4)  # two batches: the running sums must add up
    assert len(got) == len(response_layers(net)) == 1 + 2 * 6
    assert got == pytest.approx(want, rel=1e-6)


def test_layer_response_std_restores_the_mode():
    net = _net("residual").train()
    layer_response_std(net, _images())
    assert net.training


@pytest.mark.parametrize("family, shortcut", [("plain", "A"), ("residual", "A"), ("residual", "B")])
def test_conv_gradient_norms_match_autograd(family, shortcut):
    net, x = _net(family, shortcut=shortcut), _images(8)
    y = torch.arange(8) % 10
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    got = conv_gradient_norms(net, x, y)
    reference = copy.deepcopy(net).train()
    for k, v in net.state_dict().items():  # the measurement left the net alone
        assert torch.equal(v, buffers[k]), k
    assert all(p.grad is None for p in net.parameters())
    F.cross_entropy(reference(x), y).backward()
    convs = [reference.stem[0]] + [c for b in reference.blocks() for c in (b.conv1, b.conv2)]
    want = [c.weight.grad.norm().item() for c in convs]
    assert len(got) == len(response_layers(net))  # option-B projections are left out
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("family", ["plain", "residual"])
def test_line_gradients_in_eval_mode_match_per_image_autograd(family):
    net = _net(family).double().eval()
    start, end = _images(2).double()
    got = line_gradients(net, start, end, target=3, n_points=7)
    want = []
    for t in torch.linspace(0, 1, 7, dtype=torch.float64):
        t = t.clone().requires_grad_(True)
        logit = net((start + t * (end - start))[None])[0, 3]
        (g,) = torch.autograd.grad(logit, t)
        want.append(g.item())
    assert got.shape == (7,)
    assert got.tolist() == pytest.approx(want, rel=1e-6, abs=1e-9)
    assert not net.training


def test_line_gradients_in_train_mode_leave_batchnorm_statistics_alone():
    net = _net("plain").eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    start, end = _images(2)
    grads = line_gradients(net, start, end, target=0, n_points=16, train_mode=True)
    assert grads.shape == (16,) and torch.isfinite(grads).all()
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bad_inputs_raise_one_line_errors():
    net = _net("plain")
    with pytest.raises(ValueError, match="CifarNet"):
        layer_response_std(nn.Linear(2, 2), _images())
    with pytest.raises(ValueError, match="at least 2 images"):
        layer_response_std(net, _images(1))
    start, end = _images(2)
    with pytest.raises(ValueError, match="class index"):
        line_gradients(net, start, end, target=10)
    with pytest.raises(ValueError, match="single images"):
        line_gradients(net, start[None], end[None], target=0)


@pytest.mark.parametrize("family", ["plain", "residual"])
def test_with_batch_statistics_computes_in_eval_mode_what_training_mode_computes_on_the_batch(family):
    torch.manual_seed(0)
    net = cifar_net(family, 14, width=4)  # untrained: running statistics 0 and 1
    x = _images(8)
    calibrated = with_batch_statistics(net, x)
    assert not calibrated.training and net.training
    with torch.no_grad():
        expected = copy.deepcopy(net).train()(x)
        got = calibrated(x)
        # Eval mode treats images one at a time: the first image alone gives the same logits.
        alone = calibrated(x[:1])
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert torch.allclose(alone, got[:1], atol=1e-5)
    assert all(m.momentum == 0.1 for m in calibrated.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(
        torch.equal(m.running_var, torch.ones_like(m.running_var))
        for m in net.modules()
        if isinstance(m, nn.BatchNorm2d)
    )


def test_gradient_flow_uses_chapter_2s_criteria():
    assert responses.gradient_flow(1e-11) == "vanished"
    assert responses.gradient_flow(0.05) == "kept" and responses.gradient_flow(25.0) == "kept"
    assert responses.gradient_flow(0.01) == "shrunk" and responses.gradient_flow(100.0) == "grown"
    with pytest.raises(ValueError, match="positive, finite"):
        responses.gradient_flow(float("nan"))
