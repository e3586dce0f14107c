"""Linear probes: how much of the class a logistic regression can read from a layer's frozen features.

Chapter 1 asks whether the deeper layers of a trained ConvNet hold features that make
classification *easier*. A probe answers with one number per layer: freeze the net, take
a layer's feature maps, average-pool them to a small grid, and train a single linear
layer with softmax (multinomial logistic regression) on them. The same probe on raw pixels,
and on pixels projected onto their principal components (the classic hand-engineered
pipeline), are the baselines; the same probe on an *untrained* net of the same
architecture is the control that separates what learning did from what the architecture
gives for free.

Also here: the sample photo matplotlib ships (``grace_hopper.jpg``), prepared as a network
input, for pictures of feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset
from resnet_lib.models.cifar import CifarNet
from resnet_lib.models.state import calibrate_batchnorm, preserved_state
from resnet_lib.profiles import FeatureExperiment
from resnet_lib.threads import thread_limit

SAMPLE_PHOTO = "grace_hopper.jpg"


# --------------------------------------------------------------------------- layers


def probe_layers(net: CifarNet, every_block: bool = True) -> list[str]:
    """Names of the layers to probe, input to output, as keyed by :meth:`CifarNet.feature_maps`.

    ``every_block`` gives the stem and every block's output; otherwise the stem and the
    last block of each stage (``stem``, ``stage1.{n-1}``, ``stage2.{n-1}``, ``stage3.{n-1}``).
    """
    n = len(net.stage1)
    if every_block:
        return ["stem"] + [f"stage{s}.{b}" for s in (1, 2, 3) for b in range(n)]
    return ["stem"] + [f"stage{s}.{n - 1}" for s in (1, 2, 3)]


def layer_depths(net: CifarNet, layers: Sequence[str]) -> list[int]:
    """Convolutional layers from the input to each of ``layers`` (``"pixels"`` is 0, ``"stem"`` 1)."""
    n = len(net.stage1)
    depths = []
    for name in layers:
        if name == "pixels":
            depths.append(0)
        elif name == "stem":
            depths.append(1)
        else:
            stage, block = _parse_block(name, n)
            depths.append(1 + 2 * ((stage - 1) * n + block + 1))
    return depths


def layer_titles(net: CifarNet, layers: Sequence[str]) -> dict[str, str]:
    """Readable names: ``"stem, layer 1"``, ``"stage 2, block 3, layer 13"``, ``"raw pixels"``."""
    n = len(net.stage1)
    titles = {}
    for name, depth in zip(layers, layer_depths(net, layers), strict=True):
        if name in ("pixels", "stem"):
            titles[name] = "raw pixels" if name == "pixels" else "stem, layer 1"
        else:
            stage, block = _parse_block(name, n)
            titles[name] = f"stage {stage}, block {block + 1}, layer {depth}"
    return titles


def _parse_block(name: str, n: int) -> tuple[int, int]:
    try:
        stage_part, block_part = name.split(".")
        stage, block = int(stage_part.removeprefix("stage")), int(block_part)
        if not stage_part.startswith("stage") or stage not in (1, 2, 3) or not 0 <= block < n:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"unknown layer {name!r}; choose 'pixels', 'stem' or 'stage{{1,2,3}}.{{0..{n - 1}}}'"
        ) from None
    return stage, block


# --------------------------------------------------------------------------- features


def _check_layers(net: CifarNet, layers: Sequence[str]) -> None:
    known = probe_layers(net)
    for name in layers:
        if name not in known:
            raise ValueError(f"unknown layer {name!r}; choose from: {', '.join(known)}")


@torch.no_grad()
def pooled_features(
    net: CifarNet,
    x: Tensor,
    wanted: Sequence[tuple[str, int]],
    batch_size: int = 500,
) -> dict[tuple[str, int], Tensor]:
    """Features ``{(layer, pool): (N, channels * pool * pool)}`` for every ``(layer, pool)`` in ``wanted``.

    One forward pass serves every layer and grid size: each layer's maps are average-pooled
    to ``pool`` x ``pool`` and flattened. The net runs in eval mode (frozen BatchNorm
    statistics) and is left in the mode it was in.
    """
    wanted = list(dict.fromkeys(wanted))
    _check_layers(net, [name for name, _ in wanted])
    for _, pool in wanted:
        if not isinstance(pool, int) or pool < 1:
            raise ValueError(f"pool must be a grid size >= 1, got {pool!r}")
    parts: dict[tuple[str, int], list[Tensor]] = {key: [] for key in wanted}
    with preserved_state(net):
        for i in range(0, len(x), batch_size):
            maps = net.feature_maps(x[i : i + batch_size])
            for name, pool in wanted:
                parts[name, pool].append(F.adaptive_avg_pool2d(maps[name], pool).flatten(1))
    return {key: torch.cat(chunks) for key, chunks in parts.items()}


def frozen_features(
    net: CifarNet,
    x: Tensor,
    layers: Sequence[str] | None = None,
    pool: int = 2,
    batch_size: int = 500,
) -> dict[str, Tensor]:
    """Each layer's feature maps for images ``x``, average-pooled to ``pool`` x ``pool`` and flattened.

    Returns ``{layer: (N, channels * pool * pool)}``; ``layers`` defaults to :func:`probe_layers`.
    """
    layers = list(layers) if layers is not None else probe_layers(net)
    features = pooled_features(net, x, [(name, pool) for name in layers], batch_size)
    return {name: features[name, pool] for name in layers}


def pixel_features(x: Tensor) -> Tensor:
    """Raw pixels as features: each image flattened to one row, ``(N, C * H * W)``."""
    return x.flatten(1)


def pca_features(train: Tensor, test: Tensor, components: int) -> tuple[Tensor, Tensor]:
    """Project ``train`` and ``test`` rows onto the top ``components`` principal directions of ``train``.

    The classic hand-made pipeline before ConvNets: centre, keep the directions of largest
    variance, then fit a linear model on the projections.
    """
    if not 1 <= components <= min(train.shape):
        raise ValueError(f"components must be in 1..{min(train.shape)}, got {components!r}")
    mean = train.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(train - mean, full_matrices=False)
    basis = vh[:components].T
    return (train - mean) @ basis, (test - mean) @ basis


def grey_share(weight: Tensor) -> Tensor:
    """For each filter ``(out, in, k, k)``, the share of its squared weights in its colour-blind part.

    The colour-blind part is the mean over input channels, repeated in every channel: the
    same spatial pattern in red, green and blue, which responds to brightness only. A filter
    that ignores colour has a share of 1; for random weights it is ``1 / in`` on average.
    """
    if weight.dim() != 4:
        raise ValueError(f"weight must be a convolution's (out, in, k, k), got shape {tuple(weight.shape)}")
    w = weight.detach().float()
    grey = w.mean(dim=1, keepdim=True).expand_as(w)
    return grey.pow(2).sum(dim=(1, 2, 3)) / w.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-12)


def untrained_copy(net: CifarNet, seed: int, calibrate_on: Tensor | None = None) -> CifarNet:
    """A freshly initialized net of ``net``'s architecture (He init), in eval mode.

    Seeded with ``seed`` without touching the global random state. With ``calibrate_on``,
    its BatchNorm statistics are set from those images (:func:`calibrate_batchnorm`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        copy = net.fresh_copy()
    if calibrate_on is not None:
        calibrate_batchnorm(copy, calibrate_on)
    return copy.eval()


# --------------------------------------------------------------------------- the probe


@dataclass(frozen=True)
class ProbeResult:
    """One trained probe: accuracies (fractions) on its training and test rows."""

    train_accuracy: float
    test_accuracy: float
    n_features: int
    #: True for each test row the probe classifies wrongly (for paired tests between probes on the same rows).
    test_mistakes: np.ndarray | None = field(default=None, repr=False, compare=False)


#: Probes on at most this many feature values (rows x features) run on one CPU thread.
SMALL_PROBE = 8_000_000


def logistic_regression(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    l2: float = 1e-3,
    max_iter: int = 100,
    threads: int | Literal["auto"] | None = "auto",
) -> tuple[Tensor, Tensor]:
    """Weights ``(num_classes, D)`` and bias minimizing mean cross-entropy + ``l2 / 2`` * squared weights.

    The loss is convex, so full-batch L-BFGS from zero weights finds its minimum in
    ``max_iter`` iterations without a learning rate or a seed. ``threads`` caps PyTorch's
    CPU threads while fitting (restored after); ``"auto"`` means one thread for problems of
    at most :data:`SMALL_PROBE` values, where a second thread gains nothing on an idle
    machine and, measured on a busy 2-core one, made a probe 10-20x slower while the
    threads waited on each other; ``None`` leaves the setting alone.
    """
    if max_iter < 1 or l2 < 0:
        raise ValueError(f"max_iter must be >= 1 and l2 >= 0, got {max_iter} and {l2}")
    if threads == "auto":
        threads = 1 if x.numel() <= SMALL_PROBE else None
    elif threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int, 'auto' or None, got {threads!r}")
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-7, tolerance_change=1e-10,
    )  # fmt: skip

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(F.linear(x, weight, bias), y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with thread_limit(threads), torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    l2: float = 1e-3,
    max_iter: int = 100,
    num_classes: int | None = None,
    threads: int | Literal["auto"] | None = "auto",
) -> ProbeResult:
    """A linear probe: :func:`logistic_regression` on standardized frozen features, scored on both splits.

    Features are standardized with the training rows' mean and standard deviation, so the
    penalty treats every feature alike. Deterministic: the same inputs give the same probe.
    """
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) with equal D, got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("features and labels must have the same number of rows")
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    train_x, test_x = train_x.detach().float(), test_x.detach().float()
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    weight, bias = logistic_regression(train_x, train_y, num_classes, l2=l2, max_iter=max_iter, threads=threads)
    train_acc = (F.linear(train_x, weight, bias).argmax(1) == train_y).float().mean().item()
    test_right = F.linear(test_x, weight, bias).argmax(1) == test_y
    test_acc = test_right.float().mean().item()
    return ProbeResult(train_acc, test_acc, train_x.shape[1], (~test_right).cpu().numpy())


