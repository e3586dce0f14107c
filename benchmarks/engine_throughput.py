"""Training throughput of resnet_lib's engine against the plain torchvision way, same models, same run.

Run by hand (it is not a test; it takes minutes)::

    .venv/bin/python benchmarks/engine_throughput.py            # ResNet-20/56/110, plain-20/56
    .venv/bin/python benchmarks/engine_throughput.py --quick    # ResNet-20 and plain-56, fewer steps

For every model it times, interleaved round by round so that a busy machine slows all alike:

* **torchvision**: ``torchvision.datasets.CIFAR10`` (reading a CIFAR-format folder written from
  the stand-in) with per-image PIL transforms (4-pixel pad + random crop, flip, ToTensor,
  Normalize), a ``DataLoader`` with shuffling, the model in the default memory format, SGD;
* **engine fp32**: ``resnet_lib.fit`` itself, one epoch over the same number of images (tensor-resident
  data, batched augmentation, channels_last), in float32 as the paper trained;
* **engine**: the same with ``Recipe(precision="auto")``, the book's ci and default profiles:
  bfloat16 mixed precision where the CPU does bfloat16 in hardware (AVX512-BF16, AMX), else float32;
* **model alone**: forward + backward + SGD step on one pre-made batch, in the default memory
  format, in channels_last, and in channels_last at the engine's precision: what the model costs
  with no data handling at all.

It prints images/s, the engine's speed-up over torchvision split into its two factors (memory
format and data handling; arithmetic precision), the engine's share of the model-alone speed,
the time spent on data handling alone, and how the time per epoch grows with depth.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

from resnet_lib.data import ImageDataset, iterate_batches, make_standin
from resnet_lib.models import cifar_net
from resnet_lib.recipe import Recipe
from resnet_lib.training import fit, precision_autocast, resolve_precision

MODELS = {
    "resnet20": ("residual", 20),
    "resnet56": ("residual", 56),
    "resnet110": ("residual", 110),
    "plain20": ("plain", 20),
    "plain56": ("plain", 56),
}
BATCH = 128
EPOCH_IMAGES = 45_000  # the paper's training split
METHODS = ("torchvision", "engine_fp32", "engine", "alone_nchw", "alone_cl", "alone_cl_fast")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = ["wall"]


def clock() -> float:
    """The chosen clock: wall time, or this process's CPU time (steadier on a shared machine)."""
    return CLOCKS[_clock[0]]()


# ----------------------------------------------------------------------------- data, both ways


class FolderCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's own CIFAR-10 reader, minus the MD5 checks (the folder holds the stand-in)."""

    meta: ClassVar[dict] = {**torchvision.datasets.CIFAR10.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


def write_cifar_folder(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """``x`` (N, 3, 32, 32) uint8 as a ``cifar-10-batches-py`` folder (5 train batches, a test batch, meta)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = x.reshape(len(x), -1), y.tolist()
    for i, part in enumerate(np.array_split(np.arange(len(x)), 5), start=1):
        entry = {"data": rows[part], "labels": [labels[j] for j in part]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": rows[:BATCH], "labels": labels[:BATCH]}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}, protocol=2))


def torchvision_loader(root: Path, mean: list[float], std: list[float], workers: int) -> DataLoader:
    """The tutorial way: a Dataset with per-image transforms, batched by a DataLoader."""
    augment = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    dataset = FolderCIFAR10(str(root), train=True, transform=augment)
    return DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0)


def engine_dataset(x: torch.Tensor, y: torch.Tensor) -> ImageDataset:
    """The same images as resnet_lib holds them: normalized float tensors (as ``load_dataset`` does)."""
    xf = x.float() / 255
    xf = (xf - xf.mean(dim=0, keepdim=True)) / xf.std()
    return ImageDataset("standin", "stand-in", tuple(map(str, range(10))), xf, y, xf[:8], y[:8])


class Batches:
    """An endless stream of a DataLoader's batches (a new epoch starts when one ends)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.it = loader, iter(loader)

    def next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


# ----------------------------------------------------------------------------- timed loops


def _sgd(net: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def time_torchvision(net: torch.nn.Module, batches: Batches, steps: int) -> float:
    """Seconds for ``steps`` training steps of the DataLoader loop (bookkeeping as fit does it)."""
    optimizer, wrong = _sgd(net), 0
    net.train()
    start = clock()
    for _ in range(steps):
        xb, yb = batches.next()
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        wrong += (logits.argmax(1) != yb).sum().item()
    return clock() - start


def time_engine(net: torch.nn.Module, data: ImageDataset, steps: int, seed: int, precision: str) -> float:
    """Seconds for one ``fit`` epoch of ``steps`` batches (includes its set-up and an 8-image test)."""
    start = clock()
    fit(net, data, Recipe(epochs=1, lr=0.01, precision=precision), seed=seed, progress=False, device="cpu")
    return clock() - start


def time_alone(
    net: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, steps: int, channels_last: bool, precision: str = "fp32"
) -> float:
    """Seconds for ``steps`` forward + backward + SGD steps on one pre-made batch."""
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        xb = xb.contiguous(memory_format=torch.channels_last)
    optimizer = _sgd(net)
    net.train()
    start = clock()
    for _ in range(steps):
        with precision_autocast(precision, "cpu"):
            logits = net(xb)
        loss = F.cross_entropy(logits.float(), yb)
        loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return clock() - start


def data_only_ms(batches: Batches, data: ImageDataset, steps: int) -> dict[str, float]:
    """Milliseconds per batch of data handling alone: the DataLoader, and the engine's batched path."""
    start = clock()
    for _ in range(steps):
        batches.next()
    loader = (clock() - start) / steps
    gen = torch.Generator().manual_seed(0)
    start = clock()
    for n, (xb, _) in enumerate(iterate_batches(data.train_x, data.train_y, BATCH, gen, augment=True), start=1):
        xb.contiguous(memory_format=torch.channels_last)
        if n == steps:
            break
    engine = (clock() - start) / steps
    return {"torchvision": 1000 * loader, "engine": 1000 * engine}


# ----------------------------------------------------------------------------- the benchmark


def run(models: list[str], steps: int, rounds: int, workers: int, fast: str) -> dict:
    n = steps * BATCH
    x, y, _, _ = make_standin(n, 0, seed=0)
    data = engine_dataset(x, y)
    xf = x.float() / 255
    mean, std = xf.mean(dim=(0, 2, 3)).tolist(), xf.std(dim=(0, 2, 3)).tolist()
    tmp = tempfile.TemporaryDirectory()
    write_cifar_folder(Path(tmp.name), x.numpy(), y.numpy())
    batches = Batches(torchvision_loader(Path(tmp.name), mean, std, workers))
    fixed_x, fixed_y = data.train_x[:BATCH].clone(), data.train_y[:BATCH].clone()

    nets = {}
    for name in models:
        family, depth = MODELS[name]
        torch.manual_seed(0)
        nets[name] = {m: cifar_net(family, depth) for m in METHODS}  # same initial weights for every method
    seconds: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METHODS} for name in models}
    for r in range(rounds + 1):  # round 0 warms up (first calls build kernels) and is not counted
        for name in models:
            order = METHODS[r % len(METHODS) :] + METHODS[: r % len(METHODS)]  # rotate who goes first
            for method in order:
                net = nets[name][method]
                if method == "torchvision":
                    t = time_torchvision(net, batches, steps)
                elif method.startswith("engine"):
                    t = time_engine(net, data, steps, seed=r, precision="fp32" if method == "engine_fp32" else fast)
                else:
                    precision = fast if method == "alone_cl_fast" else "fp32"
                    t = time_alone(net, fixed_x, fixed_y, steps, method != "alone_nchw", precision)
                if r:
                    seconds[name][method].append(t)
            if r:
                ips = {m: n / seconds[name][m][-1] for m in METHODS}
                print(
                    f"  round {r}/{rounds} {name:10s} " + "  ".join(f"{m} {v:6.1f}" for m, v in ips.items()), flush=True
                )
    data_ms = data_only_ms(batches, data, steps)
    tmp.cleanup()
    return {"seconds": seconds, "data_ms": data_ms, "images_per_measurement": n, "fast_precision": fast}


def summarize(result: dict, target: float) -> dict:
    """Images/s (median over rounds) and ratios (median of per-round ratios: both sides measured together)."""
    n, rows = result["images_per_measurement"], {}
    for name, by_method in result["seconds"].items():
        ips = {m: statistics.median(n / t for t in ts) for m, ts in by_method.items()}

        def ratios(num: str, den: str, by_method: dict = by_method) -> list[float]:
            return [a / b for a, b in zip(by_method[num], by_method[den], strict=True)]

        speedup = ratios("torchvision", "engine")
        rows[name] = {
            "images_per_s": ips,
            "engine_over_torchvision": statistics.median(speedup),
            "engine_over_torchvision_range": (min(speedup), max(speedup)),
            "engine_fp32_over_torchvision": statistics.median(ratios("torchvision", "engine_fp32")),
            "engine_over_engine_fp32": statistics.median(ratios("engine_fp32", "engine")),
            "engine_share_of_model_alone": statistics.median(ratios("alone_cl_fast", "engine")),
            "engine_fp32_share_of_model_alone": statistics.median(ratios("alone_cl", "engine_fp32")),
            "target_met": statistics.median(speedup) >= target,
            "target_met_fp32": statistics.median(ratios("torchvision", "engine_fp32")) >= target,
        }
    return rows


def depth_table(rows: dict) -> list[dict]:
    """Seconds per epoch of 45,000 images with the engine, by family and depth, and per layer."""
    out = []
    for name, row in rows.items():
        family, depth = MODELS[name]
        s = EPOCH_IMAGES / row["images_per_s"]["engine"]
        out.append(
            {"model": name, "family": family, "depth": depth, "s_per_epoch": s, "s_per_epoch_per_layer": s / depth}
        )
    return sorted(out, key=lambda r: (r["family"], r["depth"]))


def print_table(columns: list[tuple[str, int]], rows: list[list[str]]) -> None:
    """A header of ``(name, width)`` columns, a rule, and the rows (first column left-aligned, others right)."""

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, columns, strict=True))
        return " | ".join(f"{c:{'<' if i == 0 else '>'}{w}s}" for i, (c, (_, w)) in pairs)

    head = line([name for name, _ in columns])
    print(head)
    print("-" * len(head))
    for cells in rows:
        print(line(cells))


