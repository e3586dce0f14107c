"""Chapter 7: the loss landscape around a trained net (Li, Xu, Taylor, Studer & Goldstein, 2018).

* :func:`random_direction` draws a Gaussian direction in weight space and *filter-normalizes*
  it: each filter of the direction (each output channel of a convolution, each row of the
  classifier) is scaled to the norm of the same filter of the trained weights. Like the
  paper's own code (``ignore='biasbn'``), the direction is zero on every parameter with one
  dimension or fewer (biases, BatchNorm's scale and shift), so those stay at their trained values.
* :func:`loss_slice_1d` and :func:`loss_surface_2d` evaluate the training loss and error at
  ``weights + a * d1 (+ b * d2)`` on a grid, with BatchNorm in eval mode: its running mean and
  variance stay the trained ones, so every grid point is the same fixed function of the weights.
* :func:`hessian_extremes` estimates the largest and the most negative eigenvalue of the
  Hessian of the training loss (over the same weights the directions move: those with two or
  more dimensions, as the paper's code), by Lanczos iteration on Hessian-vector products
  computed with autograd's double backward; :mod:`resnet_lib.measure.curvature` maps them over the plane.

Nothing here draws; the figures are in :mod:`resnet_lib.plots.loss_landscapes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.models.state import preserved_state
from resnet_lib.profiles import LandscapeExperiment

NORMALIZATIONS = ("filter", "none")


def _check_images(x: Tensor, y: Tensor) -> None:
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need as many labels as images, and at least one: got {len(x)} images, {len(y)} labels")


def random_direction(model: nn.Module, seed: int, normalization: str = "filter") -> list[Tensor]:
    """A random direction with one tensor per parameter of ``model`` (in ``model.parameters()`` order).

    ``normalization="filter"`` scales each filter ``d[k]`` to ``||w[k]||``, the norm of the same
    filter of the weights (Li et al., section 4); ``"none"`` leaves the Gaussian draw as it is.
    Either way, parameters with one dimension or fewer (biases, BatchNorm's weight and bias)
    get a zero direction, as in the paper's code. The draw depends only on ``seed`` and the shapes.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    generator = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        w = p.detach().cpu()
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype)
        if w.dim() <= 1:
            d.zero_()
        elif normalization == "filter":
            w_norms = w.flatten(1).norm(dim=1)
            d_norms = d.flatten(1).norm(dim=1)
            d *= (w_norms / (d_norms + 1e-10)).view(-1, *([1] * (w.dim() - 1)))
        direction.append(d.to(p.device))
    return direction


@contextmanager
def displaced(model: nn.Module, directions: Sequence[Sequence[Tensor]], steps: Sequence[float]) -> Iterator[nn.Module]:
    """Temporarily set the weights to ``w + sum(step * direction)``; the trained weights come back after."""
    params = list(model.parameters())
    if len(directions) != len(steps):
        raise ValueError(f"need one step per direction: got {len(directions)} directions and {len(steps)} steps")
    for d in directions:
        if len(d) != len(params):
            raise ValueError(f"a direction has {len(d)} tensors but the model has {len(params)} parameters")
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for i, p in enumerate(params):
                for d, step in zip(directions, steps, strict=True):
                    if step:
                        p.add_(d[i], alpha=float(step))
        yield model
    finally:
        with torch.no_grad():
            for p, w in zip(params, saved, strict=True):
                p.copy_(w)


@torch.no_grad()
def loss_and_error(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and error rate (a fraction) of ``model`` on ``(x, y)``, BatchNorm in eval mode."""
    _check_images(x, y)
    with preserved_state(model):
        loss, wrong = 0.0, 0
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size])
            loss += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
            wrong += (logits.argmax(1) != y[i : i + batch_size]).sum().item()
        return loss / len(x), wrong / len(x)


@torch.no_grad()
def per_image_loss(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Each image's cross-entropy and whether it is misclassified, BatchNorm in eval mode."""
    _check_images(x, y)
    with preserved_state(model):
        losses, wrong = [], []
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size])
            losses.append(F.cross_entropy(logits, y[i : i + batch_size], reduction="none"))
            wrong.append(logits.argmax(1) != y[i : i + batch_size])
        return torch.cat(losses).double().numpy(), torch.cat(wrong).numpy()


