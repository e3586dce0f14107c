"""Chapter 8: the residual family after 2016 (pre-activation, zero-start branches, no BatchNorm,
bottlenecks), composed from the library's models, runs and measurements into plain data.

The CIFAR nets of the chapter are "kinds" of one :class:`~resnet_lib.models.CifarNet`:

* ``plain_nobn``: a plain net without BatchNorm (ReLU-conv pairs, He initialization);
* ``nobn``: the same with identity shortcuts, a ResNet without BatchNorm at default initialization;
* ``skipinit``: that ResNet with a learned scalar on every branch, starting at 0 (De & Smith 2020);
* ``original``: the 2016 ResNet (conv-BN-ReLU-conv-BN, ReLU after the sum);
* ``zero_gamma``: the 2016 ResNet with every block's last BatchNorm scale starting at 0 (Goyal et al. 2017);
* ``preact``: the pre-activation ResNet of He et al. (2016b).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from resnet_lib.measure.cost import multiply_adds
from resnet_lib.measure.signal import identity_defects, signal_growth
from resnet_lib.measure.verdicts import compare_seeds
from resnet_lib.models import CifarNet, count_parameters, imagenet_resnet
from resnet_lib.models.imagenet import IMAGENET_LAYOUTS
from resnet_lib.profiles import ResidualFamilyExperiment, profile_name
from resnet_lib.results import StoredRun, load_or_run, stored_run
from resnet_lib.runs import experiment_data, train_in_workers
from resnet_lib.training import History, default_device, fit, resolve_precision

#: The kinds of CIFAR net of this chapter: their label and the :class:`CifarNet` arguments that make them.
KINDS: dict[str, tuple[str, dict]] = {
    "plain_nobn": ("plain, no BN", {"residual": False, "block": "unnormalized"}),
    "nobn": ("ResNet, no BN, default init", {"block": "unnormalized"}),
    "skipinit": ("ResNet, no BN, SkipInit (α = 0)", {"block": "unnormalized", "branch_scale": 0.0}),
    "original": ("ResNet with BN (2016)", {}),
    "zero_gamma": ("ResNet with BN, last γ = 0", {"zero_init_residual": True}),
    "preact": ("pre-activation ResNet", {"block": "preact"}),
}


def check_kind(kind: str) -> str:
    """``kind`` itself when it is one of :data:`KINDS`, else a one-line ``ValueError``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of net {kind!r}; choose one of: {', '.join(KINDS)}")
    return kind


def kind_label(kind: str, depth: int | None = None) -> str:
    """``"pre-activation ResNet"``, or with ``depth``: ``"pre-activation ResNet-56"``-like words."""
    label = KINDS[check_kind(kind)][0]
    return label if depth is None else f"{label}, {depth} layers"


def family_net(kind: str, depth: int, width: int = 16) -> CifarNet:
    """A freshly initialized net of ``kind`` (see :data:`KINDS`) and ``depth`` (6n+2)."""
    return CifarNet(depth, width=width, **KINDS[check_kind(kind)][1])


# ----------------------------------------------------------------------------- at initialization


def signal_vs_depth(
    kinds: tuple[str, ...], depths: tuple[int, ...], seeds: tuple[int, ...], images: torch.Tensor, width: int = 16
) -> dict[str, np.ndarray]:
    """Per kind, a seeds x depths array: the mean square of the last block's output over the stem's, at init.

    BatchNorm uses the batch's statistics (training mode), as in the first training step.
    """
    out = {}
    jobs = [(k, d, s) for k in kinds for d in depths for s in seeds]
    values = {}
    for kind, depth, seed in tqdm(jobs, desc="forward signal at init", unit="net", leave=False):
        torch.manual_seed(seed)
        values[kind, depth, seed] = signal_growth(family_net(kind, depth, width).train(), images)
    for kind in kinds:
        out[kind] = np.array([[values[kind, d, s] for d in depths] for s in seeds])
    return out


# ----------------------------------------------------------------------------- trained nets


