"""The summary of a reproduction folder: a table beside the paper's Table 6, as markdown and CSV, and Fig. 6."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from resnet_lib import paper
from resnet_lib.full_results import load_runs, provenance
from resnet_lib.models import FAMILIES
from resnet_lib.reproduce.plan import Plan
from resnet_lib.results import atomic_write_bytes
from resnet_lib.runs import CifarRun

# ----------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _pm(values: list[float]) -> str:
    if not values:
        return "—"
    mean, std = _mean_std([100 * v for v in values])
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def summary_rows(runs: list[CifarRun]) -> list[dict]:
    """One row per (family, depth): errors in percent over seeds, beside the paper's Table 6.

    Diverged runs are counted (``diverged``, and seed@step in ``diverged_at``) but left out of
    the errors: a diverged net's error says nothing about its depth.
    """
    rows = []
    for family, depth in dict.fromkeys((r.family, r.depth) for r in runs):
        group = [r for r in runs if (r.family, r.depth) == (family, depth)]
        kept = [r for r in group if not r.history.diverged]
        test = [r.final["test_error"] for r in kept if r.final]
        train = [r.final["train_error"] for r in kept if r.final]
        val = [r.record["val_error"] for r in kept if r.record.get("val_error") is not None]
        reported = paper.TABLE6.get(depth) if family == "residual" else None
        test_mean, test_std = _mean_std([100 * v for v in test]) if test else (None, None)
        rows.append(
            {
                "model": group[0].label,
                "family": family,
                "depth": depth,
                "parameters": group[0].record.get("parameters"),
                "seeds": len(group),
                "diverged": sum(r.history.diverged for r in group),
                "diverged_at": " ".join(f"s{r.seed}@{r.history.diverged_at_step}" for r in group if r.history.diverged),
                "iterations": max((r.final.get("step", 0) for r in group), default=0),
                "test_error_mean": test_mean,
                "test_error_std": test_std,
                "test_error": _pm(test) if kept else "diverged",
                "train_error": _pm(train) if kept else "diverged",
                "val_error": _pm(val) if kept else "diverged",
                "paper_test_error": reported[0] if reported else None,
                "paper_parameters_m": reported[1] if reported else None,
            }
        )
    return rows


def summary_markdown(rows: list[dict], runs: list[CifarRun]) -> str:
    """The summary table as markdown, with a line saying what made the runs."""
    lines = [
        "# CIFAR-10 experiment of He et al. (2016): reproduction summary",
        "",
        f"Made by: {provenance(runs)}.",
        "",
        "Errors in %, final iteration, mean ± standard deviation over seeds. The paper's numbers are its "
        "Table 6 (test error of the ResNets; the plain nets appear only in its Fig. 6; for ResNet-110 it "
        f"reports the best of 5 runs, mean {paper.RESNET110_MEAN_STD[0]} ± {paper.RESNET110_MEAN_STD[1]}). "
        "Diverged runs are listed, not averaged.",
    ]
    datasets = sorted({r.dataset_label for r in runs})
    if len(datasets) > 1:
        lines += ["", f"**Warning: these runs used different data ({'; '.join(datasets)}).**"]
    if runs[0].record["data"]["name"] != "cifar10":
        lines += ["", f"**Data: {runs[0].dataset_label}. These are not CIFAR-10 results.**"]
    lines += [
        "",
        "| model | parameters | seeds | iterations | train error | test error | validation error | paper (Table 6) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        reported = "—" if r["paper_test_error"] is None else f"{r['paper_test_error']:.2f}"
        diverged = f" ({r['diverged']} diverged, seed@step: {r['diverged_at']})" if r["diverged"] else ""
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['seeds']}{diverged} | {r['iterations']:,} | "
            f"{r['train_error']} | {r['test_error']} | {r['val_error']} | {reported} |"
        )
    return "\n".join(lines) + "\n"


def summary_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _mean_history(group: list[CifarRun]) -> list[dict]:
    """Mean training and test error over the runs of ``group``, epoch by epoch."""
    n = min(len(r.history.epochs) for r in group)
    keys = ("train_error", "test_error")
    return [
        {
            "step": group[0].history.epochs[i]["step"],
            **{k: statistics.fmean(r.history.epochs[i][k] for r in group) for k in keys},
        }
        for i in range(n)
    ]


def fig6_figure(runs: list[CifarRun]):
    """He et al.'s Fig. 6 (left and middle): plain nets and ResNets, error against iterations, mean over seeds."""
    from resnet_lib.plots.curves import plot_error_curves
    from resnet_lib.plots.style import depth_shade, new_figure

    families = [f for f in FAMILIES if any(r.family == f for r in runs)]
    fig, axes = new_figure(1, len(families), figsize=(5.5 * len(families), 4.2), sharey=True, squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        depths = sorted({r.depth for r in runs if r.family == family})
        for depth in depths:
            group = [r for r in runs if (r.family, r.depth) == (family, depth)]
            kept = [r for r in group if not r.history.diverged]  # a diverged run is named, not averaged
            color = depth_shade(family, depth, depths)
            gone = f", {len(group) - len(kept)} diverged" if len(kept) < len(group) else ""
            label = f"{group[0].label} ({len(kept)} seed{'s' if len(kept) != 1 else ''}{gone})"
            if kept:
                plot_error_curves(ax, _mean_history(kept), color, label, x="step")
            else:
                ax.plot([], [], color=color, marker="x", ls="none", label=f"{group[0].label}: every seed diverged")
        ax.set_title("plain networks" if family == "plain" else "ResNets")
        ax.legend(title="dashed: training, solid: test")
    fig.suptitle(f"He et al. (2016) Fig. 6 reproduced, '{runs[0].profile}' profile\n{runs[0].dataset_label}")
    return fig


SUMMARY_FILES = ("summary.md", "summary.csv", "fig6.png")


def mixing_problem(runs: list[CifarRun]) -> str | None:
    """What makes ``runs`` unfit to be averaged together (other data, or another version of resnet_lib),
    or ``None``."""
    for what, of in (
        ("datasets", lambda r: f"{r.record['data'].get('name')} ({r.dataset_label})"),
        ("image counts", lambda r: str([r.record["data"].get(k) for k in ("n_train", "n_val", "n_test")])),
        ("versions of resnet_lib", lambda r: str(r.record.get("library_hash", ""))[:12]),
    ):
        found = sorted({of(r) for r in runs})
        if len(found) > 1:
            return f"runs of {len(found)} {what} ({'; '.join(found[:3])})"
    return None


def write_summary(plan: Plan) -> list[Path]:
    """Write ``summary.md``, ``summary.csv`` and ``fig6.png`` from the finished runs in ``plan.out``.

    With no finished runs, a stale summary and plot are removed (and nothing is written). Runs of different
    data or library versions are never averaged: a one-line ``ValueError`` (the stale summary removed too).
    """
    runs = [r for r in load_runs(plan.out) if r.record["config"]["profile"] == plan.profile]
    paths = [plan.out / name for name in SUMMARY_FILES]
    problem = mixing_problem(runs) if runs else None
    if not runs or problem:
        for path in paths:
            path.unlink(missing_ok=True)
    if problem:
        raise ValueError(
            f"{plan.out / 'runs'} holds {problem}: not averaging them together; move them to one --out each"
        )
    if not runs:
        return []
    rows = summary_rows(runs)
    atomic_write_bytes(paths[0], summary_markdown(rows, runs).encode())
    atomic_write_bytes(paths[1], summary_csv(rows).encode())
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = fig6_figure(runs)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(paths[2], buffer.getvalue())
    return paths
