"""Chapter 6: residual networks as ensembles of paths (Veit, Wilber & Belongie, 2016).

A residual block computes ``ReLU(F(x) + s(x))`` with ``s`` the shortcut (the identity, or
option A's subsample-and-zero-pad). Writing every block as "through F" or "past F" unravels
a net of ``n`` blocks into ``2**n`` paths, and the number of paths that go through ``k``
residual branches is ``C(n, k)``: path lengths are binomially distributed.

Lesions, all at test time on a trained net in evaluation mode (BatchNorm statistics frozen):

* :func:`deleted_block` is what is left of a block when it is deleted. A residual block keeps
  its shortcut only (the identity, or option A's subsample + zero channels at a downsampling
  block); a plain block becomes the identity, and at the two downsampling blocks, where the
  identity cannot match the shapes, it becomes the same parameter-free subsample + zero-pad
  that option A uses, so both families lose exactly their block's weights.
* :func:`delete_blocks` and :func:`swap_adjacent` build a new sequence of blocks;
  :class:`BlockSequenceEvaluator` measures the test error of any such sequence, reusing the
  intact net's activations up to the first block that differs.
* :func:`single_block_lesions`, :func:`random_deletions` and :func:`adjacent_swap_errors`
  are the paper's three lesion experiments.

Paths:

* :func:`path_length_distribution`: the binomial distribution of path lengths.
* :func:`path_gradients`: the loss gradient at the input of the first block, carried by one
  path per image: after an ordinary forward pass, the backward pass goes through the residual
  branch ``F`` of the blocks a path enters and through the shortcut of the others (each
  block's final ReLU applies either way). Summed over all ``2**n`` paths, these are the
  ordinary gradient.
* :func:`gradient_by_path_length`: the paper's estimate of the gradient magnitude per path
  length ``k``, from paths sampled uniformly among those of length ``k``;
  :func:`effective_paths` multiplies it by the number of paths of each length and says where
  the total lies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.models import BasicBlock, CifarNet, ZeroPadShortcut
from resnet_lib.models.state import preserved_state


def _check_net(net: nn.Module) -> CifarNet:
    if not isinstance(net, CifarNet):
        raise ValueError(f"expected a resnet_lib CifarNet (plain or residual), got {type(net).__name__}")
    return net


def _block_shape(block: BasicBlock) -> tuple[int, int, int]:
    """``(in_channels, out_channels, stride)`` of a basic block."""
    return block.conv1.in_channels, block.conv2.out_channels, block.conv1.stride[0]


def is_downsampling(block: BasicBlock) -> bool:
    """True for a block that changes the shape of its input (stride 2, more channels)."""
    c_in, c_out, stride = _block_shape(block)
    return stride != 1 or c_in != c_out


def deleted_block(block: BasicBlock) -> nn.Module:
    """What stays of ``block`` when it is deleted at test time (parameter-free).

    Residual: its shortcut alone (``ReLU(s(x)) = s(x)``, because every block's input is the
    output of a ReLU and so is already non-negative). Plain: the identity where the shapes
    match, and option A's subsample + zero-pad at a downsampling block.
    """
    if not isinstance(block, BasicBlock):
        raise ValueError(f"expected a BasicBlock, got {type(block).__name__}")
    if block.shortcut is not None:
        if not isinstance(block.shortcut, nn.Identity | ZeroPadShortcut):
            raise ValueError("deleting a block keeps its shortcut, which must be parameter-free (option A)")
        return block.shortcut
    if not is_downsampling(block):
        return nn.Identity()
    c_in, c_out, stride = _block_shape(block)
    return ZeroPadShortcut(c_in, c_out, stride)


def _check_indices(indices: Sequence[int], n: int, what: str) -> list[int]:
    out = [int(i) for i in indices]
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ValueError(f"{what} must be block indices 0..{n - 1}, got {bad}")
    if len(set(out)) != len(out):
        raise ValueError(f"{what} must be distinct, got {out}")
    return out


def delete_blocks(net: nn.Module, indices: Sequence[int]) -> list[nn.Module]:
    """The blocks of ``net`` (input side first) with the blocks at ``indices`` deleted."""
    blocks = _check_net(net).blocks()
    gone = set(_check_indices(indices, len(blocks), "deleted blocks"))
    return [deleted_block(b) if i in gone else b for i, b in enumerate(blocks)]


def swappable_pairs(net: nn.Module) -> list[int]:
    """Every ``i`` such that blocks ``i`` and ``i + 1`` can trade places (neither changes the shape)."""
    blocks = _check_net(net).blocks()
    return [i for i in range(len(blocks) - 1) if not is_downsampling(blocks[i]) and not is_downsampling(blocks[i + 1])]


def swap_adjacent(net: nn.Module, i: int) -> list[nn.Module]:
    """The blocks of ``net`` with blocks ``i`` and ``i + 1`` swapped (a re-ordering lesion)."""
    pairs = swappable_pairs(net)
    if i not in pairs:
        raise ValueError(f"blocks {i} and {i + 1} cannot be swapped; swappable pairs start at: {pairs}")
    blocks = _check_net(net).blocks()
    blocks[i], blocks[i + 1] = blocks[i + 1], blocks[i]
    return blocks


class LesionedNet(nn.Module):
    """``net`` with its blocks replaced by ``blocks`` (stem, pooling and classifier shared with ``net``)."""

    def __init__(self, net: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        net = _check_net(net)
        self.stem, self.pool, self.fc = net.stem, net.pool, net.fc
        self.body = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.body(self.stem(x))), 1))


class BlockSequenceEvaluator:
    """Test error of ``net`` with its blocks replaced by any sequence, on fixed images, in eval mode.

    The intact net's activations before every block are computed once; a sequence that keeps
    the first ``j`` blocks of ``net`` unchanged starts from the activation before block ``j``.
    """

    def __init__(self, net: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> None:
        self.net = _check_net(net)
        if x.dim() != 4 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"need images (N, C, H, W) and N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.blocks = self.net.blocks()
        self.y = y
        self.batch_size = batch_size
        self.net.eval()
        with torch.no_grad():
            h = torch.cat([self.net.stem(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
            self._inputs = [h]  # _inputs[j]: the intact net's input to block j; the last is the body's output
            for block in self.blocks:
                h = torch.cat([block(h[i : i + batch_size]) for i in range(0, len(h), batch_size)])
                self._inputs.append(h)
        self.intact_mistakes = self._mistakes_of(self._inputs[-1])
        self.intact_error = self.intact_mistakes.float().mean().item()

    def _mistakes_of(self, features: Tensor) -> Tensor:
        with torch.no_grad():
            scores = self.net.fc(torch.flatten(self.net.pool(features), 1))
        return scores.argmax(1) != self.y

    def error(self, blocks: Sequence[nn.Module]) -> float:
        """Fraction of the images misclassified when the net's blocks are ``blocks``."""
        return self.mistakes(blocks).float().mean().item()

    def mistakes(self, blocks: Sequence[nn.Module]) -> Tensor:
        """A boolean tensor, True for each image misclassified when the net's blocks are ``blocks``."""
        if len(blocks) != len(self.blocks):
            raise ValueError(f"expected a sequence of {len(self.blocks)} blocks, got {len(blocks)}")
        start = 0
        while start < len(blocks) and blocks[start] is self.blocks[start]:
            start += 1
        if start == len(blocks):
            return self.intact_mistakes
        h = self._inputs[start]
        out = []
        with torch.no_grad():
            for i in range(0, len(h), self.batch_size):
                z = h[i : i + self.batch_size]
                for block in blocks[start:]:
                    z = block(z)
                out.append(z)
        return self._mistakes_of(torch.cat(out))


