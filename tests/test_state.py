"""preserved_state: a measurement borrows a net and gives it back in the mode, and with the buffers, it had."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lib.models import preserved_state


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


@pytest.mark.parametrize("was_training", [True, False])
@pytest.mark.parametrize(("train", "inside"), [(False, False), (True, True), (None, None)])
def test_the_mode_inside_and_after_the_block(was_training, train, inside):
    net = _net().train(was_training)
    with preserved_state(net, train=train) as same:
        assert same is net
        assert net.training == (was_training if inside is None else inside)
        assert all(m.training == net.training for m in net.modules())
    assert all(m.training == was_training for m in net.modules())


def test_the_mode_comes_back_after_an_error():
    net = _net().train()
    with pytest.raises(RuntimeError, match="inside"), preserved_state(net):
        raise RuntimeError("inside")
    assert net.training


def test_buffers_come_back_only_when_asked():
    x = torch.randn(16, 3) * 5 + 2
    for keep, changed in [(True, False), (False, True)]:
        net = _net()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with preserved_state(net, train=True, buffers=keep):
            net(x)  # a training-mode forward pass moves the running statistics
        after = net.state_dict()
        moved = [k for k in before if not torch.equal(before[k], after[k])]
        assert bool(moved) == changed, moved
        if changed:
            assert set(moved) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}


def test_exact_calibration_makes_eval_mode_compute_what_training_mode_computes_on_the_batch():
    from resnet_lib.models import calibrate_batchnorm, cifar_resnet

    torch.manual_seed(0)
    net, x = cifar_resnet(8, width=4), torch.randn(12, 3, 8, 8) * 3 + 1
    with torch.no_grad():
        training_mode = net.train()(x)
    calibrated = calibrate_batchnorm(net, x, batch_size=None, exact=True)
    assert not calibrated.training
    with torch.no_grad():
        torch.testing.assert_close(calibrated(x), training_mode, rtol=1e-4, atol=1e-5)
        one_by_one = torch.cat([calibrated(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(one_by_one, training_mode, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="exact=True needs x in one batch"):
        calibrate_batchnorm(net, x, batch_size=4, exact=True)
