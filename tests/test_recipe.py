"""The training recipe: the paper's defaults, the learning-rate schedule, and bad input."""

from __future__ import annotations

import pytest

from resnet_lib.recipe import Recipe


def test_the_default_recipe_is_the_papers():
    r = Recipe()
    assert (r.lr, r.momentum, r.weight_decay, r.batch_size) == (0.1, 0.9, 1e-4, 128)
    assert (r.lr_milestones, r.lr_gamma, r.warmup_steps, r.augment) == ((0.5, 0.75), 0.1, 0, True)


def test_the_papers_schedule_divides_by_ten_at_32k_and_48k_of_64k():
    r = Recipe(epochs=182, max_steps=64_000)
    total = r.total_steps(steps_per_epoch=352)  # 45k images / 128 per batch, rounded up
    assert total == 64_000
    lrs = {step: r.lr_at(step, total) for step in (0, 31_999, 32_000, 47_999, 48_000, 63_999)}
    assert lrs == pytest.approx({0: 0.1, 31_999: 0.1, 32_000: 0.01, 47_999: 0.01, 48_000: 0.001, 63_999: 0.001})


def test_total_steps_and_max_steps():
    assert Recipe(epochs=3).total_steps(10) == 30
    assert Recipe(epochs=3, max_steps=25).total_steps(10) == 25
    assert Recipe(epochs=3, max_steps=1000).total_steps(10) == 30  # the epochs still bound the run
    assert Recipe(epochs=3, max_steps=1).total_steps(10) == 1


def test_linear_warmup_then_step_decay():
    r = Recipe(epochs=1, lr=0.1, warmup_steps=4, lr_milestones=(0.5,))
    assert [r.lr_at(s, 20) for s in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert r.lr_at(9, 20) == pytest.approx(0.1) and r.lr_at(10, 20) == pytest.approx(0.01)


def test_constant_warmup_lr_as_for_resnet_110():
    r = Recipe(epochs=1, lr=0.1, warmup_steps=400, warmup_lr=0.01)
    assert r.lr_at(0, 64_000) == r.lr_at(399, 64_000) == 0.01
    assert r.lr_at(400, 64_000) == 0.1


def test_milestones_inside_the_warmup_do_not_cut_it_short():
    r = Recipe(epochs=1, lr=0.1, warmup_steps=10, lr_milestones=(0.1,))
    assert r.lr_at(9, 20) == pytest.approx(0.1)  # still warming up: the ramp wins
    assert r.lr_at(10, 20) == pytest.approx(0.01)


def test_a_run_never_starts_below_its_learning_rate():
    # round(0.5 * 1) == 0: a one-step run must not start at lr / 10.
    for total in (1, 2, 3):
        assert Recipe(epochs=1).lr_at(0, total) == 0.1
    assert [Recipe(epochs=1).lr_at(s, 4) for s in range(4)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_a_recipe_is_plain_data():
    r = Recipe(epochs=2)
    assert r.as_dict()["epochs"] == 2 and Recipe(**r.as_dict()) == r
    assert hash(r) == hash(Recipe(epochs=2))  # frozen: usable as a cache key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"Recipe.epochs must be a whole number >= 1, got 0"),
        ({"batch_size": 0}, r"Recipe.batch_size must be a whole number >= 1, got 0"),
        ({"lr_milestones": (0.5, 1.0)}, r"fractions of training in \(0, 1\)"),
        ({"lr_milestones": (0.0,)}, r"fractions of training in \(0, 1\)"),
        ({"max_steps": 0}, r"Recipe.max_steps must be a whole number >= 1 or None, got 0"),
        ({"warmup_steps": -1}, r"Recipe.warmup_steps must be a whole number >= 0, got -1"),
        ({"precision": "fp16"}, "unknown precision 'fp16'; choose one of: fp32, bf16, auto"),
        # Issue 18, finding 6: these were accepted and trained.
        ({"lr": float("nan")}, r"Recipe.lr must be a finite number in \(0, inf\), got nan"),
        ({"lr": float("inf")}, r"Recipe.lr must be a finite number"),
        ({"lr": -0.1}, r"Recipe.lr must be a finite number in \(0, inf\)"),
        ({"momentum": -0.9}, r"Recipe.momentum must be a finite number in \[0, 1\), got -0.9"),
        ({"momentum": 1.5}, r"Recipe.momentum must be a finite number in \[0, 1\)"),
        ({"epochs": 2.5}, r"Recipe.epochs must be a whole number >= 1, got 2.5"),
        ({"epochs": True}, r"Recipe.epochs must be a whole number"),
        ({"batch_size": 12.0}, r"Recipe.batch_size must be a whole number"),
        ({"weight_decay": -1e-4}, r"Recipe.weight_decay must be a finite number in \[0, inf\)"),
        ({"lr_gamma": 0.0}, r"Recipe.lr_gamma must be a finite number in \(0, inf\)"),
        ({"warmup_lr": float("nan")}, r"Recipe.warmup_lr must be a finite number in \(0, inf\) or None"),
        ({"warmup_steps": 1.5}, r"Recipe.warmup_steps must be a whole number >= 0"),
        ({"max_steps": 10.5}, r"Recipe.max_steps must be a whole number >= 1 or None"),
        ({"lr_milestones": (float("nan"),)}, r"fractions of training in \(0, 1\)"),
        ({"augment": "yes"}, r"Recipe.augment must be True or False"),
        ({"divergence_factor": 1.0}, r"Recipe.divergence_factor must be a finite number in \(1, inf\)"),
    ],
)
def test_bad_recipes_are_refused_with_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        Recipe(**kwargs)
    assert "\n" not in str(err.value)


def test_recipe_numbers_are_stored_as_plain_python_numbers():
    """Whole numbers of another integer type (numpy's, say) are kept as ``int``, so records stay JSON."""
    np = pytest.importorskip("numpy")
    recipe = Recipe(epochs=np.int64(3), batch_size=np.int32(64), lr=np.float32(0.5), lr_milestones=[0.5])
    assert type(recipe.epochs) is int and type(recipe.batch_size) is int and type(recipe.lr) is float
    assert recipe.lr_milestones == (0.5,)
