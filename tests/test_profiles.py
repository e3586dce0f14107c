"""Profiles: one setting chooses how big every experiment is."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from resnet_lib.models import blocks_per_stage
from resnet_lib.notebook import environment_table, training_arithmetic
from resnet_lib.profiles import PROFILE_ENV, PROFILES, Profile, get_profile, profile_name, set_profile
from resnet_lib.recipe import Recipe
from resnet_lib.training import default_device, resolve_precision


def test_the_default_profile_is_default():
    assert profile_name() == "default" and get_profile() is PROFILES["default"]


def test_the_environment_chooses_and_python_overrides(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "ci")
    assert profile_name() == "ci" and get_profile().name == "ci"
    assert set_profile("full").name == "full" and profile_name() == "full"  # the override wins
    assert set_profile(None).name == "ci"  # back to the environment's
    monkeypatch.setenv(PROFILE_ENV, "")
    assert profile_name() == "default"


def test_an_unknown_profile_is_refused(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown profile 'huge'; choose one of: ci, default, full") as err:
        set_profile("huge")
    assert "\n" not in str(err.value)
    assert profile_name() == "default"  # a refused override changes nothing
    monkeypatch.setenv(PROFILE_ENV, "CI")  # names are exact
    with pytest.raises(ValueError, match=r"unknown profile 'CI'; choose one of: ci, default, full"):
        get_profile()


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_is_well_formed(name):
    p = PROFILES[name]
    assert isinstance(p, Profile) and p.name == name and p.description
    for experiment in (p.cifar,):
        assert experiment.data.dataset in ("auto", "cifar10", "standin")
        assert 32 % experiment.data.image_size == 0
        assert experiment.width >= 1 and experiment.seeds
    for depth in (*p.cifar.depths, p.features.depth):
        blocks_per_stage(depth)  # every depth is 6n+2
    # Chapter 6 lesions the degradation experiment's nets: its depth must be one the experiment trains.
    assert p.paths.depth in p.cifar.depths and p.paths.deletion_draws >= 1 and p.paths.path_samples >= 1
    assert all(1 <= k <= 3 * blocks_per_stage(p.paths.depth) for k in p.paths.deletion_ks)
    # Chapter 1 probes the degradation experiment's net, so the results cache shares it.
    assert p.features.depth in p.cifar.depths and p.features.seeds and p.features.pool >= 1
    assert p.as_dict()["name"] == name


def test_ci_is_smaller_than_default_and_full_is_the_papers_recipe():
    ci, default, full = PROFILES["ci"], PROFILES["default"], PROFILES["full"]
    assert ci.cifar.data.n_train <= default.cifar.data.n_train
    assert ci.cifar.recipe.epochs <= default.cifar.recipe.epochs
    assert len(ci.shattering.seeds) <= len(default.shattering.seeds)
    small, big = ci.landscape, full.landscape
    assert small.points_2d <= big.points_2d and small.n_images <= big.n_images
    assert small.lanczos_iterations <= big.lanczos_iterations
    assert small.points_1d % 2 == small.points_2d % 2 == 1  # odd: the trained weights are a grid point
    d = full.cifar
    assert (d.data.dataset, d.data.n_train, d.data.n_val, d.data.image_size) == ("cifar10", None, 5000, 32)
    r = d.recipe
    assert (r.max_steps, r.lr, r.batch_size, r.lr_milestones) == (64_000, 0.1, 128, (0.5, 0.75))
    assert r.total_steps(steps_per_epoch=352) == 64_000  # 45k / 128: 182 epochs cover 64k steps
    assert set(d.depths) == {20, 32, 44, 56, 110} and d.width == 16


def test_every_profile_trains_in_float32_as_the_paper_did():
    for profile in PROFILES.values():  # bfloat16 is opt-in: it made ResNet-56 less stable at the ci budget
        assert profile.cifar.recipe.precision == "fp32"
        assert profile.gradient_flow.recipe(10, 256).precision == "fp32"


def test_the_book_says_which_arithmetic_trained_its_networks():
    assert training_arithmetic(PROFILES["ci"]) == training_arithmetic(PROFILES["full"]) == "float32"
    rows = dict(environment_table(PROFILES["ci"]))
    assert rows["training arithmetic (chapters 1, 3, 5)"].startswith("float32 (Recipe(precision='fp32')")
    fast = replace(PROFILES["ci"], cifar=replace(PROFILES["ci"].cifar, recipe=Recipe(precision="auto")))
    expected = "bfloat16 mixed precision" if resolve_precision("auto", default_device()) == "bf16" else "float32"
    assert training_arithmetic(fast) == expected


def test_only_the_full_profile_warms_resnet_110_up_as_the_paper_did():
    full = PROFILES["full"].cifar
    warm = full.recipe_for(110)
    assert (warm.warmup_steps, warm.warmup_lr) == (400, 0.01)
    assert [warm.lr_at(s, 64_000) for s in (0, 399, 400)] == pytest.approx([0.01, 0.01, 0.1])
    assert full.recipe_for(56) == full.recipe
    for name in ("ci", "default"):
        experiment = PROFILES[name].cifar
        assert experiment.recipe_for(110) == experiment.recipe


def test_a_gpu_buys_the_default_profile_a_larger_budget():
    for profile in PROFILES.values():
        assert profile.for_device("cpu") is profile
        on_gpu = profile.for_device("cuda")
        if profile.cifar_on_gpu is None:
            assert on_gpu is profile
            continue
        cpu, gpu = profile.cifar, on_gpu.cifar
        assert gpu is profile.cifar_on_gpu and on_gpu.cifar_on_gpu is None
        assert gpu.data.image_size >= cpu.data.image_size and gpu.depths == cpu.depths
        assert gpu.seeds == cpu.seeds and gpu.width == cpu.width
        assert gpu.data.n_train is None or (cpu.data.n_train is not None and gpu.data.n_train >= cpu.data.n_train)
        assert gpu.recipe.epochs >= cpu.recipe.epochs
        assert on_gpu.features == profile.features and on_gpu.gradient_flow == profile.gradient_flow
    assert PROFILES["default"].cifar_on_gpu is not None  # what a Colab GPU runtime gets
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; choose 'cpu' or 'cuda'"):
        PROFILES["ci"].for_device("tpu")


def test_get_profile_sizes_for_the_device(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "default")
    assert get_profile("cpu") is PROFILES["default"]
    assert get_profile("cuda").cifar == PROFILES["default"].cifar_on_gpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().cifar == PROFILES["default"].cifar_on_gpu


def test_glue_stores_numpy_and_torch_scalars_as_plain_numbers(monkeypatch):
    """myst-nb formats ``{glue:text}`x:.1f``` from the glued repr: ``np.float64(55.9)`` failed the build."""
    import myst_nb
    import numpy as np
    import torch

    from resnet_lib.notebook import glue

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: seen.__setitem__(name, value))
    glue("a", np.float64(55.875))
    glue("b", np.int64(7))
    glue("c", torch.tensor(0.25))
    glue("d", np.array([1.0, 2.0]))  # arrays stay arrays
    assert seen["a"] == 55.875 and type(seen["a"]) is float and repr(seen["a"]) == "55.875"
    assert type(seen["b"]) is int and type(seen["c"]) is float
    assert isinstance(seen["d"], np.ndarray)


def test_chapter_5_sizes_live_in_the_profile_and_refuse_bad_values():
    from resnet_lib.profiles import PROFILES, ResponsesExperiment

    for profile in PROFILES.values():
        sizes, n_test = profile.responses, profile.cifar.data.n_test
        assert n_test is None or 2 * sizes.line_pairs <= n_test  # the pairs are test images 0-1, 2-3, ...
    with pytest.raises(ValueError, match=r"ResponsesExperiment\.line_pairs") as info:
        ResponsesExperiment(line_pairs=0)
    assert "\n" not in str(info.value)


def test_a_shorter_experiment_divides_the_schedule_and_refuses_what_does_not_divide():
    base = PROFILES["ci"].cifar
    short = base.shorter(2)
    assert (short.recipe.epochs, short.recipe.warmup_steps) == (base.recipe.epochs // 2, base.recipe.warmup_steps // 2)
    assert short.recipe.lr_milestones == base.recipe.lr_milestones and short.slow_start_factor == 0
    assert (short.data, short.width, short.seeds) == (base.data, base.width, base.seeds)
    assert PROFILES["full"].cifar.shorter(2).recipe.max_steps == 32_000
    with pytest.raises(ValueError, match=r"cannot divide the recipe by 3: \{'epochs': 10, 'warmup_steps': 320\}"):
        base.shorter(3)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="factor must be a whole number >= 1"):
            base.shorter(bad)


def test_the_slow_start_control_is_checked_when_the_experiment_is_made():
    from resnet_lib.profiles import CifarExperiment, DataSpec

    ok = CifarExperiment(DataSpec(), Recipe(epochs=10, warmup_steps=4), slow_start_factor=2)
    assert ok.slow_start_by == "shallow"
    with pytest.raises(ValueError, match=r"cannot divide the recipe by 4: \{'epochs': 10\}"):
        CifarExperiment(DataSpec(), Recipe(epochs=10, warmup_steps=4), slow_start_factor=4)
    CifarExperiment(DataSpec(), Recipe(epochs=10), slow_start_factor=4, slow_start_by="deep")  # stretching always fits
    with pytest.raises(ValueError, match="must be 0 \\(no control\\) or at least 2, got 1"):
        CifarExperiment(DataSpec(), Recipe(), slow_start_factor=1)
    with pytest.raises(ValueError, match="slow_start_by must be 'deep' or 'shallow', got 'both'"):
        CifarExperiment(DataSpec(), Recipe(), slow_start_factor=2, slow_start_by="both")
    with pytest.raises(ValueError, match="slow_start_factor must be a whole number >= 0"):
        CifarExperiment(DataSpec(), Recipe(), slow_start_factor=-2)


def test_every_profile_runs_chapter_3s_slow_start_control():
    """Chapter 3 calls a gap degradation only when the deep net with more steps still ends behind."""
    ci, default, full = (PROFILES[n].cifar for n in ("ci", "default", "full"))
    for experiment in (ci, default, full):
        assert experiment.slow_start_factor >= 2 and len(experiment.seeds) >= 2  # paired by seed: two at least
    assert (ci.slow_start_by, ci.shorter(ci.slow_start_factor).recipe.total_steps(71)) == ("shallow", 355)
    assert (default.slow_start_by, default.slow_start_factor) == ("deep", 3)  # He et al.'s 3x (their footnote 3)
    assert (full.slow_start_by, full.shorter(2).recipe.total_steps(352)) == ("shallow", 32_000)