# --------------------------------------------------------------------------- chapter 1's study


@dataclass
class LayerProbes:
    """Probes on every layer of one net, at the experiment's grid size and (first and last layer) at others."""

    layers: list[str]
    depths: list[int]
    pool: int
    results: dict[str, ProbeResult]
    by_pool: dict[int, dict[str, ProbeResult]]

    def test_accuracies(self) -> list[float]:
        """Probe test accuracy of every layer, input to output."""
        return [self.results[name].test_accuracy for name in self.layers]

    @property
    def first(self) -> ProbeResult:
        """The probe on the first layer (the stem)."""
        return self.results[self.layers[0]]

    @property
    def last(self) -> ProbeResult:
        """The probe on the last layer (the end of the last stage, what the classifier sees)."""
        return self.results[self.layers[-1]]

    def stage_starts(self) -> list[tuple[int, str]]:
        """``(depth, "stage s")`` of the first block of every stage, for marking stages on a depth axis."""
        return [
            (d, f"stage {name[5]}") for name, d in zip(self.layers, self.depths, strict=True) if name.endswith(".0")
        ]

    @property
    def best_layer(self) -> str:
        """The layer whose probe has the highest test accuracy (the first of equals)."""
        return max(self.layers, key=lambda name: self.results[name].test_accuracy)


