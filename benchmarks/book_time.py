"""The whole book's time budget: execute every chapter in order, cold cache, and time each one.

Run by hand (it trains everything the profile asks for)::

    RESNET_BOOK_PROFILE=ci .venv/bin/python benchmarks/book_time.py          # budget: 10 minutes
    .venv/bin/python benchmarks/book_time.py --profile ci --keep-cache DIR   # reuse / keep a results cache

Notebooks run as the book build runs them (one fresh kernel each, in the table of contents'
order, sharing one results cache, so chapter 5 reuses chapter 3's trained runs). It also times
a notebook holding only the set-up cell, which is what every chapter pays before its first
experiment (kernel start-up, importing torch and resnet_lib).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks() -> list[Path]:
    """The book's notebooks in table-of-contents order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def execute(path: Path, timeout: int, slowest: int = 0) -> tuple[float, float]:
    """Wall seconds to execute ``path`` in a fresh kernel (from its folder, as the build does), and the
    kernel's CPU seconds (all threads; on a machine shared with other jobs the steadier of the two).
    Prints the ``slowest`` cells, so the cost can be found where it is."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    with client.setup_kernel():
        kernel = psutil.Process(client.km.provisioner.process.pid)
        cells = []
        for index, cell in enumerate(nb.cells):
            began = time.perf_counter()
            client.execute_cell(cell, index)
            cells.append((time.perf_counter() - began, index, cell.source.strip().splitlines()[:1]))
        cpu = kernel.cpu_times()
    for seconds, index, first in sorted(cells, reverse=True)[:slowest]:
        print(f"    cell {index:2d}: {seconds:6.1f}s  {(first or [''])[0][:70]}")
    return time.perf_counter() - start, cpu.user + cpu.system + cpu.children_user + cpu.children_system


def setup_only(timeout: int) -> tuple[float, float]:
    """Seconds for a notebook that holds nothing but the set-up cell."""
    chapter = toc_notebooks()[0]
    first = next(c for c in nbformat.read(chapter, as_version=4).cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(first.source)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "setup_only.ipynb"
        nbformat.write(nb, path)
        return execute(path, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=os.environ.get("RESNET_BOOK_PROFILE", "ci"), help="profile (default ci)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds allowed for all notebooks (600)")
    parser.add_argument("--keep-cache", type=Path, default=None, help="results cache to use (default: a fresh one)")
    parser.add_argument("--only", nargs="+", default=None, help="notebook names to run (default: all in the TOC)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell before giving up")
    parser.add_argument("--slowest", type=int, default=3, help="list this many slowest cells per notebook (3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads in each kernel (OMP_NUM_THREADS; default: torch's)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    cache = args.keep_cache or Path(tempfile.mkdtemp(prefix="resnet_book_results_"))
    os.environ.update(
        {"RESNET_BOOK_PROFILE": args.profile, "RESNET_BOOK_RESULTS": str(cache), "MPLBACKEND": "agg"}
        | {"TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    )
    notebooks = [p for p in toc_notebooks() if args.only is None or p.stem in args.only or p.name in args.only]
    print(f"profile {args.profile}, results cache {cache}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    base, base_cpu = setup_only(args.timeout)
    print(f"{'notebook':40s} {'wall':>8s} {'kernel CPU':>11s}")
    print(f"{'(set-up cell alone: start, imports)':40s} {base:7.1f}s {base_cpu:10.1f}s", flush=True)
    times, failed = {}, []
    for path in notebooks:
        try:
            times[path.name] = execute(path, args.timeout, slowest=args.slowest)
            print(f"{path.name:40s} {times[path.name][0]:7.1f}s {times[path.name][1]:10.1f}s", flush=True)
        except Exception as exc:  # a failing claim check or any error: report it and go on
            failed.append(path.name)
            print(f"{path.name:40s} FAILED: {type(exc).__name__}: {str(exc).splitlines()[-1][:200]}", flush=True)
    total = sum(wall for wall, _ in times.values())
    total_cpu = sum(cpu for _, cpu in times.values())
    used = f"budget {args.budget:.0f} s ({100 * total / args.budget:.0f}% used)"
    print(f"{'total':40s} {total:7.1f}s {total_cpu:10.1f}s   {used}")
    print(f"of which set-up (about {base:.1f} s per notebook): {base * len(times):.1f} s")
    if failed:
        print(f"failed: {', '.join(failed)}")
    if args.keep_cache is None:
        shutil.rmtree(cache, ignore_errors=True)
    return 1 if failed or total > args.budget else 0


if __name__ == "__main__":
    sys.exit(main())