@dataclass
class FamilyRun:
    """One trained net of the chapter: kind, depth, seed, its history, its record."""

    kind: str
    depth: int
    seed: int
    width: int
    history: History
    stored: StoredRun

    @property
    def label(self) -> str:
        return kind_label(self.kind, self.depth)

    @property
    def final_train_error(self) -> float:
        """The last epoch's training error (1.0 when the run diverged before an epoch ended)."""
        return float(self.history.final.get("train_error", 1.0))

    @property
    def final_test_error(self) -> float:
        """The last epoch's test error (1.0 when the run diverged before an epoch ended)."""
        return float(self.history.final.get("test_error", 1.0))

    def model(self) -> CifarNet:
        """The trained network, on the CPU, in eval mode."""
        return self.stored.load_weights(family_net(self.kind, self.depth, self.width)).eval()


def _run_config(kind: str, experiment: ResidualFamilyExperiment, seed: int, depth: int):
    data = experiment_data(experiment.data)
    device = default_device()
    recipe = experiment.recipe
    recipe = replace(recipe, precision=resolve_precision(recipe.precision, device))
    sizes = {k: v for k, v in data.describe().items() if k in ("n_train", "n_val", "n_test")}
    config = {
        "model": {"kind": kind, "depth": depth, "width": experiment.width},
        "data": {**asdict(experiment.data), "resolved": data.name, "used": sizes},
        "recipe": recipe.as_dict(),
        "seed": seed,
        "profile": profile_name(),
        "numerics": {"device": device.type, "threads": torch.get_num_threads()},
    }
    return f"ch8-{kind}{depth}-w{experiment.width}-s{seed}", config, recipe


def family_run(
    kind: str, experiment: ResidualFamilyExperiment, seed: int = 0, progress: bool = True, depth: int | None = None
) -> FamilyRun:
    """Train the net of ``kind`` and ``depth`` layers (default: ``experiment.depth``) with the experiment's recipe,
    or load it from the cache."""
    check_kind(kind)
    depth = experiment.depth if depth is None else depth
    data = experiment_data(experiment.data)
    name, config, recipe = _run_config(kind, experiment, seed, depth)

    def train(checkpoint):
        torch.manual_seed(seed)
        net = family_net(kind, depth, experiment.width)
        desc = f"{kind_label(kind, depth)} (seed {seed})"
        history = fit(net, data, recipe, seed=seed, checkpoint=checkpoint, progress=progress, desc=desc)
        record = {"history": history.to_dict(), "data": data.describe(), "device": str(default_device())}
        return record, net.state_dict()

    stored = load_or_run(name, config, train)
    history = History.from_dict(stored.record["history"])
    if history.diverged and stored.from_cache and progress:
        print(history.divergence_line(f"{kind_label(kind, depth)} (seed {seed})"))
    return FamilyRun(kind, depth, seed, experiment.width, history, stored)


def _train_in_worker(kind: str, experiment: ResidualFamilyExperiment, seed: int, depth: int) -> None:
    family_run(kind, experiment, seed=seed, progress=False, depth=depth)


def train_family(
    experiment: ResidualFamilyExperiment, progress: bool = True, workers: int | None = None
) -> dict[int, dict[str, list[FamilyRun]]]:
    """Every kind of ``experiment.kinds`` at ``experiment.depth`` and of ``experiment.deep_kinds`` at
    ``experiment.deep_depth``, every seed, trained (deepest first, in one process per core where PyTorch runs one
    thread, :func:`resnet_lib.runs.train_in_workers`) or loaded: ``{depth: {kind: [run per seed]}}``."""
    sets = [(experiment.depth, experiment.kinds), (experiment.deep_depth, experiment.deep_kinds)]
    jobs = sorted({(d, k, s) for d, kinds in sets for k in kinds for s in experiment.seeds}, key=lambda j: (-j[0], j))
    missing = [(k, experiment, s, d) for d, k, s in jobs if stored_run(*_run_config(k, experiment, s, d)[:2]) is None]
    train_in_workers(missing, _train_in_worker, workers, progress, what="chapter 8: training")
    runs: dict[int, dict[str, list[FamilyRun]]] = {}
    for depth, kinds in sets:
        for k in kinds:
            runs.setdefault(depth, {})[k] = [
                family_run(k, experiment, seed=s, progress=progress, depth=depth) for s in experiment.seeds
            ]
    return runs