def single_block_lesions(evaluator: BlockSequenceEvaluator, progress: bool = False) -> np.ndarray:
    """Test error with block ``i`` deleted, for every block ``i`` (input side first)."""
    n = len(evaluator.blocks)
    its = tqdm(range(n), desc="single-block lesions", unit="block", disable=not progress, leave=False)
    return np.array([evaluator.error(delete_blocks(evaluator.net, [i])) for i in its])


def random_deletions(
    evaluator: BlockSequenceEvaluator,
    ks: Sequence[int],
    draws: int,
    seed: int = 0,
    progress: bool = False,
) -> dict[int, np.ndarray]:
    """``{k: test errors}`` with ``k`` blocks deleted, chosen uniformly at random, ``draws`` times per ``k``."""
    n = len(evaluator.blocks)
    bad = [k for k in ks if not 0 <= k <= n]
    if bad or draws < 1:
        raise ValueError(f"need 0 <= k <= {n} blocks and draws >= 1, got ks {list(ks)} and draws {draws}")
    rng = np.random.default_rng(seed)
    jobs = [(k, d) for k in ks for d in range(draws)]
    errors: dict[int, list[float]] = {k: [] for k in ks}
    for k, _ in tqdm(jobs, desc="random deletions", unit="net", disable=not progress, leave=False):
        chosen = rng.choice(n, size=k, replace=False)
        errors[k].append(evaluator.error(delete_blocks(evaluator.net, chosen.tolist())))
    return {k: np.array(v) for k, v in errors.items()}


