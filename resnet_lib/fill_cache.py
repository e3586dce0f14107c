"""``python -m resnet_lib.fill_cache``: train every net the chapters read into the results cache.

The Makefile's ``runs`` stage, before any notebook runs: the CIFAR nets of chapters 1, 3 and 5-7
(:func:`resnet_lib.runs.train_experiment`) and chapter 8's residual family
(:func:`resnet_lib.chapters.residual_family.train_family`), each in one worker process per CPU core.
It sits right of ``chapters`` in the import direction because it trains a chapter's nets.
"""

from __future__ import annotations

import argparse
import time

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
    family = train_family(profile.residual_family)
    count = sum(len(runs) for by_kind in family.values() for runs in by_kind.values())
    print(
        f"chapter 8: {count} nets of profile {profile.name!r} in the results cache, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":  # workers unpickle resnet_lib.runs' functions, none of this module's
    raise SystemExit(main())
