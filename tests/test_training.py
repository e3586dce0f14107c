"""The training engine: history, determinism, kill-and-resume, divergence, evaluation."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from resnet_lib.data import load_dataset
from resnet_lib.models import cifar_resnet, plain_cifar_net
from resnet_lib.profiles import DataSpec
from resnet_lib.recipe import Recipe
from resnet_lib.training import History, evaluate, fit, load_checkpoint_file, native_bf16, resolve_precision

# 256 training images of 8x8 in batches of 32: 8 steps an epoch.
RECIPE = Recipe(epochs=3, batch_size=32, lr=0.05, warmup_steps=2, lr_milestones=(0.5,))
STEPS_PER_EPOCH = 8


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataSpec(dataset="standin", n_train=256, n_test=64, image_size=8), verbose=False)


def tiny_net(seed: int = 0, residual: bool = True):
    torch.manual_seed(seed)
    return cifar_resnet(8, width=4) if residual else plain_cifar_net(8, width=4)


def same_history(a: History, b: History) -> bool:
    """Equal in everything but wall-clock seconds (bit for bit: floats compared with ==)."""
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h.epochs]
    return (strip(a), a.step_losses, a.diverged, a.diverged_at_step) == (
        strip(b),
        b.step_losses,
        b.diverged,
        b.diverged_at_step,
    )


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def reference(data):
    """One uninterrupted run: the history and weights every other run is compared with."""
    net = tiny_net()
    return fit(net, data, RECIPE, seed=0, progress=False), net


def test_history_records_every_epoch_and_step(reference):
    history, _ = reference
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert [e["step"] for e in history.epochs] == [8, 16, 24]
    assert len(history.step_losses) == 24 and all(math.isfinite(v) for v in history.step_losses)
    keys = {"epoch", "step", "lr", "train_loss", "train_error", "test_loss", "test_error", "seconds"}
    assert set(history.final) == keys
    for e in history.epochs:
        assert 0 <= e["train_error"] <= 1 and 0 <= e["test_error"] <= 1 and e["seconds"] > 0
    # The lr of each epoch's last step: milestone at half of 24 steps.
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.05, 0.005, 0.005])
    # The reported train loss is the mean of the epoch's mini-batch losses (equal-sized batches here).
    assert history.epochs[0]["train_loss"] == pytest.approx(sum(history.step_losses[:8]) / 8)
    assert not history.diverged and history.diverged_at_step is None
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))) == history


def test_training_reduces_the_loss(reference):
    history, _ = reference
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


def test_fit_is_deterministic_for_a_seed(data, reference):
    history, net = reference
    again = tiny_net()
    assert same_history(fit(again, data, RECIPE, seed=0, progress=False), history)
    assert same_weights(again, net)
    other = fit(tiny_net(), data, RECIPE, seed=1, progress=False)  # other batches and crops
    assert other.step_losses[0] != history.step_losses[0] or other.step_losses[1] != history.step_losses[1]


def test_a_run_stopped_after_an_epoch_resumes_to_the_same_history(data, reference, tmp_path):
    history, net = reference
    ckpt = tmp_path / "run.ckpt"
    first = fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1)
    assert len(first.epochs) == 1 and ckpt.exists()
    resumed_net = tiny_net(seed=123)  # a fresh process would build a differently initialized net
    resumed = fit(resumed_net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    assert same_history(resumed, history) and same_weights(resumed_net, net)
    # Calling it once more finds the run finished: nothing is trained, the history is the same.
    again_net = tiny_net(seed=7)
    assert same_history(fit(again_net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False), history)
    assert same_weights(again_net, net)


class Killed(Exception):
    pass


def test_a_run_killed_mid_epoch_resumes_to_the_same_history(data, reference, tmp_path):
    history, net = reference
    ckpt = tmp_path / "run.ckpt"
    victim, calls = tiny_net(), []

    def kill_at_step_13(module, inputs):  # 13th training forward pass: in epoch 2, after a checkpoint
        if module.training:
            calls.append(1)
            if len(calls) == 13:
                raise Killed

    victim.register_forward_pre_hook(kill_at_step_13)
    with pytest.raises(Killed):
        fit(victim, data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    assert load_checkpoint_file(ckpt)["epoch"] == 1  # the half-done epoch 2 is lost
    resumed_net = tiny_net(seed=5)
    resumed = fit(resumed_net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    assert same_history(resumed, history) and same_weights(resumed_net, net)


def test_max_steps_stops_mid_epoch_and_resumes_there(data, tmp_path):
    recipe = Recipe(epochs=3, batch_size=32, lr=0.05, max_steps=12)  # 1.5 epochs
    net = tiny_net()
    whole = fit(net, data, recipe, seed=0, progress=False)
    assert [e["step"] for e in whole.epochs] == [8, 12] and len(whole.step_losses) == 12
    assert recipe.lr_at(6, 12) == pytest.approx(0.005)  # the milestones are fractions of max_steps
    ckpt = tmp_path / "run.ckpt"
    fit(tiny_net(), data, recipe, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1)
    resumed_net = tiny_net(seed=9)
    assert same_history(fit(resumed_net, data, recipe, seed=0, checkpoint=ckpt, progress=False), whole)
    assert same_weights(resumed_net, net)


def test_a_nan_loss_is_reported_not_raised(data, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    recipe = Recipe(epochs=3, batch_size=32, lr=1e8)  # explodes within a few steps
    history = fit(tiny_net(), data, recipe, seed=0, checkpoint=ckpt, progress=False)
    assert history.diverged and history.diverged_at_step is not None
    step = history.diverged_at_step
    assert step < 3 * STEPS_PER_EPOCH and len(history.step_losses) == step + 1
    # The loss that exploded is the last one (here far above 100x the first, before it overflows).
    assert all(map(math.isfinite, history.step_losses[:-1])) and "above 100x" in history.diverged_reason
    assert history.epochs and history.final["step"] == step  # the epoch it happened in is recorded
    assert len(history.epochs) == step // STEPS_PER_EPOCH + 1  # and training stopped there
    nan = History(step_losses=[2.3, float("nan")], diverged=True, diverged_at_step=1, diverged_reason="nan")
    stored = History.from_dict(json.loads(json.dumps(nan.to_dict())))  # NaN and inf survive JSON
    assert stored.diverged and not math.isfinite(stored.step_losses[-1])


def test_evaluate_returns_mean_loss_and_error_and_keeps_the_mode(data):
    net = tiny_net().train()
    loss, error = evaluate(net, data.test_x, data.test_y, batch_size=10)  # batches of unequal size
    net.eval()
    with torch.no_grad():
        logits = net(data.test_x)
    assert loss == pytest.approx(F.cross_entropy(logits, data.test_y).item(), rel=1e-5)
    assert error == pytest.approx((logits.argmax(1) != data.test_y).float().mean().item())
    net.train()
    evaluate(net, data.test_x, data.test_y)
    assert net.training


def test_auto_precision_is_bf16_exactly_where_the_hardware_has_it():
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    expected = "bf16" if native_bf16("cpu") else "fp32"
    assert resolve_precision("auto", "cpu") == expected
    has_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16("cpu") == (has_bf16 and torch.backends.mkldnn.is_available())
    with pytest.raises(ValueError, match="unknown precision 'half'; choose one of: fp32, bf16, auto"):
        resolve_precision("half", "cpu")


def test_bf16_mixed_precision_trains_float32_weights_close_to_fp32(data):
    """bf16 autocast changes the arithmetic, not the model: weights stay float32, and it learns as fp32 does."""
    recipe = Recipe(epochs=8, batch_size=32, lr=0.05, warmup_steps=2, lr_milestones=(0.5,), precision="bf16")
    fp32_net, bf16_net = tiny_net(), tiny_net()
    fp32 = fit(fp32_net, data, replace(recipe, precision="fp32"), seed=0, progress=False)
    bf16 = fit(bf16_net, data, recipe, seed=0, progress=False)
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in bf16_net.parameters())
    assert all(math.isfinite(v) for v in bf16.step_losses)
    # The first step sees the same weights and batch: bf16 rounds to about 3 significant digits.
    assert bf16.step_losses[0] == pytest.approx(fp32.step_losses[0], rel=2e-2)
    assert bf16.step_losses[0] != fp32.step_losses[0]  # it really ran in another precision
    # Both learn (measured: 2.52 -> 1.88 in fp32, 1.90 in bf16), and end within 0.1 of each other.
    assert bf16.final["train_loss"] < 0.8 * bf16.step_losses[0]
    assert abs(bf16.final["train_loss"] - fp32.final["train_loss"]) < 0.1
    again = fit(tiny_net(), data, recipe, seed=0, progress=False)
    assert same_history(again, bf16)  # deterministic on one machine, like fp32


def test_evaluate_in_bf16_is_close_to_fp32(data):
    net = tiny_net()
    loss32, error32 = evaluate(net, data.test_x, data.test_y)
    loss16, error16 = evaluate(net, data.test_x, data.test_y, precision="bf16")
    assert loss16 == pytest.approx(loss32, rel=2e-2) and abs(error16 - error32) <= 0.05


# ----------------------------------------------------------------------------- issue 18: runs that never lie


def test_an_explosion_without_nan_is_divergence(data):
    """Finding 1: a loss that explodes but stays finite is divergence, with the step and the reason."""
    recipe = Recipe(epochs=3, batch_size=32, lr=100.0, warmup_steps=0)
    history = fit(tiny_net(), data, recipe, seed=0, progress=False)
    assert history.diverged and history.diverged_at_step is not None and history.diverged_reason
    assert history.diverged_at_step < 3 * STEPS_PER_EPOCH
    line = history.divergence_line("ResNet-8")
    assert line.startswith(f"ResNet-8 diverged at step {history.diverged_at_step}: ") and "\n" not in line
    stored = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert stored.diverged_reason == history.diverged_reason


def test_infinite_batchnorm_statistics_are_divergence(data, capsys):
    """Finding 1: inf in a BatchNorm running_var (finite losses, constant predictions) is divergence."""
    net = tiny_net()
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(float("inf"))  # as lr=100 left six running_var tensors
    history = fit(net, data, Recipe(epochs=2, batch_size=32), seed=0, progress=True, desc="ResNet-8")
    assert history.diverged and history.diverged_at_step == 0
    assert "running_var" in history.diverged_reason
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "diverged" in line] == [history.divergence_line("ResNet-8")]


def test_loss_divergence_rules():
    from resnet_lib.training import loss_divergence

    assert loss_divergence(2.0, 2.3, 100) is None
    assert "nan" in loss_divergence(float("nan"), 2.3, 100)
    assert "inf" in loss_divergence(float("inf"), None, 100)
    assert "above 100x" in loss_divergence(231.0, 2.3, 100, "test loss")
    assert loss_divergence(229.0, 2.3, 100) is None


def test_a_corrupt_checkpoint_is_discarded_with_one_line_and_the_run_restarts(data, reference, tmp_path, capsys):
    """Finding 4: a truncated checkpoint made every retry die in torch.load without naming the file."""
    ckpt = tmp_path / "run.ckpt"
    fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1)
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    capsys.readouterr()
    net = tiny_net()
    history = fit(net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ckpt) in err[0] and "corrupt" in err[0] and "starting the run again" in err[0]
    assert same_history(history, reference[0]) and same_weights(net, reference[1])  # restarted from scratch


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"recipe": replace(RECIPE, lr=0.1)}, {"recipe": replace(RECIPE, batch_size=64)}],
    ids=["seed", "recipe", "batch size"],
)
def test_a_checkpoint_of_another_run_is_never_resumed(data, tmp_path, change):
    """Finding 4: fit(checkpoint=...) with another seed, recipe or batch size silently resumed it."""
    ckpt = tmp_path / "run.ckpt"
    fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1)
    before = ckpt.read_bytes()
    kwargs = {"seed": 0, "recipe": RECIPE, **change}
    with pytest.raises(ValueError, match=r"belongs to another run") as err:
        fit(tiny_net(), data, kwargs["recipe"], seed=kwargs["seed"], checkpoint=ckpt, progress=False)
    assert str(ckpt) in str(err.value) and "\n" not in str(err.value)
    assert ckpt.read_bytes() == before  # the other run's checkpoint is left alone


# ----------------------------------------------------------------------------- data parallel


def test_data_parallel_over_one_process_trains_as_fit_alone(data, reference, tmp_path, monkeypatch):
    """Every hook of DataParallel runs (DDP, all-reduces, the broadcast checkpoint, the shared-out
    test set); over a one-process group it must train exactly as fit does without it."""
    import torch.distributed as dist

    from resnet_lib.distributed import DataParallel

    with pytest.raises(ValueError, match=r"needs a torch\.distributed process group"):
        DataParallel()
    history, net = reference
    reduced, all_reduce = [], dist.all_reduce
    monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: reduced.append(t.numel()) or all_reduce(t, *a, **k))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        ckpt = tmp_path / "run.ckpt"
        parallel = DataParallel()
        assert parallel.is_main and (parallel.rank, parallel.world_size) == (0, 1)
        first = fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1,
                    parallel=parallel)  # fmt: skip
        assert len(first.epochs) == 1 and ckpt.exists()
        ddp_net = tiny_net(seed=3)
        resumed = fit(ddp_net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False, parallel=DataParallel())
    finally:
        dist.destroy_process_group()
    # Per step: the batch's (loss, images, errors) and the stop flag; per epoch: the test set's sums.
    assert reduced == [3, 1] * STEPS_PER_EPOCH + [3] + ([3, 1] * STEPS_PER_EPOCH + [3]) * 2
    assert resumed.step_losses == history.step_losses and same_weights(ddp_net, net)
    for a, b in zip(resumed.epochs, history.epochs, strict=True):
        assert {k: a[k] for k in ("epoch", "step", "lr", "train_loss", "train_error")} == {
            k: b[k] for k in ("epoch", "step", "lr", "train_loss", "train_error")
        }
        # The test set's sums go through float64 (loss x n / n): equal to a few units in the last place.
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-12)
        assert a["test_error"] == pytest.approx(b["test_error"], rel=1e-12)


# ----------------------------------------------------------------------------- issue 31: nothing unverified is loaded


def test_a_checkpoint_with_a_flipped_bit_is_refused_and_the_run_restarts(data, reference, tmp_path, capsys):
    """Row 7: a checkpoint with one flipped bit in a weight (it still unzipped and loaded) was resumed silently."""
    ckpt = tmp_path / "run.ckpt"
    fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1)
    blob = bytearray(ckpt.read_bytes())
    state = load_checkpoint_file(ckpt)["model"]
    name = next(k for k, v in state.items() if v.dtype == torch.float32 and v.dim() == 2)  # fc.weight: stored as is
    at = bytes(blob).find(state[name].numpy().tobytes())
    assert at > 0, "the weight's bytes are stored as they are"
    blob[at + 5] ^= 0x10  # one bit of one float
    ckpt.write_bytes(bytes(blob))
    capsys.readouterr()
    net = tiny_net()
    history = fit(net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ckpt) in err[0] and "SHA-256" in err[0] and "starting the run again" in err[0], err
    assert same_history(history, reference[0]) and same_weights(net, reference[1])  # restarted, not resumed


def test_a_seed_out_of_range_is_one_line_before_training(data):
    """Row 12: a seed of 2**63-1 overflowed in the epoch generator's seed, with a traceback."""
    with pytest.raises(
        ValueError, match=r"^seed must be a whole number from 0 to 4294967295, got 9223372036854775807$"
    ):
        fit(tiny_net(), data, RECIPE, seed=2**63 - 1, progress=False)
    with pytest.raises(ValueError, match="got -1"):
        fit(tiny_net(), data, RECIPE, seed=-1, progress=False)