def adjacent_swap_errors(evaluator: BlockSequenceEvaluator, progress: bool = False) -> dict[int, float]:
    """``{i: test error}`` with blocks ``i`` and ``i + 1`` swapped, for every swappable pair."""
    pairs = swappable_pairs(evaluator.net)
    its = tqdm(pairs, desc="adjacent swaps", unit="pair", disable=not progress, leave=False)
    return {i: evaluator.error(swap_adjacent(evaluator.net, i)) for i in its}


@dataclass(frozen=True)
class LesionStudy:
    """The three lesion experiments on one trained net, test errors as fractions."""

    family: str
    intact_error: float
    single: np.ndarray  # single[i]: block i deleted
    deletions: dict[int, np.ndarray]  # deletions[k]: k random blocks deleted, one entry per draw
    swaps: dict[int, float]  # swaps[i]: blocks i and i + 1 swapped
    downsampling: tuple[int, ...]  # indices of the blocks that change the shape

    def single_cost(self, exclude_downsampling: bool = False) -> np.ndarray:
        """Test error added by deleting each block (lesioned minus intact), optionally without the downsampling ones."""
        cost = self.single - self.intact_error
        if exclude_downsampling:
            cost = np.delete(cost, list(self.downsampling))
        return cost

    def mean_deletion_error(self) -> dict[int, float]:
        return {k: float(v.mean()) for k, v in self.deletions.items()}


def lesion_study(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    ks: Sequence[int] = (),
    draws: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> LesionStudy:
    """Single-block deletions, ``draws`` random deletions of every ``k`` in ``ks``, and adjacent swaps."""
    ev = BlockSequenceEvaluator(net, x, y)
    return LesionStudy(
        family=ev.net.family,
        intact_error=ev.intact_error,
        single=single_block_lesions(ev, progress),
        deletions=random_deletions(ev, ks, draws, seed, progress) if ks else {},
        swaps=adjacent_swap_errors(ev, progress),
        downsampling=tuple(i for i, b in enumerate(ev.blocks) if is_downsampling(b)),
    )


def path_length_distribution(n_blocks: int) -> np.ndarray:
    """Fraction of the ``2**n_blocks`` paths that go through ``k`` residual branches, for k = 0..n_blocks."""
    if not isinstance(n_blocks, int) or n_blocks < 1:
        raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
    return np.array([math.comb(n_blocks, k) for k in range(n_blocks + 1)], dtype=float) / 2**n_blocks


def _branch(block: BasicBlock, x: Tensor) -> Tensor:
    """The residual branch ``F(x)`` of a block, without in-place operations."""
    return block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))


def path_gradients(net: nn.Module, x: Tensor, y: Tensor, paths: Tensor) -> Tensor:
    """Loss gradient at the first block's input carried by one path per image, in eval mode.

    ``paths`` is a boolean ``(N, n_blocks)`` tensor: ``paths[m, i]`` says whether image ``m``'s
    path goes through the residual branch of block ``i`` (else through its shortcut). The loss
    is each image's own cross-entropy; the forward pass is the intact net's. Returns the
    ``(N, C, H, W)`` gradients; the model's mode is restored.
    """
    net = _check_net(net)
    if not net.residual:
        raise ValueError("paths exist only in residual nets; got a plain net")
    blocks = net.blocks()
    if paths.dtype != torch.bool or paths.shape != (len(x), len(blocks)) or len(x) != len(y):
        raise ValueError(
            f"paths must be a bool tensor of shape (N images, {len(blocks)} blocks) = ({len(x)}, {len(blocks)}) "
            f"and y hold N labels; got {paths.dtype} {tuple(paths.shape)} and {tuple(y.shape)}"
        )
    with preserved_state(net):
        with torch.no_grad():
            h = net.stem(x)
        inputs, branches, shortcuts, sums = [], [], [], []
        with torch.enable_grad():
            for block in blocks:
                h = h.detach().requires_grad_(True)
                r, s = _branch(block, h), block.shortcut(h)
                inputs.append(h)
                branches.append(r)
                shortcuts.append(s)
                sums.append(r + s)
                h = F.relu(sums[-1])
            top = h.detach().requires_grad_(True)
            loss = F.cross_entropy(net.fc(torch.flatten(net.pool(top), 1)), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, top)
            for i in reversed(range(len(blocks))):
                g = g * (sums[i] > 0)  # the block's final ReLU, on every path
                (through_f,) = torch.autograd.grad(branches[i], inputs[i], g)
                (past_f,) = torch.autograd.grad(shortcuts[i], inputs[i], g)
                g = torch.where(paths[:, i].view(-1, 1, 1, 1), through_f, past_f)
        return g.detach()


