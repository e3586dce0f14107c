"""Chapter 9: why the identity? He et al. (2016b)'s shortcut variants, measured at initialization.

Section 3 of "Identity Mappings in Deep Residual Networks" writes a block as ``x_{l+1} = lambda_l x_l + F(x_l)``
and unrolls it: ``dE/dx_l = dE/dx_L (prod_i lambda_i + d/dx_l sum of the scaled branches)``. The first term, the
gradient that the shortcut path alone carries, is a product of one factor per block. This module measures the
gradient at every block's output of a freshly initialized :class:`~resnet_lib.models.shortcuts.ShortcutStack`
and sets it beside that product, derived per variant:

* identity: 1; constant scaling: ``lambda**k`` after ``k`` blocks;
* gating (both kinds): the product of the root mean square of ``1 - g`` over the batch, block by block, read
  off the forward pass (it leaves out the gate's own derivative, which also carries gradient);
* 1x1 convolution: the product of each matrix's root-mean-square singular value ``||W||_F / sqrt(C)`` (what a
  gradient with no preferred direction meets), between the product of the smallest and of the largest ones;
* dropout: the mean over masks of the *squared* ratio is ``keep**k`` (the share of entries that survive
  ``k`` masks), so its root mean square over seeds is ``keep**(k / 2)``; the mean gradient is ``keep**k`` times
  the upstream one, the paper's "scale of ``keep`` in expectation".

With the branch zeroed (``zero_branch=True``: ``F = 0`` and ``dF/dx = 0``) the product is the whole gradient; with
the branch on, ``dF/dx`` adds to it, and the measurement says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from resnet_lib.measure.verdicts import Verdict, compare_seeds, compare_to_reference
from resnet_lib.models.shortcuts import ShortcutStack
from resnet_lib.profiles import DataSpec

#: The variants of the chapter, in He et al.'s Table 1 order: label and :class:`ShortcutStack` arguments.
VARIANTS: dict[str, tuple[str, dict]] = {
    "identity": ("identity (original)", {"kind": "identity"}),
    "scaling": ("constant scaling, λ = 0.5", {"kind": "scaling", "scale": 0.5}),
    "exclusive_gating": ("exclusive gating, b_g = −6", {"kind": "exclusive_gating", "gate_bias": -6.0}),
    "shortcut_gating": ("shortcut-only gating, b_g = 0", {"kind": "shortcut_gating", "gate_bias": 0.0}),
    "conv1x1": ("1×1 conv shortcut", {"kind": "conv1x1"}),
    "dropout": ("dropout shortcut, keep 0.5", {"kind": "dropout", "keep": 0.5}),
}


@dataclass(frozen=True)
class IdentitySizes:
    """How many blocks, images and seeds the chapter measures, and at which resolution."""

    blocks: int
    images: int
    image_size: int
    seeds: tuple[int, ...]
    width: int = 16

    @property
    def data(self) -> DataSpec:
        return DataSpec(dataset="auto", n_train=max(self.images, 64), n_test=64, image_size=self.image_size)


#: The chapter's sizes per profile (54 blocks: ResNet-110's, He et al.'s Table 1 net, at one width).
SIZES: dict[str, IdentitySizes] = {
    "ci": IdentitySizes(blocks=54, images=8, image_size=16, seeds=(0, 1, 2, 3)),
    "default": IdentitySizes(blocks=54, images=8, image_size=32, seeds=(0, 1, 2, 3, 4)),  # about 90 s on one core
    "full": IdentitySizes(blocks=54, images=32, image_size=32, seeds=tuple(range(8))),
}


def sizes_for(profile_name: str) -> IdentitySizes:
    """The chapter's sizes for a profile name (see :data:`SIZES`)."""
    if profile_name not in SIZES:
        raise ValueError(f"no chapter 9 sizes for profile {profile_name!r}; choose one of: {', '.join(SIZES)}")
    return SIZES[profile_name]


