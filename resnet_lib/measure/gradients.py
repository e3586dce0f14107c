"""Gradients, measured: per weight layer (chapters 2 and 5), with respect to the input (chapter 4).

:func:`gradient_norms_per_layer` measures the norm of the loss gradient with respect to
every weight layer's weight (input side first), without touching the model's ``.grad``
fields or BatchNorm statistics. :func:`input_gradients` gives ``df/dx`` of a scalar net at
every input of a grid in one batched autograd pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.measure.statistics import lag1_autocorrelation, pair_correlation, pair_correlation_band
from resnet_lib.models.deep import make_activation
from resnet_lib.models.scalar import NetSpec
from resnet_lib.models.state import preserved_state
from resnet_lib.threads import single_thread


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Linear and Conv layers of ``net`` in registration order (for a chain: input side first)."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]


def gradient_norms_per_layer(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    train_mode: bool = True,
) -> np.ndarray:
    """Euclidean (Frobenius) norm of d loss / d weight for every weight layer of ``net``.

    Entry ``i`` belongs to the ``i``-th layer of :func:`weight_layers` (layer 1 is the input
    side). The forward pass runs in training mode (BatchNorm uses batch statistics, as in
    training) unless ``train_mode=False``; the model's mode, buffers and ``.grad`` fields
    are left as they were. Non-finite gradients come back as ``inf``/``nan``, not errors.
    """
    layers = weight_layers(net)
    if not layers:
        raise ValueError("net has no Linear or Conv layers whose gradient could be measured")
    device = layers[0][1].weight.device
    x, y = x.to(device), y.to(device)
    with preserved_state(net, train=train_mode, buffers=True), torch.enable_grad():
        loss = loss_fn(net(x), y)
        grads = torch.autograd.grad(loss, [m.weight for _, m in layers])
    return np.array([g.detach().double().norm().item() for g in grads])


def activation_curve(activation: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """``activation`` (``sigmoid``, ``tanh`` or ``relu``) at ``x`` and its derivative, by autograd."""
    module = make_activation(activation)
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = module(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy


#: The input range of the paper's experiments.
INPUT_RANGE = (-2.0, 2.0)


def input_grid(n_inputs: int = 256, low: float = INPUT_RANGE[0], high: float = INPUT_RANGE[1]) -> Tensor:
    """``n_inputs`` evenly spaced inputs on ``[low, high]`` (both ends included)."""
    if not isinstance(n_inputs, int) or n_inputs < 2:
        raise ValueError(f"n_inputs must be an integer >= 2, got {n_inputs!r}")
    return torch.linspace(low, high, n_inputs)


def _frozen_batch_norm_hook(module: nn.modules.batchnorm._BatchNorm, inputs: tuple[Tensor], output: Tensor) -> Tensor:
    """Recompute a training-mode BatchNorm's output with its batch statistics detached."""
    x = inputs[0]
    dims = [d for d in range(x.dim()) if d != 1]
    mean = x.mean(dims).detach()
    var = x.var(dims, unbiased=False).detach()
    return F.batch_norm(x, mean, var, module.weight, module.bias, False, 0.0, module.eps)


def _training_batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]


@contextmanager
def _hooks_keeping_statistics(model: nn.Module, modules: Iterable[nn.Module], hook) -> Iterator[None]:
    """Forward ``hook`` on ``modules`` inside the block; on exit the hooks are removed and
    ``model``'s buffers (the running statistics of its BatchNorm layers) are restored."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with preserved_state(model, train=None, buffers=True):
            yield
    finally:
        for h in handles:
            h.remove()


def input_gradients(model: nn.Module, x: Tensor) -> Tensor:
    """``df/dx`` of a scalar-to-scalar ``model`` at every point of ``x`` (shape ``(M,)``), one batched pass.

    BatchNorm layers in training mode use the mean and variance of this batch, held
    constant under differentiation (running statistics are left untouched); layers in
    eval mode use their running statistics. Because each output then depends on its own
    input only, the gradient of ``f(x).sum()`` is the per-point derivative.
    """
    if x.dim() != 1:
        raise ValueError(f"x must be a 1-D tensor of scalar inputs, got shape {tuple(x.shape)}")
    with _hooks_keeping_statistics(model, _training_batch_norms(model), _frozen_batch_norm_hook), single_thread():
        xg = x.detach().clone().requires_grad_(True)
        out = model(xg).reshape(-1)
        if out.shape != x.shape:
            raise ValueError(f"model must map M scalars to M scalars; got output shape {tuple(out.shape)}")
        (grad,) = torch.autograd.grad(out.sum(), xg)
    return grad.detach()


def gradient_samples(
    spec: NetSpec, seeds: Sequence[int], units: int = 200, n_inputs: int = 256, progress: bool = False
) -> np.ndarray:
    """``(len(seeds), n_inputs)``: ``df/dx`` on the paper's grid for one freshly initialized net per seed."""
    if len(seeds) < 1:
        raise ValueError("seeds must name at least one random initialization")
    x = input_grid(n_inputs)
    with single_thread():
        rows = [
            input_gradients(spec.build(units, seed), x).double().numpy()
            for seed in tqdm(seeds, desc=spec.label, disable=not progress, leave=False)
        ]
    return np.stack(rows)


