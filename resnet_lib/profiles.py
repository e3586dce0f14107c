"""Run profiles: the one place that says how big every experiment is.

Choose a profile with the environment variable ``RESNET_BOOK_PROFILE`` (``ci``,
``default`` or ``full``) or from Python with :func:`set_profile`. Chapters ask for
``get_profile().cifar`` and never hard-code sizes.

* ``ci``: the whole book on 2 CPU cores in minutes; small images, few epochs.
* ``default``: a reader's laptop; the same experiments at a budget where the
  paper's orderings show more fully (tens of minutes on a CPU).
* ``full``: the paper's CIFAR-10 recipe (45k/5k split, 64k iterations), for a GPU.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

import torch

from resnet_lib.recipe import Recipe, check_depth, check_whole

PROFILE_ENV = "RESNET_BOOK_PROFILE"


@dataclass(frozen=True)
class DataSpec:
    """Which images, how many, and at which resolution.

    ``dataset`` is ``"auto"`` (CIFAR-10 when it can be had, else the stand-in),
    ``"cifar10"`` or ``"standin"``. ``n_train``/``n_test`` of ``None`` mean all.
    ``n_val`` images are held out of the training set (the paper's 45k/5k split).
    """

    dataset: str = "auto"
    n_train: int | None = None
    n_test: int | None = None
    n_val: int = 0
    image_size: int = 32

    def __post_init__(self) -> None:
        for name, minimum, allow_none in (("n_train", 1, True), ("n_test", 1, True), ("n_val", 0, False)):
            object.__setattr__(self, name, check_whole(f"DataSpec.{name}", getattr(self, name), minimum, allow_none))
        if type(self.image_size) is not int or self.image_size not in (32, 16, 8, 4, 2, 1):
            raise ValueError(f"DataSpec.image_size must divide 32 (32, 16, 8, ...), got {self.image_size!r}")


def _divided(recipe: Recipe, factor: int) -> dict:
    """``recipe``'s epochs, warm-up steps and step cap divided by ``factor`` (a ValueError if one is not a multiple)."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a whole number >= 1, got {factor!r}")
    parts = {"epochs": recipe.epochs, "warmup_steps": recipe.warmup_steps, "max_steps": recipe.max_steps}
    uneven = {k: v for k, v in parts.items() if v is not None and v % factor}
    if uneven:
        raise ValueError(f"cannot divide the recipe by {factor}: {uneven} are not multiples of {factor}")
    return {k: None if v is None else v // factor for k, v in parts.items()}


@dataclass(frozen=True)
class CifarExperiment:
    """A set of CIFAR-style networks trained with one recipe on one data spec.

    Nets of ``deep_warmup_from`` layers or more (when set) replace the recipe's warm-up by
    ``deep_warmup_steps`` steps at the constant rate ``deep_warmup_lr``: He et al. warm ResNet-110
    up at 0.01 for about 400 iterations, because 0.1 is "slightly too large to start converging".

    Chapter 3's slow-start control trains the deepest net with ``slow_start_factor`` times the steps of
    the shallowest, every seed (0: no control; the chapter then says it cannot tell degradation from a
    slow start): ``slow_start_by="deep"`` stretches the deep net's recipe (:meth:`longer`, as He et al.'s
    3x-iterations control, their footnote 3), ``"shallow"`` compresses the shallow net's (:meth:`shorter`),
    which costs a fraction of a shallow net's training instead of several deep ones.
    """

    data: DataSpec
    recipe: Recipe
    width: int = 16
    depths: tuple[int, ...] = (20, 56)
    seeds: tuple[int, ...] = (0,)
    deep_warmup_from: int | None = None
    deep_warmup_steps: int = 400
    deep_warmup_lr: float = 0.01
    slow_start_factor: int = 0
    slow_start_by: str = "shallow"

    def longer(self, factor: int) -> CifarExperiment:
        """The same experiment with ``factor`` times the epochs and steps (warm-up unchanged; rate drops
        at the same fractions of training)."""
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a whole number >= 1, got {factor!r}")
        steps = None if self.recipe.max_steps is None else self.recipe.max_steps * factor
        return replace(self, recipe=replace(self.recipe, epochs=self.recipe.epochs * factor, max_steps=steps))

    def shorter(self, factor: int) -> CifarExperiment:
        """The same experiment compressed ``factor`` times: epochs, warm-up and step cap divided by ``factor``
        (rate drops at the same fractions of training), so the schedule keeps its shape in fewer steps; the
        compressed experiment has no slow-start control of its own."""
        return replace(self, recipe=replace(self.recipe, **_divided(self.recipe, factor)), slow_start_factor=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", check_whole("CifarExperiment.width", self.width, 1))
        factor = check_whole("CifarExperiment.slow_start_factor", self.slow_start_factor, 0)
        object.__setattr__(self, "slow_start_factor", factor)
        if self.slow_start_by not in ("deep", "shallow"):
            raise ValueError(f"CifarExperiment.slow_start_by must be 'deep' or 'shallow', got {self.slow_start_by!r}")
        if factor == 1:
            raise ValueError("CifarExperiment.slow_start_factor must be 0 (no control) or at least 2, got 1")
        if factor and self.slow_start_by == "shallow":
            _divided(self.recipe, factor)  # a one-line ValueError now, not when chapter 3 runs

    def recipe_for(self, depth: int) -> Recipe:
        """The recipe a net of ``depth`` layers trains with (the deep warm-up applied where it is due)."""
        if self.deep_warmup_from is not None and depth >= self.deep_warmup_from:
            return replace(self.recipe, warmup_steps=self.deep_warmup_steps, warmup_lr=self.deep_warmup_lr)
        return self.recipe


@dataclass(frozen=True)
class FeatureExperiment:
    """Chapter 1: linear probes on the frozen features of one trained ConvNet.

    The ConvNet is not trained for this chapter alone: it is the CIFAR experiment's
    ResNet-``depth`` (``cifar_run("residual", depth, profile.cifar)``, its first seed),
    which chapters 3 and 5 train too, so the results cache trains it once for the book.
    These fields size only the probes:

    * ``pool``: every layer's feature maps are average-pooled to ``pool`` x ``pool`` first;
    * ``probe_l2``, ``probe_iterations``: L2 penalty and L-BFGS iterations of each probe;
    * ``baseline_l2s``: penalties tried for the raw-pixel and PCA baselines, which get their best;
    * ``baseline_val_fraction``: share of the training images held out to choose that penalty;
    * ``pca_components``: principal components of the pixels kept for the hand-made baseline;
    * ``compare_pools``: grid sizes at which the first and last layer are probed too;
    * ``seeds``: seeds of the untrained control nets (a probe is convex and needs no seed).
    """

    depth: int = 20
    pool: int = 2
    probe_l2: float = 1e-3
    probe_iterations: int = 100
    baseline_l2s: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
    pca_components: int = 64
    compare_pools: tuple[int, ...] = (1, 2, 4)
    seeds: tuple[int, ...] = (0, 1, 2)
    baseline_val_fraction: float = 0.1


@dataclass(frozen=True)
class GradientFlowExperiment:
    """Chapter 2: per-layer gradient norms of deep plain nets, and a run that explodes.

    ``depth`` counts weight layers, the classifier included; fully connected nets have
    ``mlp_width`` units per layer, convolutional ones ``conv_width`` channels. Gradients are
    measured on the first ``batch_size`` training images, at initialization and after
    ``train_steps`` SGD steps (constant ``lr``, ``momentum``, no weight decay, no
    augmentation); the exploding run and its BatchNorm twin train for ``explode_steps``.
    ``compound_depths``: depths at which the two kinds of explosion are compared at initialization.
    """

    data: DataSpec = DataSpec(n_train=2048, n_test=512, image_size=16)
    depth: int = 20
    mlp_width: int = 64
    conv_width: int = 8
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    train_steps: int = 20
    explode_steps: int = 150
    seeds: tuple[int, ...] = (0, 1, 2)
    compound_depths: tuple[int, ...] = (5, 10, 20, 40)
    #: Init scales of the static grid of settings (the explorer's slider reaches the same range).
    init_scales: tuple[float, ...] = (0.5, 1.0, 2.0)

    def width_for(self, arch: str) -> int:
        """The width of an ``"mlp"`` or ``"conv"`` net."""
        if arch not in ("mlp", "conv"):
            raise ValueError(f"unknown architecture {arch!r}; choose one of: mlp, conv")
        return self.mlp_width if arch == "mlp" else self.conv_width

    def recipe(self, steps: int, n_train: int) -> Recipe:
        """A constant-learning-rate recipe that stops after ``steps`` steps on ``n_train`` images."""
        if steps < 1 or n_train < 1:
            raise ValueError(f"recipe needs steps >= 1 and n_train >= 1, got {steps} and {n_train}")
        steps_per_epoch = -(-n_train // self.batch_size)
        return Recipe(
            epochs=-(-steps // steps_per_epoch),
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=0.0,
            lr_milestones=(),
            augment=False,
            channels_last=False,
            max_steps=steps,
        )


@dataclass(frozen=True)
class ShatteringExperiment:
    """Chapter 4: Balduzzi et al. (2017), scalar-to-scalar nets at initialization.

    ``units`` per hidden layer and ``n_inputs`` points on [-2, 2] are the paper's. Every
    kind of net is measured at every depth in ``depths`` (which must hold 1, 24 and 50,
    the nets of the paper's Fig. 1) with one random initialization per seed; the
    covariance matrices and the correlation between inputs are taken over those nets.
    """

    units: int = 200
    n_inputs: int = 256
    depths: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50)
    seeds: tuple[int, ...] = tuple(range(40))
    max_lag: int = 64


@dataclass(frozen=True)
class ResponsesExperiment:
    """Chapter 5: what the trained and untrained nets of the CIFAR experiment do inside.

    Nothing is trained for this chapter's measurements; these fields size them:

    * ``gradient_batch``: training images the per-layer gradient norms are measured on;
    * ``response_images``: test images the layer responses' standard deviations are taken over;
    * ``line_pairs``: pairs of test images (0-1, 2-3, ...) between which input gradients are
      taken along a line; ``line_reference_images``: training images the BatchNorm statistics
      of the untrained nets are set from for that measurement.
    """

    gradient_batch: int = 128
    response_images: int = 500
    line_pairs: int = 4
    line_reference_images: int = 512

    def __post_init__(self) -> None:
        for name in ("gradient_batch", "response_images", "line_pairs", "line_reference_images"):
            object.__setattr__(self, name, check_whole(f"ResponsesExperiment.{name}", getattr(self, name), 1))


@dataclass(frozen=True)
class PathsExperiment:
    """Chapter 6: lesions and paths of trained nets (Veit, Wilber & Belongie, 2016).

    Nothing is trained for this chapter: it measures the CIFAR experiment's
    ResNet-``depth`` and plain-``depth`` (``cifar_run(family, depth, profile.cifar)``,
    every seed of it), which chapters 3 and 5 train. These fields size the measurements:

    * ``n_test``: test images every lesion is scored on, the first of the experiment's test
      split (``None``: all of them);
    * ``deletion_ks``, ``deletion_draws``: numbers of blocks deleted at random, and random
      draws of the deleted blocks per number;
    * ``path_samples``: sampled (image, path) pairs per path length for the gradient per
      path length, on images drawn from the first ``path_images`` training images.
    """

    depth: int = 56
    n_test: int | None = None
    deletion_ks: tuple[int, ...] = tuple(range(1, 11))
    deletion_draws: int = 20
    path_samples: int = 200
    path_images: int = 1000


@dataclass(frozen=True)
class LandscapeExperiment:
    """Chapter 7: Li et al. (2018), the loss around chapter 5's trained nets.

    The loss, error and Hessian are those of the first ``n_images`` training images (BatchNorm
    in eval mode). Slices run over ``[-span, span]`` along filter-normalized random directions
    (the paper's plots span [-1, 1]): ``points_1d`` steps along one direction, a
    ``points_2d`` x ``points_2d`` grid on two, for the first seed's nets;
    ``direction_seed`` draws the directions. The largest and most negative Hessian eigenvalue
    of the first ``hessian_seeds`` seeds' nets (``None``: every seed) are estimated with
    ``lanczos_iterations`` Hessian-vector products.
    """

    n_images: int = 1000
    span: float = 1.0
    points_1d: int = 41
    points_2d: int = 25
    lanczos_iterations: int = 40
    hessian_seeds: int | None = None
    direction_seed: int = 0


@dataclass(frozen=True)
class ConvergedExperiment:
    """Chapters 1 and 5-7 on nets trained to convergence: the published CIFAR-10 ResNets
    (:mod:`resnet_lib.models.published`), evaluated here, never trained.

    * ``depths``: the published ResNets scored (20, 32, 44, 56 exist);
    * ``n_test``: test photos they are scored on, the first of the test split (``None``: all
      at hand, the 10,000 of CIFAR-10 or the 846 of the shared subset);
    * ``n_train``: training photos loaded beside them (``None``: all);
    * ``response_images``: test photos He et al.'s Fig. 7 (std of each layer's response) is taken over;
    * ``probe_train``: training photos chapter 1's linear probes on the trained ResNet-56 are fit on;
    * ``lesion_images``, ``deletion_draws``, ``lesion_ks``, ``swap_pairs``: test photos each lesion of
      chapter 6 is scored on (``None``: all loaded), random draws per number of deleted blocks, those
      numbers, and how many neighbour pairs are swapped (``None``: all);
    * ``landscape_images``, ``points_1d``, ``points_2d``, ``lanczos_iterations``: chapter 7's training
      photos for the loss and Hessian, slice resolution and Hessian-vector products.
    """

    depths: tuple[int, ...] = (20, 32, 44, 56)
    n_test: int | None = None
    n_train: int | None = 4500
    response_images: int = 500
    probe_train: int = 4500
    # Chapter 6: the lesions of ResNet-56 and -20 (27 + 9 single deletions, 8 + 4 swaps, 15 random deletions each,
    # every one starting where its first changed block is) took 56 s of CPU on one thread on 500 photos, about 27
    # ResNet-56 passes (2.1 s each); all 846 of the subset's test photos would take about 95 s.
    lesion_images: int | None = 500
    deletion_draws: int = 3
    lesion_ks: tuple[int, ...] = (1, 2, 4, 6, 8)  # numbers of random blocks deleted at once (chapter 6)
    swap_pairs: int | None = 8  # neighbour pairs swapped, evenly spaced over the net (None: every pair; chapter 6)
    # Chapter 7 around the published ResNet-56 at 32x32, one thread: a Hessian-vector product on 64 photos took
    # 3 s of CPU, a forward pass 0.25 s; 64 photos, 11 + 49 slice points and 10 Lanczos steps took 42 s of CPU in
    # all (on 256 photos the Lanczos steps alone would take about 2 minutes).
    landscape_images: int = 64
    points_1d: int = 11
    points_2d: int = 7
    lanczos_iterations: int = 10
    #: Chapters 1 and 5 on the stand-in: test images the published nets are scored on there (their CIFAR-10
    #: weights mean nothing on it, and 200 images show that in ~2 s per net; all 10,000 would take minutes).
    standin_test: int = 200
    #: Chapter 5: disjoint groups of the ``response_images`` that Fig. 7's stds are also taken over, separately.
    response_groups: int = 5

    def __post_init__(self) -> None:
        for depth in self.depths:
            check_depth("ConvergedExperiment.depths", depth)
        for name in ("n_test", "n_train", "lesion_images", "swap_pairs"):
            object.__setattr__(self, name, check_whole(f"ConvergedExperiment.{name}", getattr(self, name), 1, True))
        for name in (
            "response_images", "probe_train", "deletion_draws", "landscape_images", "points_1d", "points_2d",
            "lanczos_iterations",
        ):  # fmt: skip
            object.__setattr__(self, name, check_whole(f"ConvergedExperiment.{name}", getattr(self, name), 1))
        for k in self.lesion_ks:
            check_whole("ConvergedExperiment.lesion_ks", k, 1)


#: The kinds of CIFAR net chapter 8 trains (see :mod:`resnet_lib.chapters.residual_family`).
RESIDUAL_FAMILY_KINDS = ("plain_nobn", "nobn", "skipinit", "original", "zero_gamma", "preact")


@dataclass(frozen=True)
class ResidualFamilyExperiment:
    """Chapter 8: the residual family after 2016 (pre-activation, zero-start branches, no BatchNorm).

    * ``kinds`` at ``depth`` layers and ``width`` filters train with ``recipe`` on ``data``, one run per seed
      of ``seeds`` (the results cache keeps them; ``python -m resnet_lib.fill_cache`` trains them with the rest);
    * ``deep_kinds`` train the same way at ``deep_depth`` layers ("how deep can you go?"; none by default);
    * ``signal_depths``, ``signal_seeds``, ``signal_images``: the forward-signal curves at initialization
      (every kind at every depth and seed, on the first ``signal_images`` training images);
    * ``defect_images``: test images on which the trained nets' blocks are compared with x + F(x).
    """

    data: DataSpec
    recipe: Recipe
    depth: int = 56
    width: int = 16
    seeds: tuple[int, ...] = (0,)
    kinds: tuple[str, ...] = RESIDUAL_FAMILY_KINDS
    deep_depth: int = 110
    deep_kinds: tuple[str, ...] = ()
    signal_depths: tuple[int, ...] = (8, 14, 20, 32, 56, 110)
    signal_seeds: tuple[int, ...] = (0, 1, 2, 3)
    signal_images: int = 32
    defect_images: int = 64

    def __post_init__(self) -> None:
        for name in ("depth", "deep_depth"):
            object.__setattr__(self, name, check_depth(f"ResidualFamilyExperiment.{name}", getattr(self, name)))
        for name in ("width", "signal_images", "defect_images"):
            object.__setattr__(self, name, check_whole(f"ResidualFamilyExperiment.{name}", getattr(self, name), 1))
        unknown = [k for k in self.kinds + self.deep_kinds if k not in RESIDUAL_FAMILY_KINDS]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; choose from: {', '.join(RESIDUAL_FAMILY_KINDS)}")


@dataclass(frozen=True)
class Profile:
    """Everything size-related, one field per experiment.

    ``cifar_on_gpu``, where a profile has one, replaces ``cifar`` when PyTorch sees a
    CUDA device (a Colab GPU runtime, say): the same chapters and checks at a budget a GPU trains
    in minutes and a CPU in hours (:func:`get_profile`).
    """

    name: str
    description: str
    features: FeatureExperiment
    gradient_flow: GradientFlowExperiment
    cifar: CifarExperiment
    shattering: ShatteringExperiment = field(default_factory=ShatteringExperiment)
    paths: PathsExperiment = field(default_factory=PathsExperiment)
    landscape: LandscapeExperiment = field(default_factory=LandscapeExperiment)
    responses: ResponsesExperiment = field(default_factory=ResponsesExperiment)
    converged: ConvergedExperiment = field(default_factory=ConvergedExperiment)
    residual_family: ResidualFamilyExperiment = field(default_factory=lambda: _FAMILY_DEFAULT)
    cifar_on_gpu: CifarExperiment | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def for_device(self, device: str) -> Profile:
        """This profile as it runs on ``device`` (``"cpu"`` or ``"cuda"``): the GPU budget where there is one."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {device!r}; choose 'cpu' or 'cuda'")
        if device == "cuda" and self.cifar_on_gpu is not None:
            return replace(self, cifar=self.cifar_on_gpu, cifar_on_gpu=None)
        return self


# 4,500 training and 800 test images: within the 4,660 + 846 of the real subset that CI has, and a small, said
# part of the full CIFAR-10 a reader downloads (every chapter prints how many images it used).
_SMALL_DATA = DataSpec(dataset="auto", n_train=4500, n_test=800, image_size=16)
# Batch 64 at lr 0.05 (the paper's rate per image, twice its steps per epoch): on real photos, plain-56 at the
# paper's batch 128 and lr 0.1 stayed at chance (86.6% training error after 15 epochs), with batch 64 it learned
# (76.9%). The linear warm-up lasts 320 steps; the rate drops tenfold at 50% and 75% of training, as the paper's.
_SMALL_RECIPE = Recipe(epochs=10, batch_size=64, lr=0.05, warmup_steps=320)

# Chapter 8 at a reader's budget: the 56-layer nets of every kind, and the 2016 and pre-activation ResNet-110,
# for the CIFAR experiment's 10 epochs.
_FAMILY_DEFAULT = ResidualFamilyExperiment(
    data=_SMALL_DATA, recipe=_SMALL_RECIPE, depth=56, seeds=(0, 1), deep_kinds=("original", "preact")
)

PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        description="continuous integration: the whole book on 2 CPU cores in minutes",
        features=FeatureExperiment(),
        gradient_flow=GradientFlowExperiment(),
        # Chapters 1, 3 and 5: 2 families x 2 depths x 2 seeds of 710 steps, trained once for the book in one
        # process per core. Float32, as the paper: bfloat16 is 1.7x faster here, but over 8 seeds it left
        # ResNet-56 at a mean training error of 11% (worst 30%) against float32's 6% (worst 15%) on the stand-in;
        # see benchmarks/README.md.
        # Chapter 3's slow-start control: plain-20 again for half its steps (355), so plain-56 has twice its steps,
        # the divisor of the 10 epochs nearest He et al.'s 3x; 2 x 20 s of CPU on one thread, where stretching
        # plain-56 twice would cost 2 x 150 s. Seeds 0-1 on real photos: plain-20 at 355 steps 66.8%, 65.9%
        # training error (plain-56 at 710: 79.4%, 79.8% on one thread, 82.4%, 86.0% on two); on the stand-in
        # 26.1%, 33.2%.
        cifar=CifarExperiment(data=_SMALL_DATA, recipe=_SMALL_RECIPE, seeds=(0, 1), slow_start_factor=2),
        shattering=ShatteringExperiment(seeds=tuple(range(16))),
        paths=PathsExperiment(n_test=300, deletion_draws=4, path_samples=24, path_images=256),
        # Chapter 7: about 15 s of CPU per 56-layer net (60 slice points and 10 Hessian-vector products on 32 images).
        # 128 images and a 9 x 9 grid made the chapter about 200 s, 64 images about 120 s: over CI's budget.
        landscape=LandscapeExperiment(n_images=32, points_1d=11, points_2d=7, lanczos_iterations=10, hessian_seeds=1),
        # Chapter 8: 56-layer nets of all 6 kinds and the 2016 and pre-activation ResNet-110, 142 steps each on 8x8
        # images: 8-17 s a net at 56 layers and 22-24 s at 110 on one core of an AMD EPYC, 120 s for the 8 (at 16x16
        # and the CIFAR recipe's 710 steps a 56-layer net took 160-350 s).
        residual_family=ResidualFamilyExperiment(
            data=replace(_SMALL_DATA, image_size=8),
            recipe=replace(_SMALL_RECIPE, epochs=2, warmup_steps=50),  # 2 x 71 steps: every epoch whole
            depth=56,
            deep_kinds=("original", "preact"),
        ),
    ),
    "default": Profile(
        name="default",
        description="a reader's laptop: tens of minutes on a CPU, the paper's orderings at a small budget",
        features=FeatureExperiment(),
        gradient_flow=GradientFlowExperiment(train_steps=50, explode_steps=300, seeds=(0, 1, 2, 3, 4)),
        # Twice the ci budget, and plain-56 once more for 3 times that, every seed (chapter 3: slow start or
        # degradation?), as He et al. trained their plain nets 3x longer (footnote 3): 2 x 4,260 steps of plain-56.
        cifar=CifarExperiment(
            data=_SMALL_DATA,
            recipe=replace(_SMALL_RECIPE, epochs=20),
            seeds=(0, 1),
            slow_start_factor=3,
            slow_start_by="deep",
        ),
        # A CUDA device (a Colab GPU runtime) trains all of CIFAR-10 at 32x32 with the paper's batch and rate.
        cifar_on_gpu=CifarExperiment(
            data=DataSpec(dataset="auto", image_size=32), recipe=Recipe(epochs=30, warmup_steps=400), seeds=(0, 1)
        ),
    ),
    "full": Profile(
        name="full",
        description="the paper's CIFAR-10 recipe (45k/5k split, 64k iterations): for a GPU",
        features=FeatureExperiment(seeds=(0, 1, 2, 3, 4)),
        gradient_flow=GradientFlowExperiment(
            data=DataSpec(dataset="cifar10", n_train=10000, n_test=2000),
            conv_width=16,
            train_steps=200,
            explode_steps=1000,
            seeds=(0, 1, 2, 3, 4),
        ),
        cifar=CifarExperiment(
            data=DataSpec(dataset="cifar10", n_val=5000),
            recipe=Recipe(epochs=182, max_steps=64000),
            depths=(20, 32, 44, 56, 110),
            seeds=(0, 1, 2),
            deep_warmup_from=110,
            slow_start_factor=2,  # chapter 3: plain-20 again for 32,000 steps, a quarter of plain-56's GPU time
        ),
        # The paper's plots: 51 x 51 points on [-1, 1] (a GPU's work; the paper's code uses all images).
        landscape=LandscapeExperiment(n_images=5000, points_1d=51, points_2d=51, lanczos_iterations=100),
        # Chapter 8 at the paper's recipe: ResNet-110 of every kind, warmed up at 0.01 for 400 steps as He et al. did.
        residual_family=ResidualFamilyExperiment(
            data=DataSpec(dataset="cifar10", n_val=5000),
            recipe=Recipe(epochs=182, max_steps=64000, warmup_steps=400, warmup_lr=0.01),
            depth=110,
            seeds=(0, 1, 2),
            deep_kinds=("original", "preact"),  # the same runs as the 110-layer ones: nothing more to train
        ),
    ),
}

_override: str | None = None


def _check_name(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return name


def set_profile(name: str | None) -> Profile:
    """Choose the profile for this process (``None`` returns to the environment's)."""
    global _override
    _override = None if name is None else _check_name(name)
    return get_profile()


def profile_name() -> str:
    """The active profile's name: the Python override, else ``$RESNET_BOOK_PROFILE``, else ``default``."""
    return _check_name(_override or os.environ.get(PROFILE_ENV) or "default")


def get_profile(device: str | None = None) -> Profile:
    """The active :class:`Profile`, sized for ``device`` (default: CUDA when PyTorch sees it, else the CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return PROFILES[profile_name()].for_device(device)


__all__ = [
    "PROFILES",
    "PROFILE_ENV",
    "RESIDUAL_FAMILY_KINDS",
    "CifarExperiment",
    "DataSpec",
    "FeatureExperiment",
    "GradientFlowExperiment",
    "LandscapeExperiment",
    "PathsExperiment",
    "Profile",
    "ResidualFamilyExperiment",
    "ShatteringExperiment",
    "get_profile",
    "profile_name",
    "set_profile",
]