def sample_paths(n_blocks: int, lengths: Sequence[int], generator: torch.Generator | None = None) -> Tensor:
    """One path of each given length, chosen uniformly among the ``C(n_blocks, k)`` of that length."""
    lengths = [int(k) for k in lengths]
    bad = [k for k in lengths if not 0 <= k <= n_blocks]
    if bad:
        raise ValueError(f"path lengths must lie in 0..{n_blocks}, got {sorted(set(bad))}")
    ranks = torch.rand(len(lengths), n_blocks, generator=generator).argsort(1).argsort(1)
    return ranks < torch.tensor(lengths).view(-1, 1)


@dataclass(frozen=True)
class PathGradients:
    """Gradient magnitude at the first block's input carried by single paths, per path length.

    ``mean[k]`` and ``std[k]`` are over ``samples`` (image, path) pairs with paths of length
    ``k``, k = 0..n_blocks; ``norms`` holds every sample.
    """

    n_blocks: int
    samples: int
    mean: np.ndarray
    std: np.ndarray
    norms: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.arange(self.n_blocks + 1)

    def decay_per_block(self, max_length: int | None = None) -> float:
        """Factor by which the mean gradient shrinks per extra block, from a fit of log(mean) on k."""
        k = self.lengths if max_length is None else self.lengths[: max_length + 1]
        slope = np.polyfit(k, np.log(self.mean[k]), 1)[0]
        return float(np.exp(slope))


def gradient_by_path_length(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    samples: int,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> PathGradients:
    """The paper's estimate: for every length k, ``samples`` paths of length k, each on a random image of ``x``.

    Each sample is one image and one path of length ``k`` chosen uniformly; its value is the
    norm of that path's gradient at the first block's input (:func:`path_gradients`). In eval
    mode every image is computed on its own, so one backward pass serves a batch of samples.
    """
    net = _check_net(net)
    n = len(net.blocks())
    if samples < 1 or batch_size < 1:
        raise ValueError(f"samples and batch_size must be at least 1, got {samples} and {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.arange(n + 1).repeat_interleave(samples)
    images = torch.randint(len(x), (len(lengths),), generator=generator)
    paths = sample_paths(n, lengths.tolist(), generator)
    norms = torch.empty(len(lengths))
    starts = range(0, len(lengths), batch_size)
    for i in tqdm(starts, desc="path gradients", unit="batch", disable=not progress, leave=False):
        j = slice(i, i + batch_size)
        g = path_gradients(net, x[images[j]], y[images[j]], paths[j])
        norms[j] = g.flatten(1).norm(dim=1)
    table = norms.view(n + 1, samples).double().numpy()
    return PathGradients(n, samples, table.mean(1), table.std(1), table)


@dataclass(frozen=True)
class EffectivePaths:
    """Total gradient magnitude carried by all paths of each length, as fractions of the whole."""

    share: np.ndarray  # share[k]: C(n, k) * mean gradient of a length-k path, normalized to sum 1
    mean_length: float  # gradient-weighted mean path length
    low: int  # the shortest and longest lengths of the central ``mass`` of the share
    high: int
    mass: float
    path_fraction: float  # fraction of all 2**n paths whose length lies in low..high

    @property
    def peak(self) -> int:
        return int(np.argmax(self.share))


def effective_paths(gradients: PathGradients, mass: float = 0.9) -> EffectivePaths:
    """Where the gradient lies: the product of the path-length distribution and the gradient per path."""
    if not 0 < mass < 1:
        raise ValueError(f"mass must lie strictly between 0 and 1, got {mass}")
    n = gradients.n_blocks
    distribution = path_length_distribution(n)
    total = distribution * gradients.mean
    share = total / total.sum()
    cumulative = np.cumsum(share)
    tail = (1 - mass) / 2
    low = int(np.searchsorted(cumulative, tail))
    high = int(np.searchsorted(cumulative, 1 - tail))
    high = min(high, n)
    mean_length = float((np.arange(n + 1) * share).sum())
    return EffectivePaths(share, mean_length, low, high, mass, float(distribution[low : high + 1].sum()))


__all__ = [
    "BlockSequenceEvaluator",
    "EffectivePaths",
    "LesionStudy",
    "LesionedNet",
    "PathGradients",
    "adjacent_swap_errors",
    "delete_blocks",
    "deleted_block",
    "effective_paths",
    "gradient_by_path_length",
    "is_downsampling",
    "lesion_study",
    "path_gradients",
    "path_length_distribution",
    "random_deletions",
    "sample_paths",
    "single_block_lesions",
    "swap_adjacent",
    "swappable_pairs",
]