def activation_fractions(model: nn.Module, x: Tensor) -> list[np.ndarray]:
    """For every ``nn.ReLU`` of ``model`` (in order), the fraction of the inputs ``x`` on which each unit is active.

    BatchNorm layers in training mode use the statistics of ``x``; running statistics are kept.
    """
    fractions: list[np.ndarray] = []

    def hook(_module: nn.Module, _inputs: tuple[Tensor], output: Tensor) -> None:
        fractions.append((output > 0).double().mean(0).numpy())

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    with _hooks_keeping_statistics(model, relus, hook), torch.no_grad(), single_thread():
        model(x)
    return fractions


def switching_fraction(model: nn.Module, x: Tensor) -> np.ndarray:
    """Per ReLU layer, the fraction of units that switch on or off somewhere on ``x``.

    A unit active on all inputs or on none is linear there; a net whose units stop
    switching computes a nearly linear function, whose gradient cannot shatter.
    """
    return np.array([np.mean((f > 0) & (f < 1)) for f in activation_fractions(model, x)])


@dataclass
class DepthSweep:
    """Shattering measured over depths and seeds, for several kinds of net.

    ``lag1[kind]`` is ``(len(depths), len(seeds))``: each net's lag-1 autocorrelation.
    ``pair[kind]`` is ``(len(depths),)``: :func:`pair_correlation` over the seeds' nets;
    ``pair_band[kind]`` its ``(len(depths), 2)`` bootstrap band (10% and 90%).
    ``samples[(kind, depth)]`` keeps the gradients, ``(len(seeds), n_inputs)``.
    """

    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    specs: dict[str, NetSpec]
    lag1: dict[str, np.ndarray]
    pair: dict[str, np.ndarray]
    pair_band: dict[str, np.ndarray]
    samples: dict[tuple[str, int], np.ndarray]


def shattering_sweep(
    kinds: Sequence[NetSpec],
    depths: Sequence[int],
    seeds: Sequence[int],
    units: int = 200,
    n_inputs: int = 256,
    progress: bool = True,
) -> DepthSweep:
    """Measure every kind of net (its ``depth`` is ignored) at every depth, one net per seed."""
    if not depths or not seeds:
        raise ValueError("depths and seeds must both be non-empty")
    specs = {spec.kind: spec for spec in kinds}
    lag1, pair, band, samples = {}, {}, {}, {}
    bar = tqdm(total=len(specs) * len(depths) * len(seeds), desc="depth sweep", disable=not progress, leave=False)
    for kind, spec in specs.items():
        lag1[kind], pair[kind], band[kind] = [], [], []
        for depth in depths:
            bar.set_postfix_str(f"{kind}, depth {depth}")
            rows = []
            for seed in seeds:
                rows.append(gradient_samples(spec.at_depth(depth), [seed], units, n_inputs)[0])
                bar.update(1)
            g = samples[(kind, depth)] = np.stack(rows)
            lag1[kind].append(lag1_autocorrelation(g))
            pair[kind].append(pair_correlation(g) if len(seeds) > 1 else np.nan)
            band[kind].append(pair_correlation_band(g) if len(seeds) > 1 else (np.nan, np.nan))
        lag1[kind], pair[kind], band[kind] = np.array(lag1[kind]), np.array(pair[kind]), np.array(band[kind])
    bar.close()
    return DepthSweep(tuple(depths), tuple(seeds), specs, lag1, pair, band, samples)
