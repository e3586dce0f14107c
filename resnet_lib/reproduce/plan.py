"""The plan of a reproduction sweep: one experiment, the nets to train with it, where results go."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from resnet_lib.distributed import resolve_device
from resnet_lib.full_results import sweep_store
from resnet_lib.profiles import PROFILES, CifarExperiment, profile_name
from resnet_lib.results import RunStore
from resnet_lib.training import resolve_precision

# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """A sweep: one experiment, the nets to train with it, and where the results go."""

    profile: str
    experiment: CifarExperiment
    families: tuple[str, ...]
    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    shortcut: str
    out: Path

    def runs(self) -> list[tuple[str, int, int]]:
        return [(f, d, s) for f in self.families for d in self.depths for s in self.seeds]

    def settings(self) -> dict:
        """What every run in ``out`` shares (``sweep.json``)."""
        exp = self.experiment
        settings = {"profile": self.profile, "data": asdict(exp.data), "recipe": exp.recipe.as_dict()}
        return _jsonable({**settings, "width": exp.width, "shortcut": self.shortcut})

    @property
    def store(self) -> RunStore:
        """Where the runs go: ``out/runs``, one record (and weights) per run, named after it."""
        return sweep_store(self.out)

    def config(self, family: str, depth: int, seed: int) -> dict:
        """Everything that shapes one run (the same fields as :func:`resnet_lib.runs.cifar_run` records)."""
        exp = self.experiment
        return _jsonable(
            {
                "model": {"family": family, "depth": depth, "width": exp.width, "shortcut": self.shortcut},
                "data": asdict(exp.data),
                "recipe": self.experiment.recipe_for(depth).as_dict(),
                "seed": seed,
                "profile": self.profile,
            }
        )


def _jsonable(obj) -> dict:
    return json.loads(json.dumps(obj, default=str))


def run_name(family: str, depth: int, seed: int) -> str:
    """``residual-56-s0``: the file stem of one run."""
    return f"{family}-{depth}-s{seed}"


def make_plan(args: argparse.Namespace) -> Plan:
    """Turn parsed options into a :class:`Plan`; a ``ValueError`` names any bad combination."""
    profile = args.profile or profile_name()
    exp = PROFILES[profile].cifar
    data_over = {k: getattr(args, k) for k in ("dataset", "n_train", "n_val", "n_test", "image_size")}
    data = replace(exp.data, **{k: v for k, v in data_over.items() if v is not None})
    recipe_over = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "warmup_steps", "precision")}
    recipe_over = {k: v for k, v in recipe_over.items() if v is not None}
    if args.max_steps is not None:
        recipe_over["max_steps"] = args.max_steps or None
    recipe = replace(exp.recipe, **recipe_over)
    if recipe.precision == "auto":  # decided here, for this machine, so that results files say what ran
        recipe = replace(recipe, precision=resolve_precision("auto", resolve_device(args.device)))
    width = args.width if args.width is not None else exp.width
    # The sweep trains no slow-start control (that is chapter 3's), so the recipe need not divide by its factor.
    experiment = replace(exp, data=data, recipe=recipe, width=width, slow_start_factor=0)
    if data.n_train is not None and data.n_train < recipe.batch_size:
        raise ValueError(f"--n-train {data.n_train} is smaller than one batch (--batch-size {recipe.batch_size})")
    depths = tuple(dict.fromkeys(args.depths or exp.depths))
    seeds = tuple(dict.fromkeys(args.seeds if args.seeds is not None else exp.seeds))
    families = tuple(dict.fromkeys(args.families))
    out = args.out if args.out is not None else Path("results") / profile
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    return Plan(profile, experiment, families, depths, seeds, args.shortcut, out)
