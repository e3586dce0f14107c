"""Finished runs of ``python -m resnet_lib.reproduce``, read back with where and how they were made.

A maintainer with a GPU runs the paper's experiment once at the ``full`` profile; its
results folder (``results/full`` at the repository root, or ``$RESNET_BOOK_FULL_RESULTS``)
then lets every reader's chapters 3 and 5 show paper-scale curves beside their own small
runs. :func:`full_results` returns those runs (:class:`resnet_lib.runs.CifarRun`, as the
chapters' own), or ``None`` when there are none, and :func:`provenance` says in one line what
made them.

A results folder holds a named run store (:func:`sweep_store`): ``runs/<family>-<depth>-s<seed>.json``
(history, configuration, machine) and, optionally, the matching ``.pt`` weights; the JSON files
alone suffice here. Every record is verified as it is read (:func:`resnet_lib.results.verify_run`:
schema, body checksum, weights' SHA); one that fails is skipped with one line naming the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from resnet_lib.models import FAMILIES
from resnet_lib.results import RunRecordError, RunStore, absolute_folder
from resnet_lib.runs import CifarRun

FULL_RESULTS_ENV = "RESNET_BOOK_FULL_RESULTS"
REPO_ROOT = Path(__file__).resolve().parent.parent


def full_results_dir() -> Path:
    """``$RESNET_BOOK_FULL_RESULTS`` (``~`` expanded, made absolute), else ``results/full`` at the repository root."""
    env = os.environ.get(FULL_RESULTS_ENV)
    return absolute_folder(env) if env else REPO_ROOT / "results" / "full"


def sweep_store(directory: str | Path) -> RunStore:
    """The runs of the reproduction folder ``directory``: ``directory/runs``, named after each run."""
    return RunStore(Path(directory) / "runs", by_key=False)


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def load_runs(directory: str | Path, profile: str | None = None, quiet: bool = False) -> list[CifarRun]:
    """Every finished run of the reproduction folder ``directory`` (of ``profile``, when given), sorted.

    A record that fails verification, or is not a CIFAR run's, is skipped with one line on stderr
    naming the file (none when ``quiet``).
    """
    say = None if quiet else _say_on_stderr
    runs = []
    for stored in sweep_store(directory).runs(weights="optional", say=say):
        try:
            runs.append(CifarRun.from_stored(stored))
        except RunRecordError as exc:
            if say is not None:
                say(f"skipping {exc}")
    if profile is not None:
        runs = [r for r in runs if r.profile == profile]
    return sorted(runs, key=lambda r: (FAMILIES.index(r.family), r.depth, r.seed))


def full_results(
    family: str, depth: int, directory: str | Path | None = None, dataset: str | None = "cifar10"
) -> list[CifarRun] | None:
    """The finished ``full``-profile runs of ``family``-``depth`` (one per seed), or ``None``.

    ``directory`` defaults to :func:`full_results_dir`. Only runs on ``dataset`` count
    (``None``: any data), so a full-profile sweep run on the stand-in is never shown as the
    paper's scale. ``None`` means the book should run its own profile instead.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of: {', '.join(FAMILIES)}")
    directory = Path(directory) if directory is not None else full_results_dir()
    runs = [
        r
        for r in load_runs(directory, profile="full")
        if r.family == family and r.depth == depth and (dataset is None or r.record["data"].get("name") == dataset)
    ]
    return runs or None


def provenance(runs: Iterable[CifarRun]) -> str:
    """One line for a caption: what data, how many seeds, which machine, when, with what."""
    runs = list(runs)
    if not runs:
        raise ValueError("provenance() needs at least one finished run")
    info = [r.provenance() for r in runs]
    devices = sorted({f"{i['world_size']}× {i['device']}" if i["world_size"] > 1 else i["device"] for i in info})
    dates = sorted(i["created"][:10] for i in info)
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    steps = sorted({r.final.get("step", 0) for r in runs})
    seeds = sorted({r.seed for r in runs})
    return (
        f"{runs[0].dataset_label}, '{runs[0].profile}' profile ({', '.join(f'{s:,}' for s in steps)} iterations), "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; trained with python -m resnet_lib.reproduce on "
        f"{', '.join(devices)} ({info[0]['platform']}, torch {info[0]['torch']}), {when}"
    )


__all__ = [
    "FULL_RESULTS_ENV",
    "full_results",
    "full_results_dir",
    "load_runs",
    "provenance",
    "sweep_store",
]
