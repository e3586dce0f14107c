"""The book's one rule for every comparative sentence: a :class:`Verdict` that can say either direction or neither.

Every sentence of the book that states a direction or a size of a measured result is glued from a
:class:`Verdict`, and a verdict is one of three things: ``"ahead"`` (the first measurement is the better
one, or the larger where nothing is better), ``"behind"``, or ``"unresolved"``. The rule that decides,
stated once in the book's introduction:

- **runs that share seeds** (:func:`compare_seeds`): paired by seed, the first is ahead when it is
  better in *every* seed, with at least two seeds, and by more than ``margin`` in each; behind when it
  is worse in every seed; otherwise unresolved (one seed, or the seeds disagree);
- **runs on different seeds** (:func:`compare_seeds` with ``paired=False``): ahead or behind only when
  the two ranges over seeds do not overlap;
- **one net against another on the same photos** (:func:`compare_photos`): McNemar's exact test at the
  5% level (:func:`resnet_lib.measure.significance.paired_comparison`);
- **one number against a reference with a tolerance** (:func:`compare_to_reference`): ahead or behind
  only outside the tolerance, whose origin the caller states.

:meth:`Verdict.words` turns a verdict into prose: the caller writes the three sentences, and the run
picks one, so no sentence can claim a direction its numbers do not show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from resnet_lib.measure.significance import paired_comparison

AHEAD, BEHIND, UNRESOLVED = "ahead", "behind", "unresolved"
DIRECTIONS = (AHEAD, BEHIND, UNRESOLVED)
_BETTER = ("lower", "higher")


@dataclass(frozen=True)
class Verdict:
    """``direction`` (ahead, behind or unresolved) and ``basis``: the evidence in a few words."""

    direction: str
    basis: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"a verdict is one of {', '.join(DIRECTIONS)}, got {self.direction!r}")

    @property
    def resolved(self) -> bool:
        return self.direction != UNRESOLVED

    def words(self, ahead: str, behind: str, unresolved: str) -> str:
        """The sentence for this verdict, chosen from the three the caller wrote (one per direction)."""
        return {AHEAD: ahead, BEHIND: behind, UNRESOLVED: unresolved}[self.direction]

    def __str__(self) -> str:
        return self.direction


def _series(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds a value that is not finite ({arr.tolist()}); report a diverged run as diverged")
    return arr


def _check_better(better: str) -> None:
    if better not in _BETTER:
        raise ValueError(f"better must be 'lower' (errors, losses) or 'higher' (accuracy, correlation), got {better!r}")


def compare_seeds(
    first: Sequence[float] | np.ndarray,
    second: Sequence[float] | np.ndarray,
    *,
    better: str = "lower",
    paired: bool = True,
    margin: float = 0.0,
) -> Verdict:
    """How ``first`` compares with ``second`` over seeds (paired by seed unless ``paired=False``).

    Paired: ahead when ``first`` is better than ``second`` by more than ``margin`` in every seed (two
    seeds at least), behind when worse by more than ``margin`` in every seed. Unpaired: ahead or behind
    only when the ranges over seeds are more than ``margin`` apart.
    """
    _check_better(better)
    a, b = _series(first, "first"), _series(second, "second")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    sign = 1.0 if better == "lower" else -1.0
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired by seed needs one value per seed on each side, got {a.size} and {b.size}")
        gain = sign * (b - a)  # > 0 where first is better
        n = a.size
        if n < 2:
            return Verdict(UNRESOLVED, "one seed")
        if (gain > margin).all():
            return Verdict(AHEAD, f"in each of the {n} seeds")
        if (gain < -margin).all():
            return Verdict(BEHIND, f"in each of the {n} seeds")
        if margin > 0 and (np.abs(gain) <= margin).all():
            return Verdict(UNRESOLVED, f"within {margin:g} in every seed")
        return Verdict(UNRESOLVED, f"the {n} seeds disagree")
    cost_a, cost_b = sign * a, sign * b  # lower cost is better on both sides
    if cost_b.min() - cost_a.max() > margin:
        return Verdict(AHEAD, f"the ranges over {a.size} and {b.size} seeds do not overlap")
    if cost_a.min() - cost_b.max() > margin:
        return Verdict(BEHIND, f"the ranges over {a.size} and {b.size} seeds do not overlap")
    return Verdict(UNRESOLVED, "the ranges over seeds overlap")


def compare_photos(wrong_first, wrong_second) -> Verdict:
    """Two nets' mistakes on the same photos (boolean arrays): ahead when the first makes fewer, by McNemar's test."""
    comparison = paired_comparison(wrong_first, wrong_second)
    basis = (
        f"{comparison.only_a} photos only the first gets wrong, {comparison.only_b} only the second; "
        f"p = {comparison.p_value:.2g}"
    )
    return Verdict({"fewer": AHEAD, "more": BEHIND, "unresolved": UNRESOLVED}[comparison.verdict], basis)


def compare_to_reference(value: float, reference: float, tolerance: float, *, better: str = "higher") -> Verdict:
    """``value`` against ``reference``: ahead when better by more than ``tolerance``, behind when worse by more."""
    _check_better(better)
    value, reference = float(value), float(reference)
    if not (np.isfinite(value) and np.isfinite(reference)):
        raise ValueError(f"cannot compare {value!r} with {reference!r}: both must be finite")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    gain = value - reference if better == "higher" else reference - value
    if gain > tolerance:
        return Verdict(AHEAD, f"by {abs(gain):.3g}, more than the tolerance {tolerance:.3g}")
    if gain < -tolerance:
        return Verdict(BEHIND, f"by {abs(gain):.3g}, more than the tolerance {tolerance:.3g}")
    return Verdict(UNRESOLVED, f"within the tolerance {tolerance:.3g}")


__all__ = [
    "AHEAD",
    "BEHIND",
    "DIRECTIONS",
    "UNRESOLVED",
    "Verdict",
    "compare_photos",
    "compare_seeds",
    "compare_to_reference",
]
