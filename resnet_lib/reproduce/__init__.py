"""Reproduce the CIFAR-10 experiment of He et al. (2016), section 4.2, from the command line.

Plain and residual nets at the chosen depths and seeds, trained with the chosen profile's
recipe (at ``--profile full``: the paper's 45k/5k split, 64k iterations, learning rate
divided by 10 at 32k and 48k, ResNet-110 warmed up at 0.01 for 400 iterations). Writes one
results file per run, a summary table against the paper's Table 6 and a Fig. 6-style plot::

    python -m resnet_lib.reproduce --profile full --depths 20 56 110 --seeds 0 1 2 --out results/full
    torchrun --standalone --nproc-per-node 4 -m resnet_lib.reproduce --profile full

Run ``python -m resnet_lib.reproduce --help`` for every option. The parts: :mod:`.cli` (options,
``main``), :mod:`.plan` (what a command asks for), :mod:`.sweep` (training and storing the runs),
:mod:`.summary` (the table and figure).
"""

from resnet_lib.reproduce.cli import EPILOG, build_parser, main
from resnet_lib.reproduce.plan import Plan, make_plan, run_name
from resnet_lib.reproduce.summary import fig6_figure, summary_csv, summary_markdown, summary_rows, write_summary
from resnet_lib.reproduce.sweep import run_sweep, train_run

__all__ = [
    "EPILOG",
    "Plan",
    "build_parser",
    "fig6_figure",
    "main",
    "make_plan",
    "run_name",
    "run_sweep",
    "summary_csv",
    "summary_markdown",
    "summary_rows",
    "train_run",
    "write_summary",
]
