"""The engine's GPU path, checked on the CPU: sync-free divergence checks, the CUDA-graph step, their flags.

No GPU runs here. What runs: the device-side step log and its read-back every N steps (against the
per-step checks, on planted divergences), the graphed step's own code run eagerly (the capture and the
side stream stood in for), the choice of path and the validation of its flags.
"""

from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace

import pytest
import torch

import resnet_lib.training as training
from resnet_lib.data import load_dataset
from resnet_lib.models import cifar_resnet
from resnet_lib.profiles import DataSpec
from resnet_lib.recipe import Recipe
from resnet_lib.training import GPU_CHECK_EVERY, History, Parallelism, StepLog, check_interval, fit, use_cuda_graph

# 250 training images of 8x8 in batches of 32: 8 steps an epoch, the last of 26 images.
RECIPE = Recipe(epochs=3, batch_size=32, lr=0.05, warmup_steps=2, lr_milestones=(0.5,))
TRAIN_KEYS = ("epoch", "step", "lr", "train_loss", "train_error")


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataSpec(dataset="standin", n_train=250, n_test=64, image_size=8), verbose=False)


def tiny_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cifar_resnet(8, width=4)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def train_numbers(history: History) -> list[dict]:
    """Each epoch's training numbers (the test numbers of a diverged epoch depend on when it was seen)."""
    return [{k: e[k] for k in TRAIN_KEYS} for e in history.epochs]


def verdict(history: History) -> tuple:
    return history.diverged, history.diverged_at_step, history.diverged_reason, repr(history.step_losses)


class NotLocal(Parallelism):
    local = False


# ----------------------------------------------------------------------------- choosing the path


def test_the_cpu_keeps_its_per_step_checks_and_never_the_graph(data, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert check_interval(None, cpu, Parallelism()) == 1 and not use_cuda_graph(None, cpu, Parallelism())
    assert check_interval(None, cuda, Parallelism()) == GPU_CHECK_EVERY and use_cuda_graph(None, cuda, Parallelism())
    assert check_interval(None, cuda, NotLocal()) == 1 and not use_cuda_graph(None, cuda, NotLocal())
    assert not use_cuda_graph(False, cuda, Parallelism())

    def refuse(*args, **kwargs):
        raise AssertionError("the CPU's default path built the GPU's step log")

    monkeypatch.setattr(StepLog, "__init__", refuse)
    history = fit(tiny_net(), data, Recipe(epochs=1, batch_size=32), seed=0, progress=False, device="cpu")
    assert len(history.step_losses) == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cuda_graph": True}, r"^cuda_graph=True needs a CUDA device; this run trains on cpu$"),
        ({"cuda_graph": "yes"}, r"^cuda_graph must be True, False or None, got 'yes'$"),
        ({"cuda_graph": 1}, r"^cuda_graph must be True, False or None, got 1$"),
        ({"check_every": 0}, r"^check_every must be a whole number >= 1, got 0$"),
        ({"check_every": 2.5}, r"^check_every must be a whole number >= 1, got 2\.5$"),
        ({"check_every": True}, r"^check_every must be a whole number >= 1, got True$"),
        ({"check_every": 5, "parallel": NotLocal()}, r"^check_every must be 1 \(or None\) for data-parallel"),
    ],
)
def test_bad_flags_are_one_line_before_any_training(data, kwargs, message):
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        fit(net, data, RECIPE, seed=0, progress=False, device="cpu", **kwargs)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_graph_for_data_parallel_training_is_refused():
    with pytest.raises(ValueError, match=r"^cuda_graph=True is for one process"):
        use_cuda_graph(True, torch.device("cuda"), NotLocal())


# ----------------------------------------------------------------------------- checks read back every N steps


