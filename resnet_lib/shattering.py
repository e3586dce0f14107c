"""Shattered gradients (Balduzzi et al. 2017): input gradients of scalar nets and their statistics.

A net ``f`` maps a scalar to a scalar. Its gradient ``df/dx`` at ``M`` evenly spaced
inputs is a sequence; shallow nets give a smooth one (like brown noise, a random walk),
deep plain nets a rough one (like white noise). This module measures how rough:

* :func:`input_gradients`: ``df/dx`` at every input in one batched autograd pass. A
  BatchNorm layer in training mode normalizes with the mean and variance of *these*
  inputs, held fixed while differentiating: the gradient of the function the net
  computes on this batch, not of the batch statistics themselves.
* :func:`autocorrelation`, :func:`lag1_autocorrelation`, :func:`spectrum_slope`: one
  sequence's roughness (white noise: lag-1 ≈ 0 and slope ≈ 0; brown noise: lag-1 ≈ 1 and
  slope ≈ -2); :func:`gradient_covariance`: covariance between inputs over many nets.
* :func:`white_noise`, :func:`brown_noise`: the references; :func:`plain_theory`,
  :func:`resnet_bn_theory`: the paper's rates; :func:`shattering_sweep`: correlation
  against depth over seeds; :func:`depth_explorer`: an ipywidgets depth slider.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.models.scalar import scalar_net
from resnet_lib.plotting import SERIES_COLORS, family_color
from resnet_lib.threads import single_thread
from resnet_lib.widgets import ExplorerPanel, figure_png

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
    """Forward ``hook`` on ``modules`` inside the block; on exit the hooks are removed and the
    running statistics of ``model``'s training-mode BatchNorm layers are restored."""
    norms = _training_batch_norms(model)
    saved = [{k: v.clone() for k, v in m.named_buffers()} for m in norms]
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for m, buffers in zip(norms, saved, strict=True):
            for k, v in buffers.items():
                getattr(m, k).copy_(v)


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


