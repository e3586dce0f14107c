"""``python -m resnet_lib.fill_cache``: train every net the chapters read into the results cache.

The Makefile's ``runs`` stage, before any notebook runs: the CIFAR nets of chapters 1, 3 and 5-7
(:func:`resnet_lib.runs.train_experiment`), chapter 3's slow-start control and chapter 8's residual family
(:func:`resnet_lib.chapters.residual_family.train_family`), each in one worker process per CPU core.
It sits right of ``chapters`` in the import direction because it trains a chapter's nets.
"""

from __future__ import annotations

import argparse
import time

from resnet_lib.chapters.degradation import EXERCISE_HEAD_START, train_nets, train_slow_start_control
from resnet_lib.chapters.residual_family import train_family
from resnet_lib.profiles import get_profile, set_profile
from resnet_lib.runs import experiment_data, train_experiment


def main(argv: list[str] | None = None) -> int:
    """Train the active profile's CIFAR nets and chapter 8's nets into the results cache."""
    parser = argparse.ArgumentParser(prog="python -m resnet_lib.fill_cache", description=main.__doc__)
    parser.add_argument("--profile", help="ci, default or full (default: $RESNET_BOOK_PROFILE)")
    args = parser.parse_args(argv)
    try:
        profile = set_profile(args.profile) if args.profile else get_profile()
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")

    started = time.perf_counter()
    runs = train_experiment(profile.cifar)
    data = experiment_data(profile.cifar.data)
    print(
        f"{len(runs)} nets of profile {profile.name!r} on {data.label} ({len(data.train_y):,} training images) "
        f"in the results cache, {time.perf_counter() - started:.0f} s"
    )

    started = time.perf_counter()
    control = train_slow_start_control(profile.cifar, progress=False)
    try:  # chapter 3's exercise 5: plain-20 compressed to a fifth of its steps, where the recipe divides by 5
        head_start = profile.cifar.shorter(EXERCISE_HEAD_START)
    except ValueError:
        head_start = None
    if head_start is not None:
        train_nets("plain", head_start, depths=(20,), progress=False)
    print(
        f"chapter 3: slow-start control ({'none' if control is None else f'{control.factor}x, {control.by} net'}) "
        f"and exercise 5's plain-20 in the results cache, {time.perf_counter() - started:.0f} s"
    )

    started = time.perf_counter()
    family = train_family(profile.residual_family)
    count = sum(len(runs) for by_kind in family.values() for runs in by_kind.values())
    print(
        f"chapter 8: {count} nets of profile {profile.name!r} in the results cache, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":  # workers unpickle resnet_lib.runs' functions, none of this module's
    raise SystemExit(main())
