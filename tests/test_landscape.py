"""Filter-normalized directions, loss slices and Hessian eigenvalues (resnet_lib.measure.landscape)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from resnet_lib.measure.curvature import (
    GRADIENT_TOLERANCE,
    NONCONVEX_RATIO,
    CurvatureMap,
    compare_at_matched_loss,
    curvature_map,
    curvature_ratio,
    minimizer_words,
    share_tolerance,
)
from resnet_lib.measure.landscape import (
    Surface2D,
    displaced,
    gradient_norm,
    hessian_extremes,
    hessian_vector_product,
    lanczos,
    loss_and_error,
    loss_slice_1d,
    loss_surface_2d,
    random_direction,
    slice_steps,
)
from resnet_lib.models import cifar_net


def _trained_looking_net(family: str = "plain", seed: int = 0) -> nn.Module:
    """A small CIFAR net (BatchNorm after every convolution) with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    net = cifar_net(family, 8, width=4)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-12  # so that rescaling the running variance is exact up to rounding
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return net.eval()


def _data(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _scale_stem_filter(net: nn.Module, k: int, c: float) -> None:
    """Multiply filter ``k`` of the first convolution by ``c`` and adjust its BatchNorm's running
    statistics, so that the net computes the same function (BatchNorm undoes the scale)."""
    conv, bn = net.stem[0], net.stem[1]
    with torch.no_grad():
        conv.weight[k] *= c
        bn.running_mean[k] *= c
        bn.running_var[k] *= c**2


def test_filter_normalized_direction_has_each_filter_at_the_weights_norm():
    net = _trained_looking_net()
    direction = random_direction(net, seed=3)
    for p, d in zip(net.parameters(), direction, strict=True):
        assert d.shape == p.shape
        if p.dim() <= 1:  # biases and BatchNorm parameters are left out, as in Li et al.'s code
            assert torch.count_nonzero(d) == 0
        else:
            assert torch.allclose(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5)


def test_scaling_a_filter_leaves_the_filter_normalized_slice_unchanged():
    net, scaled = _trained_looking_net(), _trained_looking_net()
    _scale_stem_filter(scaled, k=1, c=8.0)
    x, y = _data()
    assert loss_and_error(net, x, y)[0] == pytest.approx(loss_and_error(scaled, x, y)[0], rel=1e-5)
    steps = slice_steps(1.0, 7)
    same = [loss_slice_1d(m, random_direction(m, seed=5), x, y, steps, progress=False).loss for m in (net, scaled)]
    np.testing.assert_allclose(same[0], same[1], rtol=1e-4)
    # Without the normalization the same Gaussian draw moves the scaled filter relatively 8x less,
    # so the two slices differ: the invariance above is the normalization's doing.
    raw = [
        loss_slice_1d(m, random_direction(m, seed=5, normalization="none"), x, y, steps, progress=False).loss
        for m in (net, scaled)
    ]
    assert np.max(np.abs(raw[0] - raw[1])) > 1e-3


def test_displaced_restores_the_weights_and_the_surface_centre_is_the_trained_loss():
    net = _trained_looking_net("residual")
    x, y = _data()
    before = [p.detach().clone() for p in net.parameters()]
    d1, d2 = random_direction(net, seed=0), random_direction(net, seed=1)
    with displaced(net, [d1, d2], [0.5, -0.25]):
        moved = [p.detach().clone() for p in net.parameters()]
    for w, p, m, a, b in zip(before, net.parameters(), moved, d1, d2, strict=True):
        assert torch.equal(w, p)
        assert torch.allclose(m, w + 0.5 * a - 0.25 * b)
    surface = loss_surface_2d(net, (d1, d2), x, y, slice_steps(1.0, 5), progress=False)
    assert surface.loss.shape == surface.error.shape == (5, 5)
    assert surface.center_loss == pytest.approx(loss_and_error(net, x, y)[0], rel=1e-6)
    assert np.all((surface.error >= 0) & (surface.error <= 1))


class _TinyMLP(nn.Module):
    """micrograd-sized: 3 inputs, 4 tanh units, 3 classes, no biases (every parameter is a matrix)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(3, 4, bias=False)
        self.out = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def _exact_hessian(model: nn.Module, x, y) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).double()

    def loss(theta):
        parts = torch.split(theta, [int(np.prod(s)) for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(model.double(), params, (x.double(),)), y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    model.float()
    return hessian


def _tiny_problem():
    torch.manual_seed(0)
    model = _TinyMLP()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)  # large enough weights for a clearly indefinite Hessian
    g = torch.Generator().manual_seed(2)
    return model, torch.randn(12, 3, generator=g), torch.randint(0, 3, (12,), generator=g)


def test_hessian_vector_product_matches_the_exact_hessian():
    model, x, y = _tiny_problem()
    exact = _exact_hessian(model, x, y)
    hvp, n = hessian_vector_product(model, x, y, batch_size=5)  # three batches must add up
    assert n == exact.shape[0] == 3 * 4 + 4 * 3
    v = torch.randn(n, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(hvp(v).double(), exact @ v.double(), atol=1e-5)


def test_gradient_norm_matches_autograd_over_the_weight_matrices():
    model, x, y = _tiny_problem()
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    want = torch.sqrt(sum((g**2).sum() for g in grads)).item()
    assert gradient_norm(model, x, y, batch_size=5) == pytest.approx(want, rel=1e-5)


def test_hessian_extremes_match_the_exact_eigenvalues_of_a_small_net():
    model, x, y = _tiny_problem()
    eigenvalues = torch.linalg.eigvalsh(_exact_hessian(model, x, y)).numpy()
    assert eigenvalues[0] < -1e-2 < 1e-2 < eigenvalues[-1]  # the test needs negative curvature to be meaningful
    full = hessian_extremes(model, x, y, iterations=24, progress=False)
    assert full.lambda_max == pytest.approx(eigenvalues[-1], rel=1e-4, abs=1e-6)
    assert full.lambda_min == pytest.approx(eigenvalues[0], rel=1e-4, abs=1e-6)
    assert full.ratio == pytest.approx(abs(eigenvalues[0]) / eigenvalues[-1], rel=1e-3)
    # Fewer iterations: Ritz values lie inside the spectrum (a lower bound on both magnitudes).
    few = hessian_extremes(model, x, y, iterations=6, progress=False)
    assert eigenvalues[0] - 1e-6 <= few.lambda_min and few.lambda_max <= eigenvalues[-1] + 1e-6


def test_curvature_map_matches_the_exact_eigenvalues_at_every_grid_point():
    """Li et al.'s map against an exact enumeration: the full Hessian at each point of the plane, eigvalsh."""
    model, x, y = _tiny_problem()
    directions = (random_direction(model, seed=1), random_direction(model, seed=2))
    steps = np.array([-1.0, 0.0, 1.0])
    n = sum(p.numel() for p in model.parameters())
    mapped = curvature_map(model, directions, x, y, steps, iterations=n, progress=False)
    exact = np.zeros((3, 3, 2))
    for j, b in enumerate(steps):
        for i, a in enumerate(steps):
            with displaced(model, directions, [a, b]):
                eigenvalues = torch.linalg.eigvalsh(_exact_hessian(model, x, y)).numpy()
                assert mapped.loss[j, i] == pytest.approx(loss_and_error(model, x, y)[0], rel=1e-5)
            exact[j, i] = eigenvalues[-1], eigenvalues[0]
    np.testing.assert_allclose(mapped.lambda_max, exact[..., 0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(mapped.lambda_min, exact[..., 1], rtol=1e-4, atol=1e-6)
    want = curvature_ratio(exact[..., 0], exact[..., 1])
    np.testing.assert_allclose(mapped.ratio, want, rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(mapped.nonconvex(), want > NONCONVEX_RATIO)
    ordered = np.sort(want.ravel())  # a threshold between two points' ratios, so both kinds of point occur
    middle = float(ordered[3] + ordered[4]) / 2
    assert 0 < mapped.share_nonconvex(middle) < 1
    np.testing.assert_array_equal(mapped.nonconvex(middle), want > middle)
    assert mapped.centre_ratio == pytest.approx(want[1, 1], rel=1e-3)


def test_a_convex_loss_maps_to_no_non_convex_point():
    """Softmax regression is convex in its weights: every Hessian eigenvalue is >= 0 everywhere in the plane."""
    torch.manual_seed(0)
    model = nn.Linear(5, 3, bias=False)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(20, 5, generator=g), torch.randint(0, 3, (20,), generator=g)
    directions = (random_direction(model, seed=1), random_direction(model, seed=2))
    mapped = curvature_map(model, directions, x, y, slice_steps(1.0, 3), iterations=15, progress=False)
    assert mapped.ratio.max() < 1e-4
    assert mapped.share_nonconvex() == 0.0


def _map(loss, ratio) -> CurvatureMap:
    loss, ratio = np.asarray(loss, dtype=float), np.asarray(ratio, dtype=float)
    steps = np.linspace(-1, 1, loss.shape[0])
    return CurvatureMap(steps, steps, loss, np.ones_like(loss), -ratio, np.ones_like(loss), -ratio, 10, 100)


def test_the_matched_loss_comparison_counts_only_the_common_loss_range():
    # Net A: low loss, convex; net B: high loss, non-convex. Only losses 2-3 are common to both.
    a = _map([[0.5, 1.0, 2.0], [1.0, 0.1, 2.5], [2.0, 2.5, 3.0]], [[0, 0, 0.5], [0, 0, 0.5], [0.5, 0.5, 0.5]])
    b = _map([[2.0, 2.5, 3.0], [2.5, 2.0, 3.5], [3.0, 4.0, 5.0]], [[0, 0, 0], [0, 0, 0.5], [0, 0.5, 0.5]])
    matched = compare_at_matched_loss(a, b)
    assert matched.band == (2.0, 3.0)
    assert matched.points == (5, 6) and matched.counts == (5, 0)  # a is non-convex at all its points in the band
    assert matched.verdict.direction == "behind"  # a has the larger share at matched loss: less convex
    assert compare_at_matched_loss(b, a).verdict.direction == "ahead"
    # Whole grids would say the opposite: a is non-convex at 5 of 9 points, b at 3 of 9.
    assert a.share_nonconvex() > b.share_nonconvex()
    assert compare_at_matched_loss(a, a).verdict.direction == "unresolved"
    apart = _map(np.full((3, 3), 9.0), np.zeros((3, 3)))
    assert compare_at_matched_loss(a, apart).band is None
    assert compare_at_matched_loss(a, apart).verdict.direction == "unresolved"


def test_a_minimizer_needs_a_gradient_below_the_stated_tolerance():
    assert minimizer_words(0.5 * GRADIENT_TOLERANCE) == "a minimizer"
    assert minimizer_words(6.3) == "the trained point"  # chapter 7's budget plain-56 once was called a minimizer
    assert minimizer_words(GRADIENT_TOLERANCE) == "the trained point"
    assert share_tolerance(2, 4, 2, 4) == pytest.approx(2 * np.sqrt(0.25 * 0.5))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        share_tolerance(3, 2, 0, 1)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        _map(np.zeros((3, 3)), np.zeros((3, 3))).nonconvex(-0.1)


def test_lanczos_finds_the_extremes_of_a_large_diagonal_operator():
    diagonal = torch.cat([torch.tensor([-3.0, 10.0]), torch.linspace(-0.5, 2.0, 998)])
    ritz = lanczos(lambda v: diagonal * v, len(diagonal), iterations=40)
    assert ritz[-1] == pytest.approx(10.0, rel=1e-4)
    assert ritz[0] == pytest.approx(-3.0, rel=1e-3)


def test_bad_input_says_what_is_allowed():
    net = _trained_looking_net()
    x, y = _data()
    with pytest.raises(ValueError, match="choose one of: filter, none"):
        random_direction(net, seed=0, normalization="layer")
    with pytest.raises(ValueError, match="at least 3 points"):
        slice_steps(1.0, 2)
    with pytest.raises(ValueError, match="as many labels as images"):
        loss_and_error(net, x, y[:3])
    with (
        pytest.raises(ValueError, match="one step per direction"),
        displaced(net, [random_direction(net, seed=0)], [0.1, 0.2]),
    ):
        pass
    hvp, n = hessian_vector_product(net, x, y)
    with pytest.raises(ValueError, match=f"shape \\({n},\\)"):
        hvp(torch.zeros(n + 1))


def test_the_contour_figure_draws_every_net_on_one_labelled_colour_scale():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resnet_lib.plots import loss_landscapes as figures

    a = b = np.linspace(-1, 1, 5)
    bowl = 0.1 + np.add.outer(b**2, a**2)
    surfaces = {("plain", 20): Surface2D(a, b, bowl, bowl / 10), ("residual", 20): Surface2D(a, b, 2 * bowl, bowl / 5)}
    fig = figures.plot_contours(surfaces, "synthetic surfaces")
    titles = [ax.get_title() for ax in fig.axes]
    assert "plain-20" in titles and "ResNet-20" in titles
    assert any("training loss (nats" in ax.get_ylabel() for ax in fig.axes)  # the colour bar's label
    assert "synthetic surfaces" in fig._suptitle.get_text()
    plt.close(fig)


def test_the_curvature_map_figure_draws_the_threshold_and_names_the_data():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resnet_lib.plots import loss_landscapes as figures

    ratio = np.array([[0.3, 0.05, 0.0], [0.2, 0.0, 0.0], [0.4, 0.3, 0.02]])
    fig = figures.plot_curvature_maps({"net A": _map(np.ones((3, 3)), ratio)}, 0.1, "synthetic maps")
    assert "synthetic maps" in fig._suptitle.get_text() and "net A" in fig.axes[0].get_title()
    assert "red line: 0.1" in fig.axes[-1].get_ylabel()
    assert sum(t.get_text().endswith("*") for t in fig.axes[0].texts) == 4  # the four points above 0.1
    plt.close(fig)