def check_variant(variant: str) -> str:
    """``variant`` when it is one of :data:`VARIANTS`, else a one-line ``ValueError``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    return variant


def variant_label(variant: str) -> str:
    return VARIANTS[check_variant(variant)][0]


def variant_net(variant: str, blocks: int, zero_branch: bool = False, width: int = 16) -> ShortcutStack:
    """A freshly initialized stack of ``blocks`` blocks of ``variant`` (drawn from the global RNG)."""
    return ShortcutStack(blocks, width=width, zero_branch=zero_branch, **VARIANTS[check_variant(variant)][1])


# ----------------------------------------------------------------------------- measured


def gradient_ratios(net: ShortcutStack, images: Tensor, upstream_seed: int = 0) -> np.ndarray:
    """``r[k] = ||dE/dx_{L-k}|| / ||dE/dx_L||`` for ``k = 0..L`` blocks, with ``E = <v, x_L>``.

    ``v`` (so ``dE/dx_L``) is a Gaussian tensor drawn from ``upstream_seed``: the gradient that arrives at the top
    of the stack from whatever lies above it, the same for every variant, so that the ratio measures only what
    the blocks do to it (He et al.'s ``dE/dx_l = dE/dx_L * dx_L/dx_l``). Training mode: BatchNorm on the batch's
    statistics and dropout masks drawn from the global RNG, as in the first training step.
    """
    net.train()
    with torch.enable_grad():
        states = net.block_outputs(images)
        generator = torch.Generator().manual_seed(upstream_seed)
        upstream = torch.randn(states[-1].shape, generator=generator).to(states[-1])
        grads = torch.autograd.grad(states[-1], states[:-1], grad_outputs=upstream)
    norms = np.array([g.detach().double().norm().item() for g in grads] + [upstream.double().norm().item()])
    return norms[::-1] / norms[-1]


# ----------------------------------------------------------------------------- derived


def _from_the_top(factors: list[float]) -> np.ndarray:
    """``[1, f_L, f_L f_{L-1}, ...]``: the product of the last ``k`` blocks' factors, ``k = 0..L``."""
    return np.concatenate([[1.0], np.cumprod(np.asarray(factors[::-1], dtype=float))])


@torch.no_grad()
def derived_ratios(net: ShortcutStack, images: Tensor) -> dict[str, np.ndarray]:
    """The shortcut path's prediction for :func:`gradient_ratios` per ``k``: ``{"central", "naive"}``.

    ``central`` is the derivation of the module docstring. For the 1x1 convolution it is the root-mean-square
    singular value ``||W_L ... W_{L-k+1}||_F / sqrt(C)`` of the product of the last ``k`` matrices (what a
    gradient with no preferred direction meets); ``naive`` multiplies each matrix's own root-mean-square singular
    value instead, which over-predicts a product of random matrices. For the other variants ``naive`` equals
    ``central``. Gates are read off a forward pass on ``images`` in training mode.
    """
    L = len(net.blocks)
    kind = net.kind
    shortcut = net.blocks[0].shortcut
    if kind == "identity":
        central = np.ones(L + 1)
    elif kind == "scaling":
        central = shortcut.scale ** np.arange(L + 1, dtype=float)
    elif kind == "dropout":
        central = shortcut.keep ** (np.arange(L + 1, dtype=float) / 2)
    elif kind == "conv1x1":
        matrices = [b.shortcut.weight.double().flatten(1) for b in net.blocks]
        channels = matrices[0].shape[0]
        product, central = torch.eye(channels, dtype=torch.float64), [1.0]
        for w in matrices[::-1]:  # the gradient meets the last block's matrix first: dE/dx_l = W_l^T ... W_L^T v
            product = product @ w
            central.append(float(product.norm() / channels**0.5))
        naive = _from_the_top([float(w.norm() / channels**0.5) for w in matrices])
        return {"central": np.array(central), "naive": naive}
    else:  # gating
        net.train()
        states = net.block_outputs(images)
        rms = [float((1 - b.gate(x)).double().pow(2).mean().sqrt()) for b, x in zip(net.blocks, states, strict=False)]
        central = _from_the_top(rms)
    return {"central": central, "naive": central}


# ----------------------------------------------------------------------------- the experiment


@dataclass
class ShortcutMeasurement:
    """Per variant, seeds x (L+1) arrays over ``k`` blocks: measured with F = 0 and F on, and derived."""

    variant: str
    measured_zero: np.ndarray
    measured_on: np.ndarray
    derived: np.ndarray
    naive: np.ndarray

    @property
    def blocks(self) -> np.ndarray:
        return np.arange(self.measured_zero.shape[1])


def measure_variant(
    variant: str, blocks: int, seeds: tuple[int, ...], images: Tensor, width: int = 16
) -> ShortcutMeasurement:
    """Gradient ratios of ``variant`` over ``seeds`` (one fresh net per seed), with the branch zeroed and on."""
    zero, on, derived, naive = [], [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        net = variant_net(variant, blocks, zero_branch=True, width=width)
        torch.manual_seed(10_000 + seed)  # the dropout masks
        zero.append(gradient_ratios(net, images, upstream_seed=seed))
        d = derived_ratios(net, images)
        derived.append(d["central"])
        naive.append(d["naive"])
        torch.manual_seed(seed)  # the same weights, with the branch's last convolution as drawn
        net = variant_net(variant, blocks, zero_branch=False, width=width)
        torch.manual_seed(10_000 + seed)
        on.append(gradient_ratios(net, images, upstream_seed=seed))
    return ShortcutMeasurement(variant, *(np.array(a) for a in (zero, on, derived, naive)))


def measure_all(
    sizes: IdentitySizes, images: Tensor, variants: tuple[str, ...] = tuple(VARIANTS)
) -> dict[str, ShortcutMeasurement]:
    """:func:`measure_variant` for every variant at ``sizes``."""
    return {v: measure_variant(v, sizes.blocks, sizes.seeds, images, sizes.width) for v in variants}


def typical(values: np.ndarray, variant: str) -> np.ndarray:
    """The seeds' typical value per ``k``: root mean square for dropout (its derivation is one), else the
    geometric mean (a ratio's typical size); a dropout ratio that is exactly 0 stays in the mean."""
    values = np.asarray(values, dtype=float)
    if check_variant(variant) == "dropout":
        return np.sqrt((values**2).mean(axis=0))
    with np.errstate(divide="ignore"):
        return np.exp(np.log(values).mean(axis=0))


def log_gap(measured: np.ndarray, derived: np.ndarray) -> np.ndarray:
    """``|log10(measured / derived)|``: how many orders of magnitude apart (``inf`` where one is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log10(np.asarray(measured, float)) - np.log10(np.asarray(derived, float)))


def against_derivation(measured: float, derived: float, tolerance_decades: float) -> Verdict:
    """One measured ratio against its derived value, in decades (``log10``), within ``tolerance_decades``.

    ``unresolved``: within the tolerance (the derivation holds); ``ahead``: the measurement is larger.
    """
    return compare_to_reference(np.log10(measured), np.log10(derived), tolerance_decades, better="higher")


def closer_to_one(first: np.ndarray, second: np.ndarray) -> Verdict:
    """Seed by seed, whether ``first``'s ratios are nearer 1 (in decades) than ``second``'s: nearer is ahead."""
    return compare_seeds(decades_from_one(first), decades_from_one(second), better="lower")


def ratio_table(measurements: dict[str, ShortcutMeasurement], ks: tuple[int, ...]) -> list[dict]:
    """One row per variant and ``k``: typical measured (F = 0, F on) and derived ratios."""
    rows = []
    for variant, m in measurements.items():
        for k in ks:
            rows.append({
                "variant": variant, "k": k,
                "derived": float(typical(m.derived[:, k], "identity")),
                "zero": float(typical(m.measured_zero[:, k], variant)),
                "on": float(typical(m.measured_on[:, k], variant)),
            })  # fmt: skip
    return rows


def table_ks(blocks: int) -> tuple[int, ...]:
    """The ``k`` of the printed table: 1, 2, 4, 8, ... and ``blocks`` itself."""
    ks = [1]
    while ks[-1] * 2 < blocks:
        ks.append(ks[-1] * 2)
    return (*ks, blocks)


def dropout_agreement(
    measurement: ShortcutMeasurement, keep: float, entries: int, min_survivors: float = 30.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k, relative error, tolerance)`` of the seeds' mean squared ratio (branch zeroed) against ``keep**k``.

    Only the ``k`` at which at least ``min_survivors`` of the gradient's ``entries`` are expected to pass every
    mask. With a Gaussian upstream gradient and a share ``q = keep**k`` of entries surviving, one seed's squared
    ratio has a relative standard error of ``sqrt((3 / q - 1) / entries)``; the tolerance is five of them,
    divided by the square root of the number of seeds.
    """
    k = np.arange(measurement.measured_zero.shape[1])
    q = float(keep) ** k
    keep_k = entries * q >= min_survivors
    seeds = measurement.measured_zero.shape[0]
    mean_square = (measurement.measured_zero**2).mean(axis=0)
    error = np.abs(mean_square / q - 1)
    tolerance = 5 * np.sqrt((3 / q - 1) / entries / seeds)
    return k[keep_k], error[keep_k], tolerance[keep_k]


def decades_from_one(ratios: np.ndarray) -> np.ndarray:
    """``|log10(ratio)|``: how many orders of magnitude a gradient ratio is from 1 (no change)."""
    return np.abs(np.log10(np.asarray(ratios, dtype=float)))


__all__ = [
    "SIZES",
    "VARIANTS",
    "IdentitySizes",
    "ShortcutMeasurement",
    "against_derivation",
    "closer_to_one",
    "decades_from_one",
    "derived_ratios",
    "dropout_agreement",
    "gradient_ratios",
    "log_gap",
    "measure_all",
    "measure_variant",
    "ratio_table",
    "sizes_for",
    "table_ks",
    "typical",
    "variant_label",
    "variant_net",
]
