"""Statistics of gradient sequences (chapter 4; Balduzzi et al. 2017) and the fits against depth.

* :func:`autocorrelation`, :func:`lag1_autocorrelation`, :func:`spectrum_slope`: one
  sequence's roughness (white noise: lag-1 ≈ 0 and slope ≈ 0; brown noise: lag-1 ≈ 1 and
  slope ≈ -2); :func:`gradient_covariance`, :func:`pair_correlation`: covariance between inputs over many nets.
* :func:`white_noise`, :func:`brown_noise`: the references; :func:`plain_theory`,
  :func:`resnet_bn_theory`: the paper's rates, and fits of measured values against depth.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor


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