def slice_steps(span: float, points: int) -> np.ndarray:
    """``points`` evenly spaced steps from ``-span`` to ``span`` (0 included when ``points`` is odd)."""
    if points < 3 or span <= 0:
        raise ValueError(f"a slice needs at least 3 points and a positive span, got {points} points, span {span}")
    return np.linspace(-span, span, points)


@dataclass(frozen=True)
class Slice1D:
    """Training loss and error (fraction) at ``w + step * d`` for each step."""

    steps: np.ndarray
    loss: np.ndarray
    error: np.ndarray


@dataclass(frozen=True)
class Surface2D:
    """Training loss and error at ``w + a * d1 + b * d2``; ``loss[j, i]`` is at ``(a_i, b_j)``."""

    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    error: np.ndarray

    @property
    def center_loss(self) -> float:
        return float(self.loss[len(self.b) // 2, len(self.a) // 2])


def loss_slice_1d(
    model: nn.Module, direction: Sequence[Tensor], x: Tensor, y: Tensor, steps: np.ndarray, progress: bool = True
) -> Slice1D:
    """The training loss and error along one direction, at ``steps``."""
    loss, error = [], []
    for step in tqdm(steps, desc="1-D slice", unit="point", disable=not progress, leave=False):
        with displaced(model, [direction], [step]):
            loss_i, error_i = loss_and_error(model, x, y)
        loss.append(loss_i)
        error.append(error_i)
    return Slice1D(np.asarray(steps), np.asarray(loss), np.asarray(error))


def loss_surface_2d(
    model: nn.Module,
    directions: tuple[Sequence[Tensor], Sequence[Tensor]],
    x: Tensor,
    y: Tensor,
    steps: np.ndarray,
    progress: bool = True,
    desc: str = "2-D surface",
) -> Surface2D:
    """The training loss and error on the grid ``steps x steps`` spanned by two directions."""
    loss = np.zeros((len(steps), len(steps)))
    error = np.zeros_like(loss)
    grid = [(j, i) for j in range(len(steps)) for i in range(len(steps))]
    for j, i in tqdm(grid, desc=desc, unit="point", disable=not progress, leave=False):
        with displaced(model, directions, [steps[i], steps[j]]):
            loss[j, i], error[j, i] = loss_and_error(model, x, y)
    return Surface2D(np.asarray(steps), np.asarray(steps), loss, error)


def hessian_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The weights whose Hessian is measured: parameters with two or more dimensions (as the paper's code)."""
    return [p for p in model.parameters() if p.dim() > 1]


def gradient_norm(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Norm of the gradient of the mean training loss over :func:`hessian_parameters` (0 at a minimum)."""
    _check_images(x, y)
    params = hessian_parameters(model)
    with preserved_state(model):
        total = [torch.zeros_like(p) for p in params]
        for i in range(0, len(x), batch_size):
            loss = F.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size], reduction="sum") / len(x)
            for t, g in zip(total, torch.autograd.grad(loss, params), strict=True):
                t += g
        return float(torch.sqrt(sum((t**2).sum() for t in total)))


@dataclass(frozen=True)
class NoisyGradient:
    """The gradient of the mean training loss, with how large it would look if its expectation were zero.

    ``norm`` is ``||g||`` on all the images; ``noise`` is the standard error of that mean gradient,
    ``sqrt(sum_b ||g_b - g||^2 / (B (B - 1)))`` over ``B`` equal batches: a point where the loss over
    all training photos is stationary still shows ``||g|| ~ noise`` on a sample of them.
    """

    norm: float
    noise: float
    batches: int

    @property
    def signal_to_noise(self) -> float:
        return self.norm / self.noise


def gradient_with_noise(model: nn.Module, x: Tensor, y: Tensor, batches: int = 8) -> NoisyGradient:
    """:func:`gradient_norm` over :func:`hessian_parameters`, with the sampling noise of ``batches`` equal batches."""
    _check_images(x, y)
    if batches < 2 or len(x) < batches:
        raise ValueError(f"need at least 2 batches and one image per batch: got {batches} batches, {len(x)} images")
    params = hessian_parameters(model)
    size = len(x) // batches
    with preserved_state(model):
        flat = []
        for b in range(batches):
            xb, yb = x[b * size : (b + 1) * size], y[b * size : (b + 1) * size]
            grads = torch.autograd.grad(F.cross_entropy(model(xb), yb), params)
            flat.append(torch.cat([g.flatten() for g in grads]).double())
    g = torch.stack(flat)
    mean = g.mean(0)
    noise = torch.sqrt(((g - mean) ** 2).sum() / (batches * (batches - 1)))
    return NoisyGradient(float(mean.norm()), float(noise), batches)


def hessian_vector_product(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500
) -> tuple[Callable[[Tensor], Tensor], int]:
    """``(hvp, n)``: ``hvp(v)`` is the Hessian of the mean training loss on ``(x, y)`` times the flat vector ``v``.

    The Hessian is over :func:`hessian_parameters` (``n`` numbers), with BatchNorm in eval mode,
    computed exactly (up to float rounding) by differentiating ``grad(loss) . v`` once more.
    """
    _check_images(x, y)
    params = hessian_parameters(model)
    n = sum(p.numel() for p in params)

    def hvp(v: Tensor) -> Tensor:
        if v.shape != (n,):
            raise ValueError(f"the vector must have shape ({n},), got {tuple(v.shape)}")
        with preserved_state(model):
            chunks = list(torch.split(v.to(params[0].dtype), [p.numel() for p in params]))
            vs = [c.view_as(p) for c, p in zip(chunks, params, strict=True)]
            total = [torch.zeros_like(p) for p in params]
            for i in range(0, len(x), batch_size):
                xb, yb = x[i : i + batch_size], y[i : i + batch_size]
                loss = F.cross_entropy(model(xb), yb, reduction="sum") / len(x)
                grads = torch.autograd.grad(loss, params, create_graph=True)
                dot = sum((g * u).sum() for g, u in zip(grads, vs, strict=True))
                for t, h in zip(total, torch.autograd.grad(dot, params), strict=True):
                    t += h
            return torch.cat([t.flatten() for t in total]).detach()

    return hvp, n


def lanczos_tridiagonal(
    matvec: Callable[[Tensor], Tensor], n: int, iterations: int, seed: int = 0, progress: bool = False
) -> tuple[list[float], list[float]]:
    """The diagonal and off-diagonal of Lanczos's tridiagonal matrix after ``iterations`` steps (fewer on breakdown)."""
    if iterations < 1 or n < 1:
        raise ValueError(f"Lanczos needs iterations >= 1 and n >= 1, got {iterations} and {n}")
    iterations = min(iterations, n)
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=generator, dtype=torch.float64)
    q /= q.norm()
    basis = [q]
    alphas, betas = [], []
    for k in tqdm(range(iterations), desc="Lanczos", unit="Hv", disable=not progress, leave=False):
        w = matvec(basis[k].float()).double()
        alpha = torch.dot(w, basis[k]).item()
        alphas.append(alpha)
        Q = torch.stack(basis)
        w = w - Q.T @ (Q @ w)  # full re-orthogonalization, twice for safety
        w = w - Q.T @ (Q @ w)
        beta = w.norm().item()
        if k == iterations - 1 or beta < 1e-10 * max(1.0, abs(alpha)):
            break
        betas.append(beta)
        basis.append(w / beta)
    return alphas, betas


def ritz_values(alphas: Sequence[float], betas: Sequence[float], steps: int | None = None) -> np.ndarray:
    """Sorted eigenvalues of the tridiagonal matrix of the first ``steps`` Lanczos steps (``None``: all)."""
    k = len(alphas) if steps is None else steps
    T = np.diag(alphas[:k]) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
    return np.linalg.eigvalsh(T)


def lanczos(matvec: Callable[[Tensor], Tensor], n: int, iterations: int, seed: int = 0, progress: bool = False):
    """Ritz values of a symmetric operator after ``iterations`` Lanczos steps (full re-orthogonalization).

    The extreme Ritz values approach the operator's extreme eigenvalues from inside the
    spectrum; with ``iterations >= n`` they are its eigenvalues. Returns them sorted, as NumPy.
    """
    return ritz_values(*lanczos_tridiagonal(matvec, n, iterations, seed=seed, progress=progress))


@dataclass(frozen=True)
class HessianExtremes:
    """The largest and the most negative Hessian eigenvalue (Lanczos estimates) at one point."""

    lambda_max: float
    lambda_min: float
    iterations: int
    #: The same estimates one Lanczos step earlier (NaN when there was only one step): how far they still move.
    lambda_max_previous: float = float("nan")
    lambda_min_previous: float = float("nan")

    @property
    def ratio(self) -> float:
        """``|lambda_min| / lambda_max``: Li et al.'s measure of non-convexity (0 for a convex point)."""
        return abs(min(self.lambda_min, 0.0)) / self.lambda_max

    @property
    def lambda_max_change(self) -> float:
        """How much the last Lanczos step moved ``lambda_max``: the estimate's own uncertainty."""
        return abs(self.lambda_max - self.lambda_max_previous)

    @property
    def ratio_change(self) -> float:
        """How much the last Lanczos step moved :attr:`ratio`."""
        previous = abs(min(self.lambda_min_previous, 0.0)) / self.lambda_max_previous
        return abs(self.ratio - previous)


def hessian_extremes(
    model: nn.Module, x: Tensor, y: Tensor, iterations: int, seed: int = 0, progress: bool = True
) -> HessianExtremes:
    """Largest and smallest Hessian eigenvalue of the mean training loss on ``(x, y)`` at the model's weights."""
    hvp, n = hessian_vector_product(model, x, y)
    alphas, betas = lanczos_tridiagonal(hvp, n, iterations, seed=seed, progress=progress)
    ritz = ritz_values(alphas, betas)
    previous = ritz_values(alphas, betas, len(alphas) - 1) if len(alphas) > 1 else np.array([np.nan])
    return HessianExtremes(float(ritz[-1]), float(ritz[0]), len(alphas), float(previous[-1]), float(previous[0]))


@dataclass(frozen=True)
class NetLandscape:
    """What chapter 7 measures around one trained net: a 1-D slice, a 2-D surface, the Hessian's extremes."""

    slice_1d: Slice1D
    surface: Surface2D | None
    extremes: HessianExtremes | None


def measure_landscape(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    settings: LandscapeExperiment,
    surface: bool = True,
    progress: bool = True,
    name: str = "net",
    hessian: bool = True,
) -> NetLandscape:
    """Slices along the same two filter-normalized directions (seeds ``direction_seed`` and the next) and (unless
    ``hessian=False``) the Hessian's extreme eigenvalues of the loss on ``(x, y)``, sized by ``settings``."""
    x, y = x[: settings.n_images], y[: settings.n_images]
    d1 = random_direction(model, settings.direction_seed)
    slice_1d = loss_slice_1d(model, d1, x, y, slice_steps(settings.span, settings.points_1d), progress=progress)
    grid = None
    if surface:
        d2 = random_direction(model, settings.direction_seed + 1)
        steps = slice_steps(settings.span, settings.points_2d)
        grid = loss_surface_2d(model, (d1, d2), x, y, steps, progress=progress, desc=f"{name}: 2-D surface")
    iterations, seed = settings.lanczos_iterations, settings.direction_seed
    extremes = hessian_extremes(model, x, y, iterations, seed=seed, progress=progress) if hessian else None
    return NetLandscape(slice_1d, grid, extremes)


__all__ = [
    "NORMALIZATIONS",
    "HessianExtremes",
    "NetLandscape",
    "NoisyGradient",
    "Slice1D",
    "Surface2D",
    "displaced",
    "gradient_norm",
    "gradient_with_noise",
    "hessian_extremes",
    "hessian_parameters",
    "hessian_vector_product",
    "lanczos",
    "lanczos_tridiagonal",
    "loss_and_error",
    "loss_slice_1d",
    "loss_surface_2d",
    "measure_landscape",
    "per_image_loss",
    "random_direction",
    "ritz_values",
    "slice_steps",
]