def print_report(result: dict, rows: dict, threads: int, workers: int, target: float) -> None:
    n_rounds = len(next(iter(result["seconds"].values()))["engine"])
    fast = result["fast_precision"]
    print(
        f"\nThroughput, images/s ({_clock[0]} clock): batch {BATCH}, 32x32, {threads} threads, "
        f"DataLoader workers {workers}; "
        f"median of {n_rounds} interleaved rounds of {result['images_per_measurement']} images. "
        f"'engine' trains in {fast}, 'engine fp32' in float32 as the paper did"
    )
    print_table(
        [
            ("model", 10),
            ("torchvision", 11),
            ("engine fp32", 11),
            ("engine", 7),
            ("alone NCHW", 10),
            ("alone CL", 8),
            (f"alone CL {fast}", 13),
        ],
        [[name, *(f"{row['images_per_s'][m]:.1f}" for m in METHODS)] for name, row in rows.items()],
    )
    print(
        f"\nRatios (median of per-round ratios). engine/torchvision = (engine fp32/torchvision: memory format "
        f"and data handling) x (engine/engine fp32: {fast} arithmetic). "
        f"engine/alone: 1.0 means data handling costs nothing."
    )
    print_table(
        [
            ("model", 10),
            ("engine/torchvision", 18),
            ("engine fp32/torchvision", 23),
            ("engine/engine fp32", 18),
            ("engine/alone", 12),
            ("engine fp32/alone", 17),
        ],
        [
            [
                name,
                "{:.2f}x ({:.2f}-{:.2f})".format(row["engine_over_torchvision"], *row["engine_over_torchvision_range"]),
                f"{row['engine_fp32_over_torchvision']:.2f}x",
                f"{row['engine_over_engine_fp32']:.2f}x",
                f"{row['engine_share_of_model_alone']:.2f}",
                f"{row['engine_fp32_share_of_model_alone']:.2f}",
            ]
            for name, row in rows.items()
        ],
    )
    for key, label in (("target_met", f"engine ({fast})"), ("target_met_fp32", "engine fp32")):
        met = [name for name, row in rows.items() if row[key]]
        print(f"target {label}/torchvision >= {target}x: met by {len(met)} of {len(rows)} ({', '.join(met) or 'none'})")
    d = result["data_ms"]
    print(
        f"\nData handling alone, ms per batch of {BATCH}: torchvision DataLoader {d['torchvision']:.1f}, "
        f"engine (gather + batched pad/crop/flip + channels_last) {d['engine']:.1f}"
    )
    print(f"\nEngine time per epoch of {EPOCH_IMAGES:,} images against depth (linear growth: constant per layer)")
    print(f"{'model':10s} | {'depth':>5s} | {'s/epoch':>8s} | {'s/epoch/layer':>13s}")
    for r in depth_table(rows):
        print(f"{r['model']:10s} | {r['depth']:5d} | {r['s_per_epoch']:8.1f} | {r['s_per_epoch_per_layer']:13.3f}")
    for family in ("residual", "plain"):
        points = [(r["depth"], r["s_per_epoch"]) for r in depth_table(rows) if r["family"] == family]
        if len(points) >= 2:
            slope, intercept = np.polyfit([d for d, _ in points], [s for _, s in points], 1)
            print(
                f"{family}: s/epoch = {intercept:.1f} + {slope:.2f} x depth (least squares over depths "
                f"{', '.join(str(d) for d, _ in points)}); the intercept is {100 * intercept / points[-1][1]:+.1f}% "
                f"of the deepest net's epoch"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="models to time")
    parser.add_argument("--steps", type=int, default=4, help="training steps per measurement (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds after a warm-up round (default 3)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall time, or the process's CPU time: with --threads 1 on a machine shared with other jobs, "
        "CPU time is what the run would take on its own (default wall)",
    )
    parser.add_argument("--target", type=float, default=1.5, help="speed-up the engine should reach (default 1.5)")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="arithmetic of the 'engine' column: auto (bf16 where the CPU has it in hardware), fp32 or bf16; "
        "'engine fp32' is always timed too (default auto)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw timings here")
    parser.add_argument("--quick", action="store_true", help="ResNet-20 and plain-56, 2 rounds")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.workers < 0:
        parser.error("--steps and --rounds must be >= 1 and --workers >= 0")
    if args.clock == "cpu" and args.workers:
        parser.error("--clock cpu cannot see DataLoader worker processes; use --workers 0")
    _clock[0] = args.clock
    if args.quick:
        args.models, args.rounds = ["resnet20", "plain56"], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {threads} threads, models {args.models}")
    fast = resolve_precision("auto", "cpu") if args.precision == "auto" else args.precision
    result = run(args.models, args.steps, args.rounds, args.workers, fast)
    rows = summarize(result, args.target)
    print_report(result, rows, threads, args.workers, args.target)
    if args.json:
        args.json.write_text(
            json.dumps({"args": {**vars(args), "json": str(args.json)}, **result, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
