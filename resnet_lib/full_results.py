"""Finished runs of ``python -m resnet_lib.reproduce``, read back with where and how they were made.

A maintainer with a GPU runs the paper's experiment once at the ``full`` profile; its
results folder (``results/full`` at the repository root, or ``$RESNET_BOOK_FULL_RESULTS``)
then lets every reader's chapters 3 and 5 show paper-scale curves beside their own small
runs. :func:`full_results` returns those runs, or ``None`` when there are none, and
:func:`provenance` says in one line what made them.

A results folder holds ``runs/<family>-<depth>-s<seed>.json`` (history, configuration,
machine) and, optionally, the matching ``.pt`` weights; the JSON files alone suffice here.
Every record is read through the run store (:func:`resnet_lib.results.verify_run`: schema,
body checksum, weights' SHA); one that fails is skipped with one line naming the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from resnet_lib.results import RunRecordError, StoredRun, verify_run
from resnet_lib.training import History

FULL_RESULTS_ENV = "RESNET_BOOK_FULL_RESULTS"
REPO_ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("plain", "residual")


@dataclass
class FinishedRun:
    """One finished run of a reproduction sweep."""

    family: str
    depth: int
    seed: int
    history: History
    record: dict
    path: Path
    stored: StoredRun | None = None

    @property
    def label(self) -> str:
        return f"{'ResNet' if self.family == 'residual' else 'plain'}-{self.depth}"

    @property
    def profile(self) -> str:
        return self.record["config"]["profile"]

    @property
    def dataset_label(self) -> str:
        return self.record["data"]["label"]

    @property
    def diverged(self) -> bool:
        return self.history.diverged

    @property
    def final(self) -> dict:
        """The last epoch's record: ``step``, ``train_error``, ``test_error``, ..."""
        return self.history.final

    def provenance(self) -> dict:
        """Where, when and how this run was made."""
        machine = self.record.get("machine", {})
        return {
            "profile": self.profile,
            "dataset": self.dataset_label,
            "device": machine.get("device", "unknown"),
            "world_size": machine.get("world_size", 1),
            "platform": machine.get("platform", "unknown"),
            "torch": machine.get("torch", "unknown"),
            "created": self.record.get("created", "unknown"),
            "library_hash": self.record.get("library_hash", "")[:12],
            "command": self.record.get("command", ""),
        }

    def model(self) -> torch.nn.Module:
        """The trained network (CPU, eval mode); needs the run's ``.pt`` weights beside its JSON."""
        from resnet_lib.models import cifar_net

        m = self.record["config"]["model"]
        stored = self.stored or verify_run(self.path, weights="optional")
        net = cifar_net(m["family"], m["depth"], width=m["width"], shortcut=m["shortcut"])
        return stored.load_weights(net).eval()


def full_results_dir() -> Path:
    """``$RESNET_BOOK_FULL_RESULTS``, else ``results/full`` at the repository root."""
    env = os.environ.get(FULL_RESULTS_ENV)
    return Path(env) if env else REPO_ROOT / "results" / "full"


def verify_finished(path: str | Path, weights: str = "optional") -> FinishedRun:
    """The reproduction run whose record is ``path``, verified by the run store; a one-line
    :class:`resnet_lib.results.RunRecordError` when it fails (``weights`` as in ``verify_run``)."""
    stored = verify_run(path, weights=weights)
    record = stored.record
    try:
        model, seed, profile = record["config"]["model"], record["config"]["seed"], record["config"]["profile"]
        family, depth = model["family"], model["depth"]
        ok = isinstance(family, str) and all(type(v) is int for v in (depth, seed)) and isinstance(profile, str)
        ok = ok and all(type(model.get(k)) is t for k, t in (("width", int), ("shortcut", str)))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise RunRecordError(f"{path}: its config is not a reproduction run's (model, seed, profile)")
    return FinishedRun(family, depth, seed, History.from_dict(record["history"]), record, Path(path), stored)


def read_finished(path: str | Path) -> FinishedRun | None:
    """The run whose record is ``path``, or ``None`` when it is missing, partial or fails verification."""
    try:
        return verify_finished(path)
    except RunRecordError:
        return None


def load_runs(directory: str | Path, profile: str | None = None) -> list[FinishedRun]:
    """Every finished run under ``directory/runs`` (of ``profile``, when given), sorted.

    A record that fails verification is skipped with one line (on stderr) naming the file.
    """
    runs = []
    for path in sorted((Path(directory) / "runs").glob("*.json")):
        try:
            runs.append(verify_finished(path))
        except RunRecordError as exc:
            print(f"skipping {exc}", file=sys.stderr)
    if profile is not None:
        runs = [r for r in runs if r.profile == profile]
    return sorted(runs, key=lambda r: (FAMILIES.index(r.family) if r.family in FAMILIES else 9, r.depth, r.seed))


def full_results(
    family: str, depth: int, directory: str | Path | None = None, dataset: str | None = "cifar10"
) -> list[FinishedRun] | None:
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


def provenance(runs: Iterable[FinishedRun]) -> str:
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
    "FinishedRun",
    "full_results",
    "full_results_dir",
    "load_runs",
    "provenance",
    "read_finished",
    "verify_finished",
]