def trained(run: FamilyRun, chance: float, margin: float) -> bool:
    """Whether a run trained: it did not diverge and ended at least ``margin`` below chance in training error."""
    return not run.history.diverged and run.final_train_error < chance - margin


def compare_per_seed(errors: np.ndarray, baseline: np.ndarray, baseline_label: str) -> str:
    """Words for how ``errors`` (per seed, lower is better) compare with ``baseline``'s of the same seeds,
    by the book's rule (:func:`resnet_lib.measure.verdicts.compare_seeds`, paired by seed)."""
    verdict = compare_seeds(errors, baseline)
    return verdict.words(
        f"ahead of {baseline_label} in every seed",
        f"behind {baseline_label} in every seed",
        f"not resolved from {baseline_label} at this budget ({verdict.basis})",
    )


def defects_of(runs: list[FamilyRun], images: torch.Tensor) -> np.ndarray:
    """Seeds x blocks: :func:`~resnet_lib.measure.signal.identity_defects` of every trained net (eval mode)."""
    return np.array([identity_defects(r.model(), images) for r in runs])


# ----------------------------------------------------------------------------- ImageNet ResNets


def _stage_layout(net) -> list[tuple[int, int]]:
    """(blocks, output channels) of every stage of a CIFAR or ImageNet ResNet."""
    if isinstance(net, CifarNet):
        stages = (net.stage1, net.stage2, net.stage3)
        return [(len(s), s[-1].conv2.out_channels) for s in stages]
    stages = (net.layer1, net.layer2, net.layer3, net.layer4)
    last = [s[-1].conv3 if hasattr(s[-1], "conv3") else s[-1].conv2 for s in stages]
    return [(len(s), c.out_channels) for s, c in zip(stages, last, strict=True)]


def family_table(cifar_depth: int = 20, cifar_image: int = 32, imagenet_image: int = 224) -> list[dict]:
    """Chapter 5's CIFAR ResNet beside torchvision's ResNet-18/34/50: layout, shortcuts, multiply-adds per image,
    parameters.

    Everything is read off or measured on the built networks (:func:`multiply_adds` runs one image through).
    """
    rows = []
    cifar = family_net("original", cifar_depth)
    rows.append(
        {
            "net": f"CIFAR ResNet-{cifar_depth}",
            "image": f"{cifar_image}×{cifar_image}",
            "stem": "3×3 conv, 16",
            "block": "basic (3×3, 3×3)",
            "stages": _stage_layout(cifar),
            "shortcut": "identity; A (subsample, zero-pad) where the shape changes",
            "multiply_adds": multiply_adds(cifar, cifar_image),
            "parameters": count_parameters(cifar),
        }
    )
    for depth, (block, _) in IMAGENET_LAYOUTS.items():
        net = imagenet_resnet(depth)
        rows.append(
            {
                "net": f"ResNet-{depth}",
                "image": f"{imagenet_image}×{imagenet_image}",
                "stem": "7×7 conv /2, 64; 3×3 max-pool /2",
                "block": "basic (3×3, 3×3)" if block == "basic" else "bottleneck (1×1, 3×3 /2, 1×1 ×4; v1.5)",
                "stages": _stage_layout(net),
                "shortcut": "identity; B (1×1 conv + BN) where the shape changes (torchvision; the paper: A at 18/34)",
                "multiply_adds": multiply_adds(net, imagenet_image),
                "parameters": count_parameters(net),
            }
        )
    return rows


__all__ = [
    "KINDS",
    "FamilyRun",
    "check_kind",
    "compare_per_seed",
    "defects_of",
    "family_net",
    "family_run",
    "family_table",
    "kind_label",
    "signal_vs_depth",
    "train_family",
    "trained",
]
