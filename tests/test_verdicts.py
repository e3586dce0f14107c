"""The book's one comparison rule (resnet_lib.measure.verdicts), checked against hand-worked cases."""

import numpy as np
import pytest

from resnet_lib.measure.verdicts import Verdict, compare_photos, compare_seeds, compare_to_reference


def test_paired_by_seed_resolves_what_unpaired_ranges_cannot():
    # chapter 5's finding: ResNet-56 behind ResNet-20 in each seed although the ranges overlap
    resnet56, resnet20 = [55.4, 57.2], [53.5, 55.6]
    assert compare_seeds(resnet56, resnet20).direction == "behind"
    assert compare_seeds(resnet20, resnet56).direction == "ahead"
    assert compare_seeds(resnet56, resnet20, paired=False).direction == "unresolved"


def test_seeds_that_disagree_or_one_seed_are_unresolved():
    assert compare_seeds([1.0, 3.0], [2.0, 2.0]).basis == "the 2 seeds disagree"
    assert compare_seeds([1.0], [2.0]).direction == "unresolved"
    assert compare_seeds([1.0], [2.0]).basis == "one seed"


def test_margin_and_higher_is_better():
    assert compare_seeds([0.9, 0.8], [0.5, 0.4], better="higher").direction == "ahead"
    assert compare_seeds([0.9, 0.8], [0.5, 0.4], better="lower").direction == "behind"
    assert compare_seeds([1.0, 1.0], [1.05, 1.02], margin=0.1).direction == "unresolved"
    assert compare_seeds([1.0, 1.0], [1.2, 1.3], margin=0.1).direction == "ahead"
    assert compare_seeds([1.0, 2.0], [5.0, 6.0], paired=False, margin=2.5).direction == "ahead"
    assert compare_seeds([1.0, 2.0], [5.0, 6.0], paired=False, margin=3.5).direction == "unresolved"
    assert compare_seeds([5.0, 6.0], [1.0, 2.0], paired=False).direction == "behind"


def test_photos_follow_mcnemar_by_enumeration():
    # 20 photos only the first gets wrong, 5 only the second: exact two-sided p = 2 * P(X <= 5), X ~ Bin(25, 1/2)
    first = np.array([True] * 20 + [False] * 5 + [False] * 75)
    second = np.array([False] * 20 + [True] * 5 + [False] * 75)
    from math import comb

    p = 2 * sum(comb(25, i) for i in range(6)) / 2**25
    assert p < 0.05
    verdict = compare_photos(first, second)
    assert verdict.direction == "behind" and f"p = {p:.2g}" in verdict.basis
    assert compare_photos(second, first).direction == "ahead"
    assert compare_photos(first[15:], second[15:]).direction == "unresolved"  # 5 against 5


def test_reference_and_words():
    assert compare_to_reference(0.5, 0.3, 0.1).direction == "ahead"
    assert compare_to_reference(0.35, 0.3, 0.1).direction == "unresolved"
    assert compare_to_reference(0.5, 0.3, 0.1, better="lower").direction == "behind"
    verdict = Verdict("behind", "x")
    assert verdict.words("rises", "falls", "does not move measurably") == "falls"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: compare_seeds([1.0, 2.0], [1.0]), "one value per seed"),
        (lambda: compare_seeds([float("nan"), 1.0], [1.0, 2.0]), "not finite"),
        (lambda: compare_seeds([1.0], [2.0], better="bigger"), "better must be"),
        (lambda: compare_seeds([1.0], [2.0], margin=-1), "margin must be"),
        (lambda: compare_to_reference(1.0, 2.0, -0.1), "tolerance must be"),
        (lambda: Verdict("sideways", ""), "a verdict is one of"),
    ],
)
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()