def _as_2d(series: Tensor | np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(series.detach().cpu() if isinstance(series, Tensor) else series, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] < 2:
        raise ValueError(f"expected a sequence (M,) or a stack of sequences (S, M) with M >= 2, got shape {arr.shape}")
    return (arr[None, :], True) if arr.ndim == 1 else (arr, False)


def autocorrelation(series: Tensor | np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Sample autocorrelation ``r_k`` for lags ``0..max_lag`` of a sequence ``(M,)`` or of each row of ``(S, M)``.

    The usual (biased) estimator: ``r_k = sum_t (g_t - mean)(g_{t+k} - mean) / sum_t (g_t - mean)^2``,
    so ``r_0 = 1``. ``max_lag`` defaults to ``M - 1``.
    """
    arr, single = _as_2d(series)
    m = arr.shape[-1]
    max_lag = m - 1 if max_lag is None else max_lag
    if not isinstance(max_lag, int) or not 0 <= max_lag < m:
        raise ValueError(f"max_lag must be an integer in [0, {m - 1}], got {max_lag!r}")
    centred = arr - arr.mean(axis=-1, keepdims=True)
    denom = (centred**2).sum(axis=-1)
    if np.any(denom == 0):
        raise ValueError("a constant sequence has no autocorrelation")
    acf = np.stack([(centred[:, : m - k] * centred[:, k:]).sum(axis=-1) / denom for k in range(max_lag + 1)], -1)
    return acf[0] if single else acf


def lag1_autocorrelation(series: Tensor | np.ndarray) -> np.ndarray | float:
    """``r_1``: about 0 for white noise, about 1 for brown noise (a float for one sequence)."""
    acf = autocorrelation(series, max_lag=1)[..., 1]
    return float(acf) if np.ndim(acf) == 0 else acf


def decorrelation_lag(samples: Tensor | np.ndarray, level: float = 0.1, max_lag: int = 64) -> int | None:
    """The first lag at which the *mean* autocorrelation over draws ``(S, M)`` falls below ``level``.

    ``None`` when it stays at or above ``level`` up to ``max_lag`` (brown noise of 256 steps stays above 0.1
    for tens of lags; white noise drops below it at lag 1). Lag 1 alone says how alike *neighbouring* inputs are; this
    says over how many steps the likeness lasts.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be a correlation in (0, 1), got {level!r}")
    mean = np.atleast_2d(autocorrelation(samples, max_lag)).mean(0)
    below = np.flatnonzero(mean < level)
    return int(below[0]) if below.size else None


def power_spectrum(series: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (cycles per sample, ``1/M .. 1/2``) and periodogram ``|FFT|^2 / M`` of the centred sequence(s)."""
    arr, single = _as_2d(series)
    m = arr.shape[-1]
    centred = arr - arr.mean(axis=-1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=-1)) ** 2 / m
    freqs = np.fft.rfftfreq(m)
    return freqs[1:], (power[0, 1:] if single else power[:, 1:])


def spectrum_slope(series: Tensor | np.ndarray, max_frequency: float = 0.25) -> np.ndarray | float:
    """Least-squares slope of log power against log frequency: about 0 for white noise, -2 for brown noise.

    The fit uses the periodogram's frequencies from ``1/M`` up to ``max_frequency`` cycles
    per sample, equally weighted. A discrete random walk's spectrum bends away from
    ``f^-2`` near the highest frequency ``1/2`` (fitting all of them gives about -1.8 at
    ``M = 256``), hence the default ``1/4``. A sequence whose spectrum has exact zeros in
    that range (a single step, for instance) gets ``nan``.
    """
    if not 0 < max_frequency <= 0.5:
        raise ValueError(f"max_frequency must be in (0, 0.5] cycles per sample, got {max_frequency!r}")
    _, single = _as_2d(series)
    freqs, power = power_spectrum(series)
    keep = freqs <= max_frequency
    if keep.sum() < 2:
        raise ValueError(f"max_frequency={max_frequency} leaves fewer than two frequencies to fit")
    power = np.atleast_2d(power)[:, keep]
    logf = np.log(freqs[keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(power)
        lf = logf - logf.mean()
        slopes = ((logp - logp.mean(axis=-1, keepdims=True)) * lf).sum(axis=-1) / (lf**2).sum()
    slopes[~np.isfinite(logp).all(axis=-1)] = np.nan
    return float(slopes[0]) if single else slopes


def _samples_2d(samples: Tensor | np.ndarray) -> np.ndarray:
    arr = np.asarray(samples.detach().cpu() if isinstance(samples, Tensor) else samples, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"samples must have shape (S, M) with S >= 2 draws and M >= 2 inputs, got {arr.shape}")
    return arr


def gradient_covariance(samples: Tensor | np.ndarray, normalize: bool = True, center: bool = False) -> np.ndarray:
    """Covariance ``(M, M)`` between inputs of gradients ``(S, M)`` drawn from ``S`` random nets (or noise draws).

    Each row is one draw; the covariance is taken over draws, as the expectation over
    random weights in Balduzzi et al.'s analysis. By default it is taken about zero
    (``center=False``): the mean gradient over random nets is zero, because flipping the
    sign of the output layer's weights flips the gradient, so subtracting a sample mean
    would only add noise. ``normalize=True`` returns the correlation matrix (unit diagonal).
    """
    arr = _samples_2d(samples)
    if center:
        arr = arr - arr.mean(axis=0, keepdims=True)
    cov = arr.T @ arr / (arr.shape[0] - 1 if center else arr.shape[0])
    if normalize:
        sd = np.sqrt(np.diag(cov))
        if np.any(sd == 0):
            raise ValueError("an input whose gradient is zero in every draw has no correlation")
        cov = cov / np.outer(sd, sd)
    return cov


def pair_correlation(samples: Tensor | np.ndarray) -> float:
    """The correlation (over draws) between the gradients at two different inputs, averaged over all pairs.

    The mean off-diagonal entry of ``gradient_covariance(samples)``, computed in ``O(S M)``:
    "pick two of the ``M`` inputs at random; how alike are the gradients there, over random nets?"
    Balduzzi et al. show it falls like ``2^-L`` for plain nets and like ``1/sqrt(L)`` for
    ResNets with BatchNorm.
    """
    arr = _samples_2d(samples)
    sd = np.sqrt((arr**2).mean(axis=0))
    if np.any(sd == 0):
        raise ValueError("an input whose gradient is zero in every draw has no correlation")
    z = arr / sd
    m = arr.shape[1]
    total = (z.sum(axis=1) ** 2).mean()  # sum over all (i, j) of the correlation matrix
    return float((total - m) / (m * (m - 1)))


def mean_abs_off_diagonal(samples: Tensor | np.ndarray) -> float:
    """Mean ``|correlation|`` between the gradients at two different inputs: the off-diagonal of the matrix.

    White noise gives only chance correlations, about ``sqrt(2 / (pi S))`` with ``S`` draws;
    smooth gradients give values near 1.
    """
    corr = gradient_covariance(samples)
    return float(np.abs(corr[~np.eye(len(corr), dtype=bool)]).mean())


def pair_correlation_band(
    samples: Tensor | np.ndarray, n_boot: int = 200, quantiles: tuple[float, float] = (0.1, 0.9), seed: int = 0
) -> tuple[float, float]:
    """A bootstrap band for :func:`pair_correlation`, resampling the draws (random nets) with replacement."""
    arr = _samples_2d(samples)
    rng = np.random.default_rng(seed)
    values = [pair_correlation(arr[rng.integers(0, len(arr), len(arr))]) for _ in range(n_boot)]
    low, high = np.quantile(values, quantiles)
    return float(low), float(high)


def pair_correlation_noise_floor(n_draws: int, length: int = 256, n_sets: int = 200, level: float = 0.95) -> float:
    """How large :func:`pair_correlation` of white noise gets by chance with ``n_draws`` draws.

    The ``level`` quantile of ``|value|`` over ``n_sets`` independent sets of draws.
    """
    values = [abs(pair_correlation(white_noise(n_draws, length, seed=10_000 + k))) for k in range(n_sets)]
    return float(np.quantile(values, level))


def white_noise(n_draws: int, length: int = 256, seed: int = 0) -> Tensor:
    """``(n_draws, length)`` independent standard normal samples: the reference for shattered gradients."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_draws, length, generator=gen, dtype=torch.float64)


def brown_noise(n_draws: int, length: int = 256, seed: int = 0) -> Tensor:
    """``(n_draws, length)`` random walks (cumulative sums of white noise): the reference for smooth gradients."""
    return torch.cumsum(white_noise(n_draws, length, seed), dim=-1)


def plain_theory(depths: Iterable[int]) -> np.ndarray:
    """Balduzzi et al.'s rate for plain ReLU nets with He init: correlation ``2^-L``."""
    return 2.0 ** -np.asarray(list(depths), dtype=np.float64)


def resnet_bn_theory(depths: Iterable[int], scale: float = 1.0) -> np.ndarray:
    """Balduzzi et al.'s rate for ResNets with BatchNorm: correlation ``~ scale / sqrt(L)`` (a rate, not a constant)."""
    return scale / np.sqrt(np.asarray(list(depths), dtype=np.float64))


def _above_floor(depths: Iterable[int], values: Iterable[float], floor: float) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(list(depths), dtype=np.float64)
    v = np.asarray(list(values), dtype=np.float64)
    if d.shape != v.shape:
        raise ValueError(f"depths and values must have the same length, got {d.shape} and {v.shape}")
    keep = np.isfinite(v) & (v > floor)
    if keep.sum() < 2:
        raise ValueError(f"need at least two values above the noise floor {floor:g} to fit a rate")
    return d[keep], v[keep]


def exponential_rate(depths: Iterable[int], values: Iterable[float], floor: float = 0.0) -> float:
    """Least-squares slope of ``log2(value)`` against depth, over values above ``floor``: ``2^-L`` gives -1."""
    d, v = _above_floor(depths, values, floor)
    return float(np.polyfit(d, np.log2(v), 1)[0])


def power_law_exponent(depths: Iterable[int], values: Iterable[float], floor: float = 0.0) -> float:
    """Least-squares slope of ``log(value)`` vs ``log(depth)`` over values above ``floor``: 1/sqrt(L) gives -0.5."""
    d, v = _above_floor(depths, values, floor)
    return float(np.polyfit(np.log(d), np.log(v), 1)[0])


def resnet_theory_scale(depths: Iterable[int], values: Iterable[float], floor: float = 0.0) -> float:
    """The ``c`` of ``c / sqrt(L)`` that best fits ``values`` above ``floor`` (least squares on the log scale)."""
    d, v = _above_floor(depths, values, floor)
    return float(np.exp(np.mean(np.log(v) + 0.5 * np.log(d))))


# --------------------------------------------------------------------------- nets and samples


@dataclass(frozen=True)
class NetSpec:
    """Which scalar net: depth, plain or residual, BatchNorm or not, biases, block size."""

    depth: int
    residual: bool = False
    batch_norm: bool = False
    zero_bias: bool = False
    block_layers: int = 1

    @property
    def family(self) -> str:
        """``"residual"`` or ``"plain"``."""
        return "residual" if self.residual else "plain"

    @property
    def kind(self) -> str:
        """The net without its depth: ``"plain"``, ``"plain + BN"``, ``"ResNet + BN"``, ..."""
        name = "ResNet" if self.residual else "plain"
        name += " + BN" if self.batch_norm else " (no BN)"
        if self.residual and self.block_layers == 2:
            name += ", 2-layer blocks"
        return name + (", zero biases" if self.zero_bias else "")

    @property
    def label(self) -> str:
        return f"{self.depth}-layer {self.kind}"

    def at_depth(self, depth: int) -> NetSpec:
        """The same kind of net at another depth."""
        return NetSpec(depth, self.residual, self.batch_norm, self.zero_bias, self.block_layers)

    def build(self, units: int = 200, seed: int | None = None) -> nn.Module:
        """The net, its weights drawn from ``seed``."""
        return scalar_net(
            self.depth, self.residual, self.batch_norm, units, self.zero_bias, self.block_layers, seed=seed
        )


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


# --------------------------------------------------------------------------- correlation against depth


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


# --------------------------------------------------------------------------- figures


def grid_label(n_inputs: int = 256) -> str:
    """What a figure of this chapter shows instead of a dataset's name."""
    return f"no dataset: {n_inputs} evenly spaced inputs on [{INPUT_RANGE[0]:g}, {INPUT_RANGE[1]:g}]"


GRID_LABEL = grid_label(256)


def net_style(spec: NetSpec | str) -> dict:
    """Colour and line style of a net (or of ``"white noise"`` / ``"brown noise"``) in this chapter's figures."""
    if isinstance(spec, str):
        if spec not in ("white noise", "brown noise"):
            raise ValueError(f"unknown reference {spec!r}; choose 'white noise' or 'brown noise'")
        return {"color": SERIES_COLORS[spec], "ls": "-"}
    if spec.residual:
        return {"color": family_color("residual"), "ls": "-" if spec.batch_norm else "--"}
    if spec.depth == 1:  # its own hue (orange), not a lighter vermillion that reads as the same net
        return {"color": SERIES_COLORS["tanh"], "ls": "-"}
    if not spec.batch_norm:  # a second hue (reddish purple), dashed, so it parts from the plain net with BN
        return {"color": SERIES_COLORS["sigmoid"], "ls": "--"}
    return {"color": family_color("plain"), "ls": "-"}


def plot_gradients_and_covariance(
    columns: Sequence[tuple[str, np.ndarray, dict]], x: np.ndarray, title: str
) -> plt.Figure:
    """Balduzzi et al.'s Fig. 1: per column, one draw's ``df/dx`` (top) and the correlation over draws (bottom).

    ``columns`` holds ``(label, samples (S, M), style)``; the first row of ``samples`` is drawn on top.
    """
    fig, axes = plt.subplots(2, len(columns), figsize=(2.45 * len(columns), 5.2), squeeze=False)
    extent = (float(x[0]), float(x[-1]), float(x[-1]), float(x[0]))
    image = None
    for k, (label, samples, style) in enumerate(columns):
        top, bottom = axes[0, k], axes[1, k]
        top.plot(x, samples[0], color=style["color"], lw=0.9)
        top.set_title(label, fontsize=9)
        top.set_xlabel("input x")
        top.set_xlim(x[0], x[-1])
        image = bottom.imshow(gradient_covariance(samples), cmap="RdBu_r", vmin=-1, vmax=1, extent=extent)
        bottom.set_xlabel("input x")
        bottom.grid(False)
        if k == 0:
            top.set_ylabel("df/dx (output per unit input)")
            bottom.set_ylabel("input x")
    fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8, label=f"correlation over {len(columns[0][1])} draws")
    fig.suptitle(title)
    return fig


def plot_autocorrelation(
    ax: plt.Axes, curves: Sequence[tuple[str, np.ndarray, dict]], max_lag: int = 64, spacing: float | None = None
) -> plt.Axes:
    """Balduzzi et al.'s Fig. 2: mean autocorrelation over draws against lag, with a band of one standard deviation.

    ``curves`` holds ``(label, samples (S, M), style)``; ``spacing`` (input units per step) adds a second axis.
    """
    lags = np.arange(max_lag + 1)
    for label, samples, style in curves:
        acf = autocorrelation(samples, max_lag)
        mean, sd = acf.mean(0), acf.std(0)
        ax.plot(lags, mean, label=label, **style)
        ax.fill_between(lags, mean - sd, mean + sd, color=style["color"], alpha=0.15, lw=0)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("lag (steps between inputs)")
    ax.set_ylabel("autocorrelation of df/dx")
    ax.set_xlim(0, max_lag)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if spacing is not None:
        sec = ax.secondary_xaxis("top", functions=(lambda k: k * spacing, lambda d: d / spacing))
        sec.set_xlabel("distance between inputs (units of x)")
    return ax


def plot_shattering_summary(curves: Sequence[tuple[str, np.ndarray, dict]], title: str) -> plt.Figure:
    """Two one-number summaries per net: lag-1 autocorrelation and spectrum slope, one dot per draw, mean and sd.

    ``curves`` holds ``(label, samples (S, M), style)``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    measures = [
        (lag1_autocorrelation, "lag-1 autocorrelation", (0.0, "white noise: 0"), (1.0, "brown noise: about 1")),
        (spectrum_slope, "power-spectrum slope", (0.0, "white noise: 0"), (-2.0, "brown noise: -2")),
    ]
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=max(len(c[1]) for c in curves))
    for ax, (measure, name, *lines) in zip(axes, measures, strict=True):
        for k, (_label, samples, style) in enumerate(curves):
            values = np.atleast_1d(measure(samples))
            ax.scatter(k + jitter[: len(values)], values, s=9, color=style["color"], alpha=0.6, lw=0)
            ax.errorbar(k + 0.33, np.nanmean(values), yerr=np.nanstd(values), fmt="D", ms=5, color="black", capsize=3)
        for value, text in lines:
            ax.axhline(value, color=family_color("reference"), ls=":", lw=1)
            ax.text(len(curves) - 0.5, value, text, ha="right", va="bottom", fontsize=8, color="dimgray")
        ax.set_xticks(range(len(curves)), [c[0] for c in curves], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(name)
        ax.set_title(f"{name} (dots: draws; diamond: mean and sd)")
    fig.suptitle(title)
    return fig


def plot_depth_sweep(
    sweep: DepthSweep,
    references: dict[str, np.ndarray],
    noise_floor: float,
    resnet_kind: str,
    plain_kind: str,
) -> plt.Figure:
    """Left: lag-1 autocorrelation against depth (mean and sd over seeds); right: pair correlation beside theory.

    ``references`` maps ``"white noise"``/``"brown noise"`` to lag-1 values of noise draws.
    The theory curves are ``2^-L`` (no free constant) and ``c/sqrt(L)`` with ``c`` fitted to
    ``resnet_kind``'s values above the floor (the theory gives a rate, not ``c``).
    """
    depths = np.array(sweep.depths)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, values in references.items():
        style = net_style(name)
        left.axhspan(values.min(), values.max(), color=style["color"], alpha=0.25, lw=0, label=f"{name} (range)")
    for kind, spec in sweep.specs.items():
        style = net_style(spec.at_depth(max(2, int(depths.max()))))
        marker = {"marker": "o" if spec.batch_norm else "s", "ms": 4, "mfc": "white" if not spec.batch_norm else None}
        lag1 = sweep.lag1[kind]
        mean, sd = lag1.mean(1), lag1.std(1)
        left.plot(depths, mean, label=kind, **marker, **style)
        left.fill_between(depths, mean - sd, mean + sd, color=style["color"], alpha=0.15, lw=0)
        pair, band = sweep.pair[kind], sweep.pair_band[kind]
        right.plot(depths, np.where(pair > noise_floor, pair, np.nan), label=kind, **marker, **style)
        right.fill_between(
            depths, np.clip(band[:, 0], noise_floor, None), np.clip(band[:, 1], noise_floor, None),
            color=style["color"], alpha=0.15, lw=0,
        )  # fmt: skip
    fine = np.linspace(depths.min(), depths.max(), 200)
    grey = family_color("reference")
    right.plot(fine, plain_theory(fine), color=grey, ls=":", lw=1.6, label="theory, plain: $2^{-L}$")
    c = resnet_theory_scale(depths, sweep.pair[resnet_kind], noise_floor)
    label = r"theory, ResNet + BN: $c/\sqrt{L}$ ($c$ fitted)"
    right.plot(fine, resnet_bn_theory(fine, c), color=grey, ls="--", lw=1.6, label=label)
    right.axhspan(noise_floor / 10, noise_floor, color=SERIES_COLORS["white noise"], alpha=0.35, lw=0)
    right.text(depths.max(), noise_floor * 0.5, "white-noise level\nat this many draws", ha="right", va="center")
    right.set_yscale("log")
    right.set_ylim(noise_floor / 3, 1.2)
    left.set_xlabel("depth L (hidden layers)")
    right.set_xlabel("depth L (hidden layers)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("lag-1 autocorrelation of df/dx")
    right.set_ylabel("correlation of df/dx at two inputs")
    left.set_title("Neighbouring inputs (4/255 apart): mean and sd over nets")
    right.set_title("Two inputs picked at random, over random nets")
    left.legend(fontsize=8, loc="center right")
    right.legend(fontsize=8, loc="upper right")
    n_inputs = next(iter(sweep.samples.values())).shape[1]
    fig.suptitle(f"Shattering against depth ({len(sweep.seeds)} random nets per point; {grid_label(n_inputs)})")
    return fig


def draw_depth_panel(
    spec: NetSpec, seed: int = 0, units: int = 200, n_inputs: int = 256, max_lag: int = 64
) -> plt.Figure:
    """One net's ``df/dx`` (left) and its autocorrelation beside one draw of white and brown noise (right)."""
    x = input_grid(n_inputs).numpy()
    max_lag = min(max_lag, n_inputs - 1)
    g = gradient_samples(spec, [seed], units, n_inputs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(x, g[0], color=net_style(spec)["color"], lw=0.9)
    left.set_xlabel("input x")
    left.set_ylabel("df/dx (output per unit input)")
    left.set_title(f"{spec.label}, seed {seed}: lag-1 autocorrelation {lag1_autocorrelation(g[0]):.2f}", fontsize=9)
    curves = [(spec.label, g, net_style(spec))]
    for name, noise in (
        ("white noise", white_noise(1, n_inputs, seed)),
        ("brown noise", brown_noise(1, n_inputs, seed)),
    ):
        curves.append((name, noise.numpy(), net_style(name)))
    plot_autocorrelation(right, curves, max_lag)
    right.set_title("Autocorrelation (one draw each)")
    right.legend(fontsize=8)
    fig.suptitle(f"Depth explorer ({grid_label(n_inputs)})")
    return fig


def depth_explorer(
    units: int = 200, n_inputs: int = 256, max_depth: int = 50, seed: int = 0, max_lag: int = 64
) -> widgets.Widget:
    """An ipywidgets panel: pick a kind of net and a depth; it redraws df/dx and its autocorrelation."""
    kinds = {
        "plain + BN": NetSpec(1, batch_norm=True),
        "plain (no BN)": NetSpec(1),
        "ResNet + BN": NetSpec(1, residual=True, batch_norm=True),
    }
    depth = widgets.IntSlider(value=24, min=1, max=max_depth, description="depth L", continuous_update=False)
    kind = widgets.Dropdown(options=list(kinds), value="plain + BN", description="net")
    net_seed = widgets.IntSlider(value=seed, min=0, max=20, description="seed", continuous_update=False)

    panel = ExplorerPanel()

    def draw(kind_name: str, depth_value: int, seed_value: int) -> None:
        fig = draw_depth_panel(kinds[kind_name].at_depth(depth_value), seed_value, units, n_inputs, max_lag)
        if panel.static_png is None:  # the first state, for pages without a kernel
            panel.static_png = figure_png(fig)
            panel.static_settings = f"{kind_name}, depth {depth_value}, seed {seed_value}"
        plt.show()

    out = widgets.interactive_output(draw, {"kind_name": kind, "depth_value": depth, "seed_value": net_seed})
    panel.children = [widgets.HBox([kind, depth, net_seed]), out]
    return panel
