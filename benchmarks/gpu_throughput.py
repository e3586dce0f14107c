"""Training at the device's pace: the engine against the eager step and the usual DataLoader loop, same run.

Run by hand on a GPU (it also runs on the CPU, where the GPU-only columns read n/a)::

    .venv/bin/python benchmarks/gpu_throughput.py                  # ResNet-20 and ResNet-56, batch 128, 32x32
    .venv/bin/python benchmarks/gpu_throughput.py --quick          # a tiny net on 8x8 images, seconds

For every net, in interleaved rounds (so that a busy machine slows every method alike), it times:

* **loader**: the usual loop: a ``Dataset`` with per-image transforms (pad + random crop, flip, scale,
  normalize), a shuffling ``DataLoader`` (pinned memory on a GPU), ``.to(device)``, SGD, ``loss.item()``;
* **eager step**: forward + backward + SGD on one batch already on the device, no host synchronization:
  the model alone, launched one kernel at a time;
* **graph step**: the same step captured as one CUDA graph and replayed (GPU only);
* **engine per-step**: ``fit(check_every=1, cuda_graph=False)``: the engine as it was, reading its
  divergence checks back every step;
* **engine sync-free**: ``fit(cuda_graph=False)``: the checks kept on the device, read back every 50 steps;
* **engine**: ``fit()`` as the reproduce sweep runs it (on a GPU: the graphed step and sync-free checks;
  on the CPU the same path as per-step);
* **K processes**: ``--processes`` engines training at once on the same device; their images/s summed.

Ratios are printed against the eager step and the engine per-step of the same run, and the He et al.
(2016) Fig. 6 sweep (plain and residual nets at depths 20-110, 3 seeds, 64k iterations of batch 128) is
projected from the measured rates (seconds per step fitted linearly in depth; evaluation not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from resnet_lib.data import ImageDataset, make_standin
from resnet_lib.models import cifar_net
from resnet_lib.recipe import Recipe
from resnet_lib.training import default_device, fit

METHODS = ("loader", "eager_step", "graph_step", "engine_per_step", "engine_sync_free", "engine", "processes")
LABELS = {
    "loader": "loader",
    "eager_step": "eager step",
    "graph_step": "graph step",
    "engine_per_step": "engine per-step",
    "engine_sync_free": "engine sync-free",
    "engine": "engine",
    "processes": "K processes",
}
GPU_ONLY = ("graph_step",)
#: He et al. (2016), Fig. 6: both families at these depths, 3 seeds each here, 64k iterations of batch 128.
FIG6_DEPTHS, FIG6_SEEDS, FIG6_STEPS = (20, 32, 44, 56, 110), 3, 64_000
#: The earlier measurement (one H200, torch 2.11, fp32, batch 128, the shared 32x32 subset), images/s.
BEFORE_H200 = {20: {"engine": 14_384, "eager_step": 17_615}, 56: {"engine": 5_526, "eager_step": 8_962}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- data


class AugmentedImages(Dataset):
    """The tutorial way: uint8 images, transformed one at a time (pad + random crop, flip, scale, normalize)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        size = x.shape[-1]
        mean, std = (x.float() / 255).mean(dim=(0, 2, 3)).tolist(), (x.float() / 255).std(dim=(0, 2, 3)).tolist()
        self.x, self.y = x, y
        self.transform = v2.Compose(
            [
                v2.RandomCrop(size, padding=max(size // 8, 1)),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean, std),
            ]
        )

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def make_images(n: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` stand-in images (uint8) at ``image_size`` pixels, and labels."""
    x, y, _, _ = make_standin(n, 0, seed=0)
    if image_size != 32:
        x = F.interpolate(x.float(), size=image_size, mode="area").round().to(torch.uint8)
    return x, y


def engine_data(x: torch.Tensor, y: torch.Tensor) -> ImageDataset:
    xf = x.float() / 255
    xf = (xf - xf.mean(dim=0, keepdim=True)) / xf.std()
    return ImageDataset("standin", "stand-in", tuple(map(str, range(10))), xf, y, xf[:8], y[:8])


# ----------------------------------------------------------------------------- timed loops


def _sgd(net: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def time_loader(net, loader: DataLoader, steps: int, device: torch.device) -> float:
    optimizer = _sgd(net)
    net.to(device).train()
    batches = iter(loader)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        try:
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = F.cross_entropy(net(xb), yb)
        loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def _prepare(net, xb, yb, device):
    net = net.to(device, memory_format=torch.channels_last).train()
    return net, xb.to(device).contiguous(memory_format=torch.channels_last), yb.to(device), _sgd(net)


def time_eager_step(net, xb, yb, steps: int, device: torch.device) -> float:
    net, xb, yb, optimizer = _prepare(net, xb, yb, device)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(net(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def time_graph_step(net, xb, yb, steps: int, device: torch.device) -> float:
    """The eager step captured as one CUDA graph (the PyTorch recipe: warm-up on a side stream, capture, replay)."""
    net, xb, yb, optimizer = _prepare(net, xb, yb, device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb), yb).backward()
            optimizer.step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        F.cross_entropy(net(xb), yb).backward()
        optimizer.step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        graph.replay()
    sync(device)
    return time.perf_counter() - start


def time_engine(net, data: ImageDataset, device: torch.device, **kwargs) -> float:
    """One ``fit`` epoch over ``data`` (its set-up, graph capture and an 8-image test included)."""
    sync(device)
    start = time.perf_counter()
    fit(net, data, Recipe(epochs=1, lr=0.01), seed=0, progress=False, device=device, **kwargs)
    sync(device)
    return time.perf_counter() - start


def time_processes(args: argparse.Namespace, depth: int, k: int, scratch: Path) -> float:
    """Seconds for ``k`` processes, each one ``fit`` epoch of ``--steps`` batches on the same device, started
    together after their warm-up; the total images over this time is their combined rate."""
    go = scratch / f"go-{depth}"
    go.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", str(depth), "--go", str(go), *_shared_options(args)]
    children = [subprocess.Popen([*cmd, "--result", str(scratch / f"r{depth}-{i}.json")]) for i in range(k)]
    ready = [scratch / f"r{depth}-{i}.json.ready" for i in range(k)]
    while not all(r.exists() for r in ready) and all(c.poll() is None for c in children):
        time.sleep(0.05)
    go.touch()
    if any(c.wait() for c in children):
        raise RuntimeError("a benchmark process failed (its message is above)")
    spans = [json.loads((scratch / f"r{depth}-{i}.json").read_text()) for i in range(k)]
    return max(s["end"] for s in spans) - min(s["start"] for s in spans)


def _shared_options(args: argparse.Namespace) -> list[str]:
    return ["--family", args.family, "--width", str(args.width), "--image-size", str(args.image_size),
            "--steps", str(args.steps), "--device", args.device]  # fmt: skip


def child(args: argparse.Namespace) -> int:
    """One of the K processes: warm up, say so, wait for the others, then time one ``fit`` epoch."""
    device = torch.device(args.device)
    x, y = make_images(args.steps * 128, args.image_size)
    data = engine_data(x, y)
    torch.manual_seed(0)
    time_engine(cifar_net(args.family, args.child, width=args.width), engine_data(x[:256], y[:256]), device)
    Path(args.result + ".ready").touch()
    while not Path(args.go).exists():
        time.sleep(0.01)
    net = cifar_net(args.family, args.child, width=args.width)
    start = time.time()
    time_engine(net, data, device)
    Path(args.result).write_text(json.dumps({"start": start, "end": time.time()}))
    return 0


# ----------------------------------------------------------------------------- the benchmark


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    n = args.steps * 128
    x, y = make_images(n, args.image_size)
    data = engine_data(x, y)
    loader = DataLoader(AugmentedImages(x, y), batch_size=128, shuffle=True, num_workers=args.workers,
                        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)  # fmt: skip
    xb, yb = data.train_x[:128].clone(), data.train_y[:128].clone()
    methods = [
        m for m in METHODS if (device.type == "cuda" or m not in GPU_ONLY) and (m != "processes" or args.processes)
    ]
    seconds = {d: {m: [] for m in methods} for d in args.depths}
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    for r in range(args.rounds + 1):  # round 0 warms up (kernels, cuDNN's choices) and is not counted
        for depth in args.depths:
            order = methods[r % len(methods) :] + methods[: r % len(methods)]
            for method in order:
                torch.manual_seed(0)
                net = cifar_net(args.family, depth, width=args.width)
                if method == "loader":
                    t = time_loader(net, loader, args.steps, device)
                elif method == "eager_step":
                    t = time_eager_step(net, xb, yb, args.steps, device)
                elif method == "graph_step":
                    t = time_graph_step(net, xb, yb, args.steps, device)
                elif method == "engine_per_step":
                    t = time_engine(net, data, device, check_every=1, cuda_graph=False)
                elif method == "engine_sync_free":
                    t = time_engine(net, data, device, cuda_graph=False)
                elif method == "engine":
                    t = time_engine(net, data, device)
                elif r:  # K processes: each warms itself up, so round 0 skips them
                    t = time_processes(args, depth, args.processes, scratch) / args.processes
                if r:
                    seconds[depth][method].append(t)
            if r:
                rates = "  ".join(f"{LABELS[m]} {n / seconds[depth][m][-1]:,.0f}" for m in methods)
                print(f"  round {r}/{args.rounds} depth {depth}: {rates}", flush=True)
    return {"seconds": seconds, "images": n, "methods": methods, "device": str(device)}


def summarize(result: dict) -> dict:
    """Images/s (median of rounds) and ratios (median of per-round ratios: both sides timed in the same round)."""
    n, rows = result["images"], {}
    for depth, by_method in result["seconds"].items():
        ips = {m: statistics.median(n / t for t in ts) for m, ts in by_method.items()}

        def ratio(num: str, den: str, by_method: dict = by_method) -> float:
            return statistics.median(b / a for a, b in zip(by_method[num], by_method[den], strict=True))

        rows[depth] = {
            "images_per_s": ips,
            "over_eager_step": {m: ratio(m, "eager_step") for m in by_method},
            "over_engine_per_step": {m: ratio(m, "engine_per_step") for m in by_method},
        }
    return rows


def fig6_projection(rows: dict) -> dict[str, float]:
    """Hours of the Fig. 6 sweep per method: seconds per step fitted as ``a + b * depth`` over the measured
    depths (through 0 with one depth), summed over both families, the depths and the seeds."""
    out = {}
    depths = sorted(rows)
    for method in rows[depths[0]]["images_per_s"]:
        per_step = [128 / rows[d]["images_per_s"][method] for d in depths]
        slope, intercept = np.polyfit(depths, per_step, 1) if len(depths) > 1 else (per_step[0] / depths[0], 0.0)
        steps = 2 * FIG6_SEEDS * FIG6_STEPS
        out[method] = sum(steps * (intercept + slope * d) for d in FIG6_DEPTHS) / 3600
    return out


def print_report(result: dict, rows: dict, hours: dict, args: argparse.Namespace) -> None:
    methods = result["methods"]
    size = f"{args.image_size}x{args.image_size}"
    print(f"\nImages/s on {result['device']} ({args.family}, width {args.width}, {size}, batch 128, float32; "
          f"median of {args.rounds} rounds of {result['images']} images; K = {args.processes})")  # fmt: skip
    skipped = [LABELS[m] for m in METHODS if m not in methods]
    print("depth | " + " | ".join(f"{LABELS[m]:>16s}" for m in methods))
    for depth, row in rows.items():
        print(f"{depth:5d} | " + " | ".join(f"{row['images_per_s'][m]:16,.0f}" for m in methods))
    for key, name in (("over_eager_step", "the eager step"), ("over_engine_per_step", "the engine per-step")):
        print(f"\nRatio to {name} of the same round (median over rounds)")
        for depth, row in rows.items():
            print(f"{depth:5d} | " + " | ".join(f"{row[key][m]:15.2f}x" for m in methods))
    if skipped:
        print(f"\nn/a here: {', '.join(skipped)} (GPU only, or --processes 0)")
    print(f"\nHe et al. Fig. 6 sweep projected (plain and residual at {', '.join(map(str, FIG6_DEPTHS))}; "
          f"{FIG6_SEEDS} seeds; {FIG6_STEPS:,} steps of 128; one device; evaluation not counted), hours:")  # fmt: skip
    print("  " + "  ".join(f"{LABELS[m]} {h:,.1f}" for m, h in hours.items()))
    before = [f"ResNet-{d} engine {v['engine']:,} vs eager step {v['eager_step']:,}" for d, v in BEFORE_H200.items()]
    print(f"Before this change, one H200 (torch 2.11), images/s: {'; '.join(before)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", nargs="+", type=int, default=[20, 56], help="net depths 6n+2 (default 20 56)")
    parser.add_argument("--family", choices=["residual", "plain"], default="residual", help="(default residual)")
    parser.add_argument("--width", type=int, default=16, help="filters of the first stage (default 16, the paper's)")
    parser.add_argument("--image-size", type=int, choices=[32, 16, 8], default=32, help="pixels (default 32)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after a warm-up round (default 3)")
    parser.add_argument("--processes", type=int, default=4, help="engines at once on the device; 0 skips (default 4)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 4 on a GPU, else 0)")
    parser.add_argument("--device", default=str(default_device()), help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw timings and ratios here")
    parser.add_argument("--scratch", default=None, help="folder for the K processes' hand-shakes (default: a temp)")
    parser.add_argument("--quick", action="store_true", help="depth 8, width 4, 8x8 images, 4 steps, 1 round, K=2")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--go", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        return child(args)
    if args.quick:
        args.depths, args.width, args.image_size, args.steps, args.rounds, args.processes = [8], 4, 8, 4, 1, 2
    if args.steps < 1 or args.rounds < 1 or args.processes < 0 or any(d < 8 or (d - 2) % 6 for d in args.depths):
        parser.error("--steps and --rounds must be >= 1, --processes >= 0, depths 6n+2 >= 8")
    if args.workers is None:
        args.workers = 4 if torch.device(args.device).type == "cuda" else 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args.scratch = args.scratch or tmp
        gpu = args.device.startswith("cuda")
        name = f" ({torch.cuda.get_device_name(torch.device(args.device))})" if gpu else ""
        print(
            f"torch {torch.__version__} on {args.device}{name}, {torch.get_num_threads()} threads, depths {args.depths}"
        )
        result = run(args)
    rows = summarize(result)
    hours = fig6_projection(rows)
    print_report(result, rows, hours, args)
    if args.json:
        record = {"args": {k: str(v) for k, v in vars(args).items()}, **result, "rows": rows, "fig6_hours": hours}
        args.json.write_text(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