@pytest.mark.parametrize("every", [3, 8, 50])
def test_checks_read_back_every_n_steps_train_bit_for_bit_as_every_step(data, every, tmp_path):
    """No divergence: the same history and weights, bit for bit, and a checkpoint either path resumes."""
    net, ref_net = tiny_net(), tiny_net()
    reference = fit(ref_net, data, RECIPE, seed=0, progress=False)
    history = fit(net, data, RECIPE, seed=0, progress=False, check_every=every)
    assert not history.diverged and len(history.step_losses) == 24
    assert repr(history.step_losses) == repr(reference.step_losses) and same_weights(net, ref_net)
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in history.epochs] == [
        {k: v for k, v in e.items() if k != "seconds"} for e in reference.epochs
    ]
    ckpt = tmp_path / "run.ckpt"
    fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1, check_every=every)
    resumed_net = tiny_net(seed=4)
    resumed = fit(resumed_net, data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    assert repr(resumed.step_losses) == repr(reference.step_losses) and same_weights(resumed_net, ref_net)


def _explode_lr(net):
    return Recipe(epochs=3, batch_size=32, lr=100.0)


def _nan_lr(net):
    return Recipe(epochs=3, batch_size=32, lr=1e8)


def _inf_batchnorm_at_start(net):
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(float("inf"))
    return RECIPE


def _nan_statistic_at_forward(call: int):
    """A NaN put into a BatchNorm running mean before the ``call``-th forward pass (test passes count too):
    the losses stay finite, the state does not."""

    def plant(net):
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        calls = [0]

        def hook(module, inputs):
            calls[0] += 1
            if calls[0] == call:
                bns[2].running_mean[0] = float("nan")

        net.register_forward_pre_hook(hook)
        return RECIPE

    return plant


def _nan_weight_at_forward(call: int):
    """A NaN weight before the ``call``-th forward pass: that step's loss is NaN."""

    def plant(net):
        calls = [0]

        def hook(module, inputs):
            calls[0] += 1
            if calls[0] == call:
                with torch.no_grad():
                    net.fc.weight[0, 0] = float("nan")

        net.register_forward_pre_hook(hook)
        return RECIPE

    return plant


PLANTED = {
    "loss above 100x": _explode_lr,
    "loss overflows": _nan_lr,
    "inf BatchNorm statistic before the first step": _inf_batchnorm_at_start,
    "NaN statistic at step 9": _nan_statistic_at_forward(11),
    "NaN statistic at step 19": _nan_statistic_at_forward(22),
    "NaN weight at step 13": _nan_weight_at_forward(15),
}


@pytest.mark.parametrize("every", [3, 8, 50])
@pytest.mark.parametrize("planted", list(PLANTED))
def test_checks_read_back_every_n_steps_find_the_same_divergence_at_the_same_step(data, planted, every):
    per_step_net, deferred_net = tiny_net(), tiny_net()
    per_step = fit(per_step_net, data, PLANTED[planted](per_step_net), seed=0, progress=False)
    deferred = fit(deferred_net, data, PLANTED[planted](deferred_net), seed=0, progress=False, check_every=every)
    assert per_step.diverged and per_step.diverged_reason
    assert verdict(deferred) == verdict(per_step)
    assert train_numbers(deferred) == train_numbers(per_step)


def test_the_step_log_names_the_first_tensor_in_state_dict_order():
    """Tensors of two dtypes are logged in two groups; a verdict still names the first one in
    ``state_dict`` order, as :func:`resnet_lib.training.non_finite_state` does."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).double(), torch.nn.Linear(2, 2))
    log = StepLog(net, capacity=4, device=torch.device("cpu"))
    assert len(log.groups) == 2 and sorted(log.positions) == list(range(6))
    logits, y = torch.zeros(3, 2), torch.tensor([0, 1, 1])
    loss = torch.tensor(0.5)
    log.record(loss, logits, y)
    with torch.no_grad():
        net[2].bias[1] = float("nan")
        net[1].weight[0, 0] = float("inf")  # float64, logged in the second group, but earlier in the state
    log.record(loss, logits, y)
    first, second = log.read(2)
    assert first[:2] == [0.5, 2.0] and log.non_finite(first) is None
    assert log.non_finite(second) == "1.weight" == training.non_finite_state(net)
    assert log.count.item() == 0  # read back: the log starts again


# ----------------------------------------------------------------------------- the graphed step, run eagerly


class FakeGraph(SimpleNamespace):
    """What ``capture_cuda_graph`` returns, on the CPU: a replay re-runs the captured step. A real capture
    records the backward with no gradients present (so each replay writes them afresh): so does this."""


def _eager_graphs(monkeypatch, captured: list, fail: bool = False):
    """Stand-ins for the CUDA-only parts (the capture and the side stream) so that ``GraphedStep`` runs on the CPU."""

    def capture(step):
        if fail:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        graph = FakeGraph(replays=0)

        def replay():
            for p in captured[0].params:
                p.grad = None
            graph.replays += 1
            step()

        graph.replay = replay
        captured.append(graph)
        return graph

    init = training.GraphedStep.__init__

    def init_capturing(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.capture = True
        captured.insert(0, self)

    monkeypatch.setattr(training, "use_cuda_graph", lambda *args: True)
    monkeypatch.setattr(training, "capture_cuda_graph", capture)
    monkeypatch.setattr(training, "side_stream", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(training.GraphedStep, "__init__", init_capturing)


def test_the_graphed_step_trains_as_the_eager_step(data, monkeypatch, tmp_path):
    """The step a CUDA graph captures (static batch, device learning rate, fused SGD on the optimizer's
    momentum buffers, the step log) against the eager engine: the same run to float32 rounding, and
    checkpoints that either path resumes."""
    ref_net = tiny_net()
    reference = fit(ref_net, data, RECIPE, seed=0, progress=False)
    captured: list = []
    _eager_graphs(monkeypatch, captured)
    net = tiny_net()
    history = fit(net, data, RECIPE, seed=0, progress=False)
    step, graph = captured
    # 24 steps: 3 eager before the capture, the 3 epochs' last (smaller) batches eagerly, 18 replays.
    assert step.eager_steps == training.GRAPH_WARMUP_STEPS + 3 and graph.replays == 18
    assert len(history.step_losses) == 24 and not history.diverged
    assert history.step_losses == pytest.approx(reference.step_losses, rel=1e-5)
    for a, b in zip(net.state_dict().values(), ref_net.state_dict().values(), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6)
    assert [e["lr"] for e in history.epochs] == [e["lr"] for e in reference.epochs]
    ckpt = tmp_path / "run.ckpt"
    fit(tiny_net(), data, RECIPE, seed=0, checkpoint=ckpt, progress=False, stop_after_epochs=1)
    state = training.load_checkpoint_file(ckpt)
    assert set(state["optimizer"]["state"][0]) == {"momentum_buffer"}
    assert state["optimizer"]["param_groups"][0]["lr"] == RECIPE.lr_at(7, 24)  # a float, as the eager step's
    monkeypatch.undo()
    resumed = fit(tiny_net(seed=4), data, RECIPE, seed=0, checkpoint=ckpt, progress=False)
    assert resumed.step_losses == pytest.approx(reference.step_losses, rel=1e-5)


@pytest.mark.parametrize("planted", ["loss above 100x", "NaN statistic at step 9", "NaN weight at step 13"])
def test_the_graphed_step_finds_the_same_divergence_at_the_same_step(data, monkeypatch, planted):
    per_step_net = tiny_net()
    per_step = fit(per_step_net, data, PLANTED[planted](per_step_net), seed=0, progress=False)
    _eager_graphs(monkeypatch, [])
    net = tiny_net()
    graphed = fit(net, data, PLANTED[planted](net), seed=0, progress=False, check_every=5)
    assert graphed.diverged and graphed.diverged_at_step == per_step.diverged_at_step
    assert graphed.diverged_reason.split(" ")[:3] == per_step.diverged_reason.split(" ")[:3]
    assert graphed.step_losses[:-1] == pytest.approx(per_step.step_losses[:-1], rel=1e-5)


def test_a_failed_capture_is_one_warning_and_training_goes_on_eagerly(data, monkeypatch, capsys):
    captured: list = []
    _eager_graphs(monkeypatch, captured, fail=True)
    history = fit(tiny_net(), data, RECIPE, seed=0, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: CUDA graph capture failed (operation not permitted when stream is capturing); training on "
        "eagerly (cuda_graph=False skips the attempt)"
    ]
    assert captured[0].eager_steps == 24 and len(history.step_losses) == 24 and not history.diverged
    assert all(map(math.isfinite, history.step_losses))
