"""Chapter 7 around a converged net: Lanczos against an explicit Hessian, the gradient's sampling noise, the
study's two paths (real photos, stand-in) and the phrases the page glues, each both ways."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from resnet_lib.chapters import loss_landscapes as cl
from resnet_lib.data import ImageDataset
from resnet_lib.measure.curvature import GRADIENT_TOLERANCE
from resnet_lib.measure.landscape import (
    HessianExtremes,
    NoisyGradient,
    gradient_norm,
    gradient_with_noise,
    hessian_extremes,
    hessian_parameters,
    hessian_vector_product,
    lanczos,
    lanczos_tridiagonal,
    ritz_values,
)
from resnet_lib.models import cifar_net
from resnet_lib.profiles import ConvergedExperiment, LandscapeExperiment


def _tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = cifar_net("residual", 8, width=1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _images(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _explicit_hessian(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Hessian of the mean loss over the weights with two or more dimensions, built entry by entry."""
    net = net.double()
    names = [n for n, p in net.named_parameters() if p.dim() > 1]
    shapes = [p.shape for p in hessian_parameters(net)]
    flat = torch.cat([p.detach().flatten() for p in hessian_parameters(net)])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, [math.prod(s) for s in shapes])
        weights = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(net, weights, (x.double(),)), y)

    hessian = torch.autograd.functional.hessian(loss, flat, vectorize=True)
    net.float()
    return hessian


def test_lanczos_extremes_match_the_explicit_hessian_of_a_tiny_cifar_net():
    net, (x, y) = _tiny_net(), _images()
    eigenvalues = torch.linalg.eigvalsh(_explicit_hessian(net, x, y)).numpy()
    n = len(eigenvalues)
    assert eigenvalues[0] < -1e-3 < 1e-3 < eigenvalues[-1]  # an indefinite Hessian, or the test means little
    full = hessian_extremes(net, x, y, iterations=n, progress=False)
    assert full.lambda_max == pytest.approx(eigenvalues[-1], rel=1e-3)
    assert full.lambda_min == pytest.approx(eigenvalues[0], rel=1e-3)
    few = hessian_extremes(net, x, y, iterations=12, progress=False)
    # Ritz values lie inside the spectrum, and one step earlier they were further inside.
    assert eigenvalues[0] - 1e-5 <= few.lambda_min <= few.lambda_min_previous
    assert few.lambda_max_previous <= few.lambda_max <= eigenvalues[-1] + 1e-5
    assert few.lambda_max_change == pytest.approx(few.lambda_max - few.lambda_max_previous)


def test_the_previous_step_estimates_are_those_of_one_step_fewer():
    diagonal = torch.cat([torch.tensor([-3.0, 10.0]), torch.linspace(-0.5, 2.0, 298)])
    alphas, betas = lanczos_tridiagonal(lambda v: diagonal * v, len(diagonal), iterations=9)
    assert len(alphas) == 9 and len(betas) == 8
    shorter = lanczos(lambda v: diagonal * v, len(diagonal), iterations=8)
    assert ritz_values(alphas, betas, 8) == pytest.approx(shorter)


def test_gradient_noise_is_the_standard_error_of_the_batch_mean():
    net, (x, y) = _tiny_net(), _images(12)
    g = gradient_with_noise(net, x, y, batches=4)
    assert g.norm == pytest.approx(gradient_norm(net, x, y), rel=1e-4)  # equal batches: their mean is the mean
    per_batch = []
    for b in range(4):
        loss = nn.functional.cross_entropy(net(x[3 * b : 3 * b + 3]), y[3 * b : 3 * b + 3])
        per_batch.append(torch.cat([t.flatten() for t in torch.autograd.grad(loss, hessian_parameters(net))]))
    G = torch.stack(per_batch).double().numpy()
    want = np.sqrt(((G - G.mean(0)) ** 2).sum() / (4 * 3))
    assert g.noise == pytest.approx(want, rel=1e-5)
    same = gradient_with_noise(net, x[:3].repeat(4, 1, 1, 1), y[:3].repeat(4), batches=4)
    assert same.noise < 1e-6 * same.norm  # identical batches: no sampling noise


def _photos(name: str, n: int = 16) -> ImageDataset:
    x, y = _images(n, seed=5)
    return ImageDataset(name, f"{name} photos", tuple("abcdefghij"), x, y, x[:2], y[:2])


SMALL = ConvergedExperiment(landscape_images=16, points_1d=5, points_2d=3, lanczos_iterations=4)
MAP = cl.CurvatureMapSettings(points=3, iterations=4, images=8, converged_images=8)


