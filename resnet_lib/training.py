"""One training engine: the paper's recipe, batched tensor data, progress, divergence, checkpoints."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset, iterate_batches
from resnet_lib.recipe import Recipe, check_precision


@dataclass
class History:
    """What a run did, epoch by epoch, as plain numbers (JSON-ready).

    ``precision`` is the arithmetic the run used (``"fp32"`` or ``"bf16"``).
    ``epochs`` holds one dict per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``,
    ``train_error`` (running average over the epoch's augmented mini-batches, as in
    He et al.'s curves), ``test_loss``, ``test_error`` and ``seconds``. A run whose loss
    became NaN or infinite stops with ``diverged=True`` and the step it happened at.
    """

    epochs: list[dict] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    diverged: bool = False
    diverged_at_step: int | None = None
    precision: str = "fp32"

    @property
    def final(self) -> dict:
        """The last epoch's record (empty before the first epoch ends)."""
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**d)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` does bfloat16 arithmetic in hardware, so that autocasting to it pays.

    GPUs: compute capability 8.0 (Ampere) and later. CPUs: x86 with AVX512-BF16 or AMX
    (oneDNN then runs convolutions in bfloat16); elsewhere bfloat16 would be emulated, and slower.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and (
            torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        )
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"fp32"`` or ``"bf16"``: a recipe's ``precision``, with ``"auto"`` decided for ``device``."""
    if check_precision(precision) == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_autocast(precision: str, device: torch.device | str) -> torch.autocast:
    """Mixed precision for ``"bf16"`` (matrix products and convolutions in bfloat16), nothing for ``"fp32"``."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _to_device(x: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    batch_size: int = 1000,
    channels_last: bool = True,
    precision: str = "fp32",
) -> tuple[float, float]:
    """Mean cross-entropy loss and error rate (a fraction) of ``model`` in eval mode."""
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    was_training = model.training
    model.eval()
    loss_sum, wrong = 0.0, 0
    for i in range(0, len(y), batch_size):
        xb, yb = _to_device(x[i : i + batch_size], device, channels_last), y[i : i + batch_size].to(device)
        with precision_autocast(precision, device):
            logits = model(xb)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        wrong += (logits.argmax(1) != yb).sum().item()
    model.train(was_training)
    return loss_sum / len(y), wrong / len(y)


# ----------------------------------------------------------------- data parallel (fit(distributed=True))


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _broadcast_checkpoint(path: Path | None, rank: int, device: torch.device) -> dict | None:
    """Rank 0 reads the checkpoint (if any) and every rank receives it: no shared disk is needed."""
    box = [None]
    if rank == 0 and path is not None and path.exists():
        box[0] = torch.load(path, map_location="cpu", weights_only=False)
    dist.broadcast_object_list(box, src=0, device=device if device.type == "cuda" else None)
    return box[0]


def _global_step_metrics(loss: Tensor, logits: Tensor, y: Tensor) -> tuple[float, int, int]:
    """Mean loss, number of images and number of errors of the global batch (summed over ranks)."""
    with torch.no_grad():
        n = torch.tensor(float(len(y)), device=loss.device)
        sums = torch.stack([loss.detach().double() * n, n.double(), (logits.argmax(1) != y).sum().double()])
        dist.all_reduce(sums)
    loss_sum, n_total, n_wrong = sums.tolist()
    return loss_sum / n_total, int(n_total), int(n_wrong)


@torch.no_grad()
def _evaluate_distributed(
    model: nn.Module, x: Tensor, y: Tensor, channels_last: bool, precision: str
) -> tuple[float, float]:
    """:func:`evaluate` with the test set shared out over ranks, all using rank 0's BatchNorm statistics."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
    xs, ys = x[rank::world_size], y[rank::world_size]
    device = next(model.parameters()).device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    if len(ys):
        loss, error = evaluate(model, xs, ys, channels_last=channels_last, precision=precision)
        sums += torch.tensor([loss * len(ys), error * len(ys), len(ys)], dtype=torch.float64, device=device)
    dist.all_reduce(sums)
    loss_sum, wrong, n = sums.tolist()
    return loss_sum / n, wrong / n


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    model: nn.Module,
    data: ImageDataset,
    recipe: Recipe | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    desc: str = "training",
    device: torch.device | str | None = None,
    stop_after_epochs: int | None = None,
    distributed: bool = False,
) -> History:
    """Train ``model`` on ``data.train_*`` with ``recipe``; evaluate on ``data.test_*`` each epoch.

    Mini-batch order and augmentation for epoch ``e`` come from a generator seeded with
    ``(seed, e)``, so a run resumed from ``checkpoint`` (saved atomically after every
    epoch) ends with the same history as one that never stopped. A NaN or infinite loss
    stops training and is reported in the returned :class:`History`, never raised.
    ``stop_after_epochs`` ends this call early (the checkpoint stays), as an interruption would.

    ``distributed=True`` trains data-parallel in the ``torch.distributed`` process group that
    :func:`resnet_lib.distributed.init_distributed` joined: every rank draws the same global batch
    of ``recipe.batch_size`` images and trains on its share ``batch[rank::world_size]`` under
    ``DistributedDataParallel``; losses and error counts are summed over ranks, so the history
    means what a single-process one means. Only rank 0 shows progress and writes the checkpoint.
    """
    recipe = recipe or Recipe()
    device = torch.device(device) if device is not None else default_device()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if distributed and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    precision = resolve_precision(recipe.precision, device)
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    n = len(data.train_y)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = recipe.total_steps(steps_per_epoch)
    history, step, start_epoch = History(precision=precision), 0, 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if distributed:
        state = _broadcast_checkpoint(ckpt_path, rank, device)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history, step, start_epoch = History.from_dict(state["history"]), state["step"], state["epoch"]
    elif ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, step, start_epoch = History.from_dict(state["history"]), state["step"], state["epoch"]
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    net = _data_parallel(model, device) if distributed else model
    bar = tqdm(total=total_steps, initial=step, desc=desc, disable=not progress or rank != 0, leave=False, unit="step")
    model.train()
    for epoch in range(start_epoch, recipe.epochs):
        if step >= total_steps or history.diverged:
            break
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)
        started, loss_sum, wrong, seen = time.perf_counter(), 0.0, 0, 0
        for xb, yb in iterate_batches(train_x, train_y, recipe.batch_size, gen, augment=recipe.augment):
            if step >= total_steps:
                break
            if distributed:
                if len(yb) < world_size:  # too few images to give every rank one: every rank skips it alike
                    continue
                xb, yb = xb[rank::world_size], yb[rank::world_size]
            lr = recipe.lr_at(step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with precision_autocast(precision, device):
                logits = net(_to_device(xb, device, recipe.channels_last))
            logits = logits.float()
            loss = F.cross_entropy(logits, yb)
            if distributed:
                loss_value, n_batch, n_wrong = _global_step_metrics(loss, logits, yb)
            else:
                loss_value = loss.item()
            history.step_losses.append(loss_value)
            if not math.isfinite(loss_value):
                history.diverged, history.diverged_at_step = True, step
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if distributed:
                loss_sum, wrong, seen = loss_sum + loss_value * n_batch, wrong + n_wrong, seen + n_batch
            else:
                loss_sum += loss_value * len(yb)
                wrong += (logits.argmax(1) != yb).sum().item()
                seen += len(yb)
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.3g}")
        if distributed:
            test_loss, test_error = _evaluate_distributed(
                model, data.test_x, data.test_y, recipe.channels_last, precision
            )
        else:
            test_loss, test_error = evaluate(
                model, data.test_x, data.test_y, channels_last=recipe.channels_last, precision=precision
            )
        history.epochs.append(
            {
                "epoch": epoch + 1,
                "step": step,
                "lr": lr,
                "train_loss": loss_sum / seen if seen else float("nan"),
                "train_error": wrong / seen if seen else float("nan"),
                "test_loss": test_loss,
                "test_error": test_error,
                "seconds": time.perf_counter() - started,
            }
        )
        if ckpt_path is not None and not history.diverged and rank == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            _atomic_save({**state, "history": history.to_dict(), "step": step, "epoch": epoch + 1}, ckpt_path)
        if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
            break
    bar.close()
    return history
