"""What every chapter's first cell calls: seeds, plot style, and a profile banner."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from resnet_lib.plots.style import use_book_style
from resnet_lib.profiles import PROFILE_ENV, PROFILES, Profile, get_profile, set_profile
from resnet_lib.results import RESULTS_ENV, results_dir


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0, profile: str | None = None, banner: bool = True) -> Profile:
    """Seed everything, apply the book's plot style, and say which profile runs.

    ``profile`` overrides ``$RESNET_BOOK_PROFILE`` for this kernel. With neither, the
    ``default`` profile runs; the banner says so, and where finished training runs are cached.
    """
    if profile is not None:
        set_profile(profile)
    seed_everything(seed)
    use_book_style()
    active = get_profile()
    if banner:
        where = "Colab, " if "google.colab" in sys.modules else ""
        hardware = (
            torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
        )
        chosen_by = "rl.setup(profile=...)" if profile is not None else profile_source()
        cache_by = f"${RESULTS_ENV}" if os.environ.get(RESULTS_ENV) else f"the default; set ${RESULTS_ENV} to move it"
        print(
            f"The ResNet Book, profile '{active.name}' ({chosen_by}): {active.description}.\n"
            f"torch {torch.__version__.split('+')[0]} on {where}{hardware}; networks train in "
            f"{training_arithmetic(active)}. Other profiles: RESNET_BOOK_PROFILE={'|'.join(PROFILES)}.\n"
            f"Results cache: {results_dir()} ({cache_by}).\n"
            f"{stamp()}"
        )
    return active


def source_commit() -> str:
    """The git commit resnet_lib runs from (``+ local changes`` where the checkout differs), or ``"not a checkout"``."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "not a checkout"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "resnet_lib", "book"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "not a checkout"
    return head.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")


def data_source() -> str:
    """Which images ``dataset="auto"`` will use in this kernel, said before any is loaded."""
    from resnet_lib.data import auto_dataset, default_data_root

    choice = auto_dataset()
    if choice == "standin":
        return "the procedural stand-in ($RESNET_BOOK_DATASET=standin)"
    folder = default_data_root() / "cifar-10-batches-py"
    if folder.is_dir():
        return f"CIFAR-10 from {folder}"
    return f"CIFAR-10, downloaded into {folder} when online, else the procedural stand-in"


def stamp() -> str:
    """What this page was made with: book version, commit, execution date, profile and data."""
    from resnet_lib import __version__

    executed = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"Made with The ResNet Book {__version__} (commit {source_commit()}), executed {executed}, "
        f"profile '{get_profile().name}', data: {data_source()}."
    )


def profile_source() -> str:
    """Where the active profile's name came from, for the banner."""
    from resnet_lib import profiles

    if profiles._override is not None:
        return "set_profile"
    return f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else f"${PROFILE_ENV} unset: the default"


def training_arithmetic(profile: Profile | None = None) -> str:
    """How this kernel's CIFAR networks train: ``"float32"`` or ``"bfloat16 mixed precision"``."""
    from resnet_lib.training import default_device, resolve_precision

    profile = profile or get_profile()
    precision = resolve_precision(profile.cifar.recipe.precision, default_device())
    return "bfloat16 mixed precision" if precision == "bf16" else "float32"


def glue(name: str, value, display: bool = False):
    """Glue ``value`` for the book's prose (myst-nb); a no-op where myst-nb is missing.

    A NumPy or PyTorch scalar is glued as the plain Python number it holds: its repr
    (``np.float64(55.9)``) would not take a format such as ``{glue:text}`name:.1f```.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # np.float64, np.int64, 0-d tensors
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:  # e.g. Colab without the book tool-chain
        return value
    _glue(name, value, display=display)
    return value


def environment_table(profile: Profile | None = None) -> list[tuple[str, str]]:
    """Rows describing where and how this kernel runs the book: profile, data, software, hardware."""
    import platform
    import time

    from resnet_lib.runs import experiment_data

    profile = profile or get_profile()
    data = experiment_data(profile.cifar.data)
    return [
        ("profile", f"{profile.name}: {profile.description}"),
        (
            "dataset (chapters 1, 2, 3, 5)",
            f"{data.label}, {len(data.train_y):,} training and "
            f"{len(data.test_y):,} test images of {data.image_size}x{data.image_size} pixels",
        ),
        ("dataset (chapter 4)", "256 evenly spaced scalar inputs on [-2, 2]"),
        (
            "training arithmetic (chapters 1, 3, 5)",
            f"{training_arithmetic(profile)} (Recipe(precision={profile.cifar.recipe.precision!r}); "
            "measurements of chapters 2 and 4 are float32)",
        ),
        ("executed", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        ("python / torch", f"{platform.python_version()} / {torch.__version__}"),
        (
            "hardware",
            f"{torch.cuda.get_device_name()} GPU"
            if torch.cuda.is_available()
            else f"CPU, {torch.get_num_threads()} threads ({platform.machine()})",
        ),
    ]