def test_on_real_photos_every_measurement_is_taken_and_the_centre_is_the_slices_own():
    result = cl.converged_landscape(
        _tiny_net(), _photos("cifar10"), SMALL, LandscapeExperiment(), progress=False, curvature=MAP
    )
    assert result.measured and result.skipped is None and result.n_images == 16
    s = result.landscape.slice_1d
    assert len(s.steps) == 5 and s.loss[2] == pytest.approx(result.centre_loss, rel=1e-5)
    assert result.landscape.surface.loss.shape == (3, 3) and result.landscape.extremes is None  # the map's centre
    assert result.curvature.loss.shape == (3, 3) and result.curvature.n_images == 8
    assert result.extremes.iterations == 4 and result.extremes.lambda_max == result.curvature.lambda_max[1, 1]
    assert result.gradient.batches == cl.GRADIENT_BATCHES
    assert result.centre_is_lowest == (result.lowest_neighbour >= result.centre_loss * (1 - 1e-5))


def test_on_the_stand_in_only_the_centre_is_measured_and_one_line_says_what_is_not():
    result = cl.converged_landscape(_tiny_net(), _photos("standin"), SMALL, LandscapeExperiment(), progress=False)
    assert not result.measured and result.gradient is None
    assert "\n" not in result.skipped and "mean nothing" in result.skipped
    assert 0 <= result.centre_error <= 1 and result.centre_error_interval[0] <= result.centre_error
    with pytest.raises(ValueError, match="not measured here"):
        _ = result.centre_is_lowest


def _with(result: cl.ConvergedLandscape, norm: float, noise: float, centre_loss: float) -> cl.ConvergedLandscape:
    fields = {k: getattr(result, k) for k in result.__dataclass_fields__}
    return cl.ConvergedLandscape(**{**fields, "gradient": NoisyGradient(norm, noise, 8), "centre_loss": centre_loss})


def test_the_minimizer_phrase_says_either_way():
    result = cl.converged_landscape(
        _tiny_net(), _photos("cifar10"), SMALL, LandscapeExperiment(), progress=False, curvature=MAP
    )
    low, small = result.lowest_neighbour, 0.5 * GRADIENT_TOLERANCE
    assert cl.minimizer_phrase(_with(result, small, small, low / 2)) == "a minimizer"
    assert cl.minimizer_phrase(_with(result, 4 * small, 0.01, low / 2)) == "the trained point"  # gradient too large
    assert cl.minimizer_phrase(_with(result, small, 0.01, low * 2)) == "the trained point"  # a neighbour is lower


def test_the_comparisons_say_either_way_or_not_resolved():
    sharp = HessianExtremes(10.0, -1.0, 10, 9.9, -0.9)
    flat = HessianExtremes(1.0, -0.001, 10, 0.99, -0.001)
    assert cl.sharpness_phrase(sharp, flat) == "sharper than"
    assert cl.sharpness_phrase(flat, sharp) == "flatter than"
    assert cl.convexity_phrase(sharp, flat) == "less convex than"  # ratio 0.1 against 0.001
    assert cl.convexity_phrase(flat, sharp) == "more convex than"
    moving = HessianExtremes(9.0, -1.0, 10, 5.0, -0.2)  # still moving by more than the difference
    assert cl.sharpness_phrase(moving, sharp) == "not resolved from"
    assert cl.convexity_phrase(moving, sharp) == "not resolved from"
    one_step = HessianExtremes(9.0, -1.0, 1)
    assert cl.sharpness_phrase(one_step, flat) == "not resolved from"


def test_bad_input_says_what_is_wrong_in_one_line():
    net, (x, y) = _tiny_net(), _images()
    checks = [
        (lambda: gradient_with_noise(net, x, y, batches=1), "at least 2 batches"),
        (lambda: cl.CurvatureMapSettings(points=4, iterations=8, images=8, converged_images=8), "odd number"),
        (lambda: cl.converged_landscape(net, _photos("cifar10", 8), SMALL, LandscapeExperiment()), "need 16"),
        (lambda: cl.minimizer_phrase(_skipped(net)), "not measured here"),
        (lambda: _skipped(net).extremes, "not measured here"),
    ]
    for call, message in checks:
        with pytest.raises(ValueError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)


def _skipped(net: nn.Module) -> cl.ConvergedLandscape:
    return cl.converged_landscape(net, _photos("standin"), SMALL, LandscapeExperiment(), progress=False)


def test_hessian_vector_product_of_the_tiny_net_is_the_explicit_hessian_times_v():
    net, (x, y) = _tiny_net(), _images()
    hessian = _explicit_hessian(net, x, y)
    hvp, n = hessian_vector_product(net, x, y, batch_size=3)
    v = torch.randn(n, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(hvp(v).double(), hessian @ v.double(), atol=1e-4)
