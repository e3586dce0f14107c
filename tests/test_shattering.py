"""Shattering statistics and input gradients, checked against plain numpy and torch.autograd."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from resnet_lib.chapters import shattered_gradients as study
from resnet_lib.measure import gradients as grads
from resnet_lib.measure import statistics as stats
from resnet_lib.models import NetSpec, scalar
from resnet_lib.plots import shattered_gradients as figs

# ---------------------------------------------------------------- noise references and statistics


def test_white_noise_has_lag1_autocorrelation_near_zero_and_a_flat_spectrum():
    noise = stats.white_noise(400, 256, seed=1)
    lag1 = stats.lag1_autocorrelation(noise)
    # one draw: sd about 1/sqrt(256) = 0.06; the mean of 400 draws: about 0.003 (bias -1/256)
    assert abs(lag1.mean()) < 0.02
    assert abs(np.mean(stats.spectrum_slope(noise))) < 0.1


def test_random_walk_has_lag1_autocorrelation_near_one_and_slope_near_minus_two():
    walk = stats.brown_noise(400, 256, seed=2)
    assert stats.lag1_autocorrelation(walk).mean() > 0.9
    assert np.mean(stats.spectrum_slope(walk)) == pytest.approx(-2.0, abs=0.15)


def test_brown_noise_is_the_running_sum_of_white_noise():
    torch.testing.assert_close(stats.brown_noise(3, 50, seed=7), torch.cumsum(stats.white_noise(3, 50, seed=7), -1))
    assert not torch.equal(stats.white_noise(1, 50, seed=7), stats.white_noise(1, 50, seed=8))


def test_autocorrelation_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    g = rng.normal(size=30)
    c = g - g.mean()
    expected = [np.sum(c[: 30 - k] * c[k:]) / np.sum(c * c) for k in range(6)]
    np.testing.assert_allclose(stats.autocorrelation(g, 5), expected)
    assert stats.autocorrelation(g)[0] == pytest.approx(1.0)
    stacked = stats.autocorrelation(np.stack([g, 2 * g + 1]), 5)  # invariant to scale and offset
    np.testing.assert_allclose(stacked[0], stacked[1])
    assert stats.lag1_autocorrelation(torch.tensor(g)) == pytest.approx(expected[1])


def test_alternating_sequence_has_lag1_minus_one_ish():
    assert stats.lag1_autocorrelation(np.array([1.0, -1.0] * 50)) == pytest.approx(-0.99, abs=1e-9)


def test_spectrum_slope_of_a_power_law_is_its_exponent():
    m = 256
    freqs = np.fft.rfftfreq(m)[1:]
    spectrum = np.zeros(m // 2 + 1, dtype=complex)
    spectrum[1:] = freqs**-1.5 * np.exp(1j * np.random.default_rng(0).uniform(0, 2 * np.pi, len(freqs)))
    series = np.fft.irfft(spectrum, n=m)  # |FFT|^2 falls like f^-3 exactly
    assert stats.spectrum_slope(series, max_frequency=0.5) == pytest.approx(-3.0, abs=0.05)


def test_gradient_covariance_against_numpy():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(40, 6))
    np.testing.assert_allclose(stats.gradient_covariance(samples, center=True), np.corrcoef(samples, rowvar=False))
    np.testing.assert_allclose(
        stats.gradient_covariance(samples, normalize=False, center=True), np.cov(samples, rowvar=False)
    )
    raw = stats.gradient_covariance(samples, normalize=False)
    np.testing.assert_allclose(raw, samples.T @ samples / 40)
    corr = stats.gradient_covariance(samples)
    np.testing.assert_allclose(np.diag(corr), 1.0)


def test_pair_correlation_is_the_mean_off_diagonal_correlation():
    rng = np.random.default_rng(2)
    samples = rng.normal(size=(12, 9)) + rng.normal(size=(12, 1))  # a shared component per draw
    corr = stats.gradient_covariance(samples)
    expected = corr[~np.eye(9, dtype=bool)].mean()
    assert stats.pair_correlation(samples) == pytest.approx(expected)
    assert expected > 0.3
    low, high = stats.pair_correlation_band(samples, n_boot=50)
    assert low <= high
    assert 0 < stats.pair_correlation_noise_floor(16, n_sets=20) < 0.02


def test_mean_abs_off_diagonal_of_white_noise_is_chance_level_and_of_shared_signal_is_one():
    noise = stats.white_noise(50, 64, seed=3)
    assert stats.mean_abs_off_diagonal(noise) == pytest.approx(np.sqrt(2 / (np.pi * 50)), rel=0.1)
    shared = np.outer(np.random.default_rng(0).normal(size=10), np.ones(8))
    assert stats.mean_abs_off_diagonal(shared) == pytest.approx(1.0)


def test_fitted_rates_recover_the_theory_curves():
    depths = [1, 2, 4, 8, 16, 32]
    assert stats.exponential_rate(depths, stats.plain_theory(depths)) == pytest.approx(-1.0)
    assert stats.power_law_exponent(depths, stats.resnet_bn_theory(depths, 0.3)) == pytest.approx(-0.5)
    assert stats.resnet_theory_scale(depths, stats.resnet_bn_theory(depths, 0.3)) == pytest.approx(0.3)
    # values at or below the floor are left out of the fit
    values = np.concatenate([stats.plain_theory(depths[:3]), [1e-4, -1e-3, 2e-4]])
    assert stats.exponential_rate(depths, values, floor=1e-3) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least two values above"):
        stats.power_law_exponent(depths, values, floor=0.3)


def test_theory_curves():
    np.testing.assert_allclose(stats.plain_theory([1, 2, 10]), [0.5, 0.25, 2.0**-10])
    np.testing.assert_allclose(stats.resnet_bn_theory([1, 4, 100], scale=0.5), [0.5, 0.25, 0.05])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stats.autocorrelation(np.ones(10)), "constant sequence"),
        (lambda: stats.autocorrelation(np.arange(10.0), 10), "max_lag must be"),
        (lambda: stats.autocorrelation(np.zeros((2, 2, 2))), "expected a sequence"),
        (lambda: stats.spectrum_slope(np.arange(10.0), 0.0), "max_frequency must be"),
        (lambda: stats.gradient_covariance(np.ones((1, 5))), "S >= 2"),
        (lambda: grads.input_grid(1), "n_inputs must be"),
        (lambda: grads.input_gradients(NetSpec(1).build(3), torch.zeros(4, 1)), "1-D tensor"),
        (lambda: grads.gradient_samples(scalar.NetSpec(2), []), "at least one"),
        (lambda: figs.net_style("pink noise"), "unknown reference"),
    ],
)
def test_bad_input_raises_one_line_value_errors(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- input gradients against autograd


def _one_at_a_time(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    rows = []
    for xi in x:
        xi = xi.detach().clone().reshape(1).requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi).sum(), xi)
        rows.append(g[0])
    return torch.stack(rows)


@pytest.mark.parametrize("residual", [False, True])
def test_input_gradients_equal_per_point_autograd_without_batch_norm(residual):
    model = NetSpec(6, residual=residual).build(20, seed=0).double()
    x = torch.linspace(-2, 2, 33, dtype=torch.float64)
    torch.testing.assert_close(grads.input_gradients(model, x), _one_at_a_time(model, x))


def test_input_gradients_equal_per_point_autograd_for_batch_norm_in_eval_mode():
    model = NetSpec(6, residual=True, batch_norm=True).build(20, seed=1).double()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.linspace(-2, 2, 33, dtype=torch.float64)
    torch.testing.assert_close(grads.input_gradients(model, x), _one_at_a_time(model, x))


@pytest.mark.parametrize("residual", [False, True])
def test_training_mode_batch_norm_uses_this_batch_statistics_held_fixed(residual):
    """The gradient of the function computed on this batch: eval mode with running stats := batch stats."""
    model = NetSpec(4, residual=residual, batch_norm=True).build(16, seed=2).double()
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dfdx = grads.input_gradients(model, x)
    for k, v in model.state_dict().items():  # running statistics untouched
        torch.testing.assert_close(v, before[k])
    stats = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: stats.append((m, i[0].mean(0), i[0].var(0, unbiased=False))))
        for m in model.modules()
        if isinstance(m, nn.BatchNorm1d)
    ]
    with torch.no_grad():
        out_train = model(x)
    for h in hooks:
        h.remove()
    for m, mean, var in stats:
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), out_train)  # the same function on this batch
    torch.testing.assert_close(dfdx, _one_at_a_time(model, x))


def test_gradient_samples_are_reproducible_and_one_row_per_seed():
    spec = scalar.NetSpec(3, batch_norm=True)
    a = grads.gradient_samples(spec, [0, 1, 2], units=16, n_inputs=32)
    b = grads.gradient_samples(spec, [0, 1, 2], units=16, n_inputs=32)
    assert a.shape == (3, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])


# ---------------------------------------------------------------- facts the chapter relies on


def test_zero_bias_plain_net_gradient_takes_two_values():
    g = grads.gradient_samples(scalar.NetSpec(6, zero_bias=True), [0], units=32)[0]
    x = grads.input_grid(256).numpy()
    for side in (g[x < 0], g[x > 0]):
        np.testing.assert_allclose(side, side[0], rtol=1e-4)


def test_first_batch_norm_layer_puts_every_unit_on_for_half_the_inputs():
    model = NetSpec(3, batch_norm=True).build(16, seed=0)
    fractions = grads.activation_fractions(model, grads.input_grid(256))
    assert len(fractions) == 3
    np.testing.assert_allclose(fractions[0], 0.5)
    assert grads.switching_fraction(model, grads.input_grid(256))[0] == 1.0


def test_sweep_shapes_and_reproducibility():
    kinds = [scalar.NetSpec(1, batch_norm=True), scalar.NetSpec(1, residual=True, batch_norm=True)]
    a = study.shattering_sweep(kinds, (1, 2), (0, 1, 2), units=8, n_inputs=32, progress=False)
    b = study.shattering_sweep(kinds, (1, 2), (0, 1, 2), units=8, n_inputs=32, progress=False)
    assert set(a.lag1) == {"plain + BN", "ResNet + BN"}
    assert a.lag1["plain + BN"].shape == (2, 3)
    assert a.pair_band["ResNet + BN"].shape == (2, 2)
    assert a.samples[("ResNet + BN", 2)].shape == (3, 32)
    np.testing.assert_array_equal(a.lag1["ResNet + BN"], b.lag1["ResNet + BN"])


def test_depth_explorer_builds_a_widget():
    panel = figs.depth_explorer(units=8, n_inputs=32, max_depth=6)
    assert len(panel.children) == 2


@pytest.mark.parametrize("spec", [scalar.NetSpec(3), scalar.NetSpec(3, batch_norm=True), scalar.NetSpec(3, True, True)])
def test_depth_panel_draws_every_kind_of_net(spec):
    fig = figs.draw_depth_panel(spec, seed=1, units=8, n_inputs=32)
    assert "32 evenly spaced inputs" in fig._suptitle.get_text()
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    plt.close(fig)


def test_decorrelation_lag_is_short_for_white_noise_and_long_for_brown_noise():
    assert stats.decorrelation_lag(stats.white_noise(16, 256, seed=0)) == 1
    # a random walk stays alike for tens of steps
    assert stats.decorrelation_lag(stats.brown_noise(16, 256, seed=0)) > 30
    assert stats.decorrelation_lag(stats.brown_noise(16, 256, seed=0), max_lag=20) is None
    smooth = stats.white_noise(16, 256, seed=1).numpy()
    smooth = np.stack([np.convolve(row, np.ones(8) / 8, mode="same") for row in smooth])  # correlated over ~8 steps
    assert 5 <= stats.decorrelation_lag(smooth) <= 9
    with pytest.raises(ValueError, match="level must be"):
        stats.decorrelation_lag(smooth, level=1.5)


def test_every_series_of_figure_2_has_its_own_colour():
    specs = [scalar.NetSpec(1), scalar.NetSpec(24), scalar.NetSpec(24, batch_norm=True), scalar.NetSpec(50, True, True)]
    colours = [figs.net_style(s)["color"] for s in specs] + [
        figs.net_style(k)["color"] for k in ("white noise", "brown noise")
    ]
    assert len(set(colours)) == len(colours)