def layer_probes(
    net: CifarNet,
    data: ImageDataset,
    experiment: FeatureExperiment,
    compare_pools: Sequence[int] = (),
    progress: bool = True,
    desc: str = "probes",
) -> LayerProbes:
    """A linear probe on every layer of ``net`` (stem and every block), trained on ``data.train_*``.

    Features are pooled to ``experiment.pool``; the first and last layer are also probed at
    every grid size in ``compare_pools``, to show how much the choice of grid matters.
    """
    layers = probe_layers(net)
    ends = [layers[0], layers[-1]]
    wanted = [(name, experiment.pool) for name in layers] + [(name, p) for p in compare_pools for name in ends]
    wanted = list(dict.fromkeys(wanted))
    bar = tqdm(total=len(wanted) + 2, desc=desc, disable=not progress, leave=False)
    bar.set_postfix_str("features")
    train = pooled_features(net, data.train_x, wanted)
    bar.update(1)
    test = pooled_features(net, data.test_x, wanted)
    bar.update(1)
    bar.set_postfix_str("probes")
    fitted: dict[tuple[str, int], ProbeResult] = {}
    for key in wanted:
        fitted[key] = fit_linear_probe(
            train[key], data.train_y, test[key], data.test_y,
            l2=experiment.probe_l2, max_iter=experiment.probe_iterations, num_classes=len(data.classes),
        )  # fmt: skip
        bar.update(1)
    bar.close()
    results = {name: fitted[name, experiment.pool] for name in layers}
    by_pool = {p: {name: fitted[name, p] for name in ends} for p in (*compare_pools,)}
    return LayerProbes(layers, layer_depths(net, layers), experiment.pool, results, by_pool)


@dataclass(frozen=True)
class BaselineProbe:
    """A probe on hand-made features, with the L2 penalty chosen on a validation split.

    ``result`` is the probe refitted with penalty ``l2`` on all training images and scored on the
    test images; ``by_l2`` holds, for every penalty tried, the probe fitted on the training images
    outside the validation split, whose ``test_accuracy`` there is its accuracy *on the validation
    split* (the test images play no part in choosing ``l2``).
    """

    result: ProbeResult
    l2: float
    by_l2: dict[float, ProbeResult]


