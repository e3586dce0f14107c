"""Chapter 6 on converged nets: lesions of split-padding ResNets, and the readings' words both ways."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_lib.chapters import ensembles_of_paths as ch
from resnet_lib.measure import lesions
from resnet_lib.models import CifarNet
from tests.test_lesions import _trained_like


def _split_net(depth: int = 14, zero_padding: str = "split") -> CifarNet:
    torch.manual_seed(0)
    return _trained_like(CifarNet(depth, width=4, zero_padding=zero_padding)).double()


def _hand_forward(state: dict, x: torch.Tensor, skipped: int, n_per_stage: int) -> torch.Tensor:
    """The published nets' forward written from the state dict, with block ``skipped`` replaced by its shortcut.

    Option A as the publisher trained it: subsample by 2, then zero channels half before and half after.
    """

    def bn(h, p):
        return F.batch_norm(h, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                            state[f"{p}.bias"], training=False, eps=1e-5)  # fmt: skip

    def shortcut(h, c_out):
        if h.shape[1] == c_out:
            return h
        h = h[:, :, ::2, ::2]
        extra = c_out - h.shape[1]
        zeros = h.new_zeros(h.shape[0], extra // 2, *h.shape[2:])
        return torch.cat([zeros, h, h.new_zeros(h.shape[0], extra - extra // 2, *h.shape[2:])], dim=1)

    h = F.relu(bn(F.conv2d(x, state["stem.0.weight"], padding=1), "stem.1"))
    index = 0
    for stage in (1, 2, 3):
        for j in range(n_per_stage):
            p = f"stage{stage}.{j}"
            w1 = state[f"{p}.conv1.weight"]
            stride = 2 if stage > 1 and j == 0 else 1
            if index == skipped:
                h = shortcut(h, w1.shape[0])
            else:
                out = F.relu(bn(F.conv2d(h, w1, stride=stride, padding=1), f"{p}.bn1"))
                out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
                h = F.relu(out + shortcut(h, w1.shape[0]))
            index += 1
    return F.linear(h.mean((2, 3)), state["fc.weight"], state["fc.bias"])


@pytest.mark.parametrize("skipped", [0, 2, 3, 4])  # 2 and 4 are the downsampling blocks of a 14-layer net
def test_deleting_a_block_of_a_split_padding_net_keeps_its_own_shortcut(skipped):
    net = _split_net()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert [lesions.is_downsampling(b) for b in net.blocks()] == [False, False, True, False, True, False]
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    lesioned = lesions.LesionedNet(net, lesions.delete_blocks(net, [skipped]))
    with torch.no_grad():
        torch.testing.assert_close(lesioned(x), _hand_forward(state, x, skipped, 2))
    # the evaluator's mistakes are those of the same lesioned forward
    y = torch.arange(5)
    ev = lesions.BlockSequenceEvaluator(net, x, y)
    with torch.no_grad():
        expected = _hand_forward(state, x, skipped, 2).argmax(1) != y
    assert torch.equal(ev.mistakes(lesions.delete_blocks(net, [skipped])), expected)
    assert ev.error(lesions.delete_blocks(net, [skipped])) == pytest.approx(expected.double().mean().item())


def test_the_placement_of_the_zeros_matters_after_a_deleted_downsampling_block():
    split, append = _split_net(), _split_net(zero_padding="append")
    append.load_state_dict(split.state_dict())
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        a = lesions.LesionedNet(split, lesions.delete_blocks(split, [2]))(x)
        b = lesions.LesionedNet(append, lesions.delete_blocks(append, [2]))(x)
    assert (a - b).abs().max() > 1e-3


def _lesions(intact, single, deletions, swaps, downsampling=(2,)):
    return ch.ConvergedLesions("ResNet-x", intact, np.array(single), deletions, swaps, downsampling)


def _wrong(n, rate, seed):
    return np.random.default_rng(seed).random(n) < rate


def test_single_block_reading_says_either_way():
    n = 1000
    intact = _wrong(n, 0.08, 0)
    worse = intact | _wrong(n, 0.3, 1)  # adds ~28 points of mistakes on other photos
    good = _lesions(intact, [intact, intact, worse, intact], {}, {})
    reading = ch.single_block_reading(good)
    assert reading.barely_changes and reading.downsampling_costlier
    assert "barely changes" in reading.sentence() and "cost more than the rest" in reading.sentence()
    bad = _lesions(intact, [worse, worse, intact, worse], {}, {})
    reading = ch.single_block_reading(bad)
    assert not reading.barely_changes and not reading.downsampling_costlier
    assert "0 of 3" in reading.sentence() and "do not all cost more" in reading.sentence()


def test_barely_changes_is_an_effect_size_not_a_count_of_unresolved_tests():
    """Many photos resolve every small cost; a median cost of 2 points is still 'barely changes'."""
    n = 20_000
    intact = _wrong(n, 0.07, 0)
    slightly = intact | _wrong(n, 0.02, 1)
    reading = ch.single_block_reading(
        _lesions(intact, [slightly, slightly, intact | _wrong(n, 0.3, 2), slightly], {}, {})
    )
    assert reading.inner_unchanged == 0 and reading.barely_changes, reading.sentence()
    assert reading.median_share < ch.CHEAP_SHARE


def test_deletion_reading_says_either_way():
    n, draws = 800, 3
    intact = _wrong(n, 0.07, 0)

    def at(rate, seed):
        return np.array([intact | _wrong(n, rate, seed + d) for d in range(draws)])

    rising = ch.deletion_reading(_lesions(intact, [intact] * 3, {1: at(0.05, 10), 2: at(0.2, 20), 4: at(0.5, 30)}, {}))
    assert rising.grows_smoothly and rising.step_verdicts == ["rises"] * 3
    assert "rises with k without a resolved fall" in rising.sentence()
    flat = ch.deletion_reading(_lesions(intact, [intact] * 3, {1: at(0.0, 10), 2: at(0.0, 20)}, {}))
    assert not flat.rises_overall and "does not rise" in flat.sentence()
    bumpy = {1: at(0.4, 10), 2: at(0.05, 20), 4: at(0.5, 30)}
    bumpy_reading = ch.deletion_reading(_lesions(intact, [intact] * 3, bumpy, {}))
    assert bumpy_reading.rises_overall and not bumpy_reading.grows_smoothly
    assert "falls" in bumpy_reading.step_verdicts and "falls resolvably" in bumpy_reading.sentence()


def test_swap_and_standin_readings_say_either_way():
    n = 900
    intact = _wrong(n, 0.07, 0)
    worse = intact | _wrong(n, 0.2, 1)
    cheap = ch.swap_reading(_lesions(intact, [intact] * 3, {}, {0: intact, 3: intact, 4: worse}))
    assert cheap.costs_little and "costs little" in cheap.sentence() and "2 of 3" in cheap.sentence()
    much_worse = intact | _wrong(n, 0.4, 3)
    dear = ch.swap_reading(_lesions(intact, [intact] * 3, {}, {0: much_worse, 3: much_worse, 4: intact}))
    assert not dear.costs_little and "is not cheap" in dear.sentence()
    near = ch.standin_reading(_wrong(n, 0.88, 2), "ResNet-56", 0.9, 0.07)
    assert near.near_chance and "near chance" in near.sentence()
    far = ch.standin_reading(_wrong(n, 0.1, 2), "ResNet-56", 0.9, 0.07)
    assert not far.near_chance and "not near chance" in far.sentence()


def test_converged_lesions_measure_what_the_evaluator_does():
    net = _split_net()
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 3, 8, 8, generator=gen, dtype=torch.float64), torch.randint(10, (6,), generator=gen)
    got = ch.converged_lesions(net, x, y, "ResNet-14", ks=(1, 3), draws=2, progress=False)
    ev = lesions.BlockSequenceEvaluator(net, x, y)
    assert got.downsampling == (2, 4) and got.single.shape == (6, 6)
    for i in range(6):
        assert np.array_equal(got.single[i], ev.mistakes(lesions.delete_blocks(net, [i])).numpy())
    assert sorted(got.swaps) == lesions.swappable_pairs(net)
    assert got.deletions[3].shape == (2, 6)
    fewer = ch.converged_lesions(net, x, y, "ResNet-14", ks=(1,), draws=2, swap_pairs=1, progress=False)
    assert len(fewer.swaps) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ks": (1,), "draws": 1}, "at least 2 draws"),
        ({"ks": (7,), "draws": 2}, "deleted blocks in 1..6"),
        ({"ks": (1,), "draws": 2, "swap_pairs": 0}, "swap_pairs"),
    ],
)
def test_bad_input_is_one_line(kwargs, message):
    net = _split_net()
    x, y = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=message) as err:
        ch.converged_lesions(net, x, y, "ResNet-14", progress=False, **kwargs)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="boolean") as err:
        ch.standin_reading(np.array([0.5, 0.9]), "ResNet-56", 0.9, 0.07)
    assert "\n" not in str(err.value)


def test_takeaway_names_what_held_and_what_did_not():
    n = 1000
    intact = _wrong(n, 0.08, 0)
    worse = intact | _wrong(n, 0.3, 1)
    draws = np.array([intact | _wrong(n, 0.3, s) for s in (5, 6)])
    good = _lesions(intact, [intact, intact, worse, intact], {2: draws}, {0: intact})
    text = ch.takeaway(ch.single_block_reading(good), ch.deletion_reading(good), ch.swap_reading(good))
    assert "as in the paper" in text and "unlike" not in text
    bad = _lesions(intact, [worse, worse, intact, worse], {2: draws}, {0: worse})
    text = ch.takeaway(ch.single_block_reading(bad), ch.deletion_reading(bad), ch.swap_reading(bad))
    assert "unlike it, not single deletions" in text and "not neighbour swaps cost little" in text
