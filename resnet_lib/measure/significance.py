"""How sure a test-set error is: binomial intervals and paired comparisons on the same photos.

A net scored on ``n`` test photos has an error whose uncertainty comes from the photo count
alone: :func:`error_interval` (Wilson's score interval). Two nets scored on the *same* photos
are compared by the photos on which exactly one of them is wrong (McNemar's exact test,
:func:`paired_comparison`): the photos both get right or both get wrong say nothing about
which is better, and pairing removes them. These are the tolerances of the converged-nets
sections: they come from the photo count, never from one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch
from torch import Tensor

#: The confidence of every interval and the level of every paired test in the book.
CONFIDENCE = 0.95


def _as_mistakes(wrong: Tensor | np.ndarray) -> np.ndarray:
    """A 1-D boolean array (True where the net is wrong)."""
    arr = wrong.detach().cpu().numpy() if isinstance(wrong, Tensor) else np.asarray(wrong)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype != bool:
        raise ValueError(f"expected a non-empty 1-D boolean array of mistakes, got shape {arr.shape} {arr.dtype}")
    return arr


def error_interval(errors: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval for an error rate of ``errors`` out of ``n`` (fractions in [0, 1])."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a whole number of photos >= 1, got {n!r}")
    if not 0 <= errors <= n:
        raise ValueError(f"errors must be between 0 and n={n}, got {errors!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` fair coin flips (1.0 for n = 0)."""
    if n == 0:
        return 1.0
    tail = min(k, n - k)
    p = sum(math.comb(n, i) for i in range(tail + 1)) / 2**n
    return min(1.0, 2 * p)


@dataclass(frozen=True)
class PairedComparison:
    """Two nets on the same ``n`` photos: ``only_a`` photos only A gets wrong, ``only_b`` only B."""

    name_a: str
    name_b: str
    n: int
    errors_a: int
    errors_b: int
    only_a: int
    only_b: int
    p_value: float
    level: float = 1 - CONFIDENCE

    @property
    def resolved(self) -> bool:
        """True when the photos tell the two apart at :attr:`level`."""
        return self.p_value < self.level

    @property
    def verdict(self) -> str:
        """``"fewer"`` (A makes fewer mistakes), ``"more"``, or ``"unresolved"``."""
        if not self.resolved:
            return "unresolved"
        return "fewer" if self.only_a < self.only_b else "more"

    def sentence(self) -> str:
        """What the photos say, in words that follow the numbers (never more than they show)."""
        counts = (
            f"{self.only_a} photos only {self.name_a} gets wrong, {self.only_b} only {self.name_b}; "
            f"p = {self.p_value:.2g}, {self.n:,} photos"
        )
        if self.verdict == "unresolved":
            return f"{self.name_a} and {self.name_b} cannot be told apart on these photos ({counts})"
        return f"{self.name_a} makes {self.verdict} mistakes than {self.name_b} ({counts})"


def paired_comparison(
    wrong_a: Tensor | np.ndarray, wrong_b: Tensor | np.ndarray, name_a: str = "A", name_b: str = "B"
) -> PairedComparison:
    """McNemar's exact test of two nets' mistakes on the same photos (two-sided, level 1 - CONFIDENCE)."""
    a, b = _as_mistakes(wrong_a), _as_mistakes(wrong_b)
    if a.shape != b.shape:
        raise ValueError(f"the two nets must be scored on the same photos, got {a.size} and {b.size}")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    return PairedComparison(
        name_a,
        name_b,
        a.size,
        int(a.sum()),
        int(b.sum()),
        only_a,
        only_b,
        binomial_two_sided_p(only_a, only_a + only_b),
    )


def paired_difference(
    wrong_a: Tensor | np.ndarray, wrong_b: Tensor | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Error of A minus error of B on the same photos (fractions), with its Wald interval for paired proportions."""
    a, b = _as_mistakes(wrong_a), _as_mistakes(wrong_b)
    if a.shape != b.shape:
        raise ValueError(f"the two nets must be scored on the same photos, got {a.size} and {b.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    n, only_a, only_b = a.size, int((a & ~b).sum()), int((b & ~a).sum())
    diff = (only_a - only_b) / n
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(max(only_a + only_b - n * diff * diff, 0.0)) / n
    return diff, diff - half, diff + half


@torch.no_grad()
def mistakes(net: torch.nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> np.ndarray:
    """A boolean array, True for each photo of ``x`` that ``net`` (in its current mode) classifies wrongly."""
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need as many labels as images (and at least one), got {len(x)} images, {len(y)} labels")
    wrong = [net(x[i : i + batch_size]).argmax(1) != y[i : i + batch_size] for i in range(0, len(y), batch_size)]
    return torch.cat(wrong).cpu().numpy()


__all__ = [
    "CONFIDENCE",
    "PairedComparison",
    "binomial_two_sided_p",
    "error_interval",
    "mistakes",
    "paired_comparison",
    "paired_difference",
]