def validation_split(n: int, fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices ``(fit, validation)`` of a seeded random split of ``n`` rows, ``fraction`` of them held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must lie strictly between 0 and 1, got {fraction}")
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ValueError(f"{n} rows are too few to hold out {fraction:.0%} of them and fit on the rest")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:], order[:n_val]


def baseline_probes(
    data: ImageDataset, experiment: FeatureExperiment, progress: bool = True
) -> dict[str, BaselineProbe]:
    """Probes on raw pixels and on their top principal components: ``{"raw pixels": ..., "PCA": ...}``.

    Each penalty in ``experiment.baseline_l2s`` is fitted on the training images outside a
    validation split (``experiment.baseline_val_fraction`` of them, seeded) and scored on that
    split; the best one is refitted on all training images and scored once on the test images.
    The principal components come from the training images' pixels (no labels, no test images).
    """
    pixels = pixel_features(data.train_x), pixel_features(data.test_x)
    sets = {"raw pixels": pixels, "PCA": pca_features(*pixels, experiment.pca_components)}
    fit_rows, val_rows = validation_split(len(data.train_y), experiment.baseline_val_fraction)
    jobs = [(name, l2) for name in sets for l2 in experiment.baseline_l2s]
    fitted: dict[str, dict[float, ProbeResult]] = {name: {} for name in sets}
    bar = tqdm(total=len(jobs) + len(sets), desc="baseline probes", disable=not progress, leave=False)
    for name, l2 in jobs:
        train_f = sets[name][0]
        fitted[name][l2] = fit_linear_probe(
            train_f[fit_rows], data.train_y[fit_rows], train_f[val_rows], data.train_y[val_rows],
            l2=l2, max_iter=experiment.probe_iterations, num_classes=len(data.classes),
        )  # fmt: skip
        bar.update(1)
    out = {}
    for name, by_l2 in fitted.items():
        best = max(by_l2, key=lambda l2: by_l2[l2].test_accuracy)  # accuracy on the validation split
        train_f, test_f = sets[name]
        result = fit_linear_probe(
            train_f, data.train_y, test_f, data.test_y,
            l2=best, max_iter=experiment.probe_iterations, num_classes=len(data.classes),
        )  # fmt: skip
        bar.update(1)
        out[name] = BaselineProbe(result, best, by_l2)
    bar.close()
    return out


# --------------------------------------------------------------------------- a real photo


def sample_photo(size: int, name: str = SAMPLE_PHOTO) -> Tensor:
    """A photo matplotlib ships, centre-cropped to a square and resized to ``size`` x ``size``.

    Returns a float tensor ``(3, size, size)`` with values in [0, 1].
    """
    import matplotlib.image as mpimg
    from matplotlib import cbook

    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    with cbook.get_sample_data(name) as f:
        image = torch.from_numpy(mpimg.imread(f, format=name.rsplit(".", 1)[-1]).copy())
    image = image[..., :3].permute(2, 0, 1).float()
    image = image / 255 if image.max() > 1 else image
    h, w = image.shape[1:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[:, top : top + side, left : left + side]
    resized = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].clamp(0, 1)


def standardize_photo(photo: Tensor) -> Tensor:
    """Shift and scale one photo the way the training images were: mean removed, divided by one std.

    The training set's own statistics are not kept with the data, so the photo's are used:
    each colour channel's mean is removed and the result divided by the overall standard
    deviation, which puts the photo on the scale the net was trained on.
    """
    centred = photo - photo.mean(dim=(-2, -1), keepdim=True)
    return centred / centred.std().clamp_min(1e-6)


@torch.no_grad()
def photo_feature_maps(net: CifarNet, photo: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Feature maps ``{layer: (channels, H, W)}`` of one standardized photo ``(3, H, W)``."""
    if photo.dim() != 3:
        raise ValueError(f"photo must be one image (3, H, W), got shape {tuple(photo.shape)}")
    layers = list(layers) if layers is not None else probe_layers(net, every_block=False)
    with preserved_state(net):
        maps = net.feature_maps(photo[None])
    unknown = [name for name in layers if name not in maps]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}; choose from: {', '.join(maps)}")
    return {name: maps[name][0] for name in layers}


__all__ = [
    "SAMPLE_PHOTO",
    "SMALL_PROBE",
    "BaselineProbe",
    "LayerProbes",
    "ProbeResult",
    "baseline_probes",
    "fit_linear_probe",
    "frozen_features",
    "grey_share",
    "layer_depths",
    "layer_probes",
    "layer_titles",
    "logistic_regression",
    "pca_features",
    "photo_feature_maps",
    "pixel_features",
    "pooled_features",
    "probe_layers",
    "sample_photo",
    "standardize_photo",
    "untrained_copy",
]
