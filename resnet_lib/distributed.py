"""Data-parallel training with PyTorch's own engine: ``torchrun`` and DistributedDataParallel.

Launch any script (or ``python -m resnet_lib.reproduce``) with ``torchrun``; it starts one
process per GPU (or per CPU worker) and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``.
:func:`init_distributed` reads them and joins the process group: NCCL when the processes
train on GPUs, gloo on the CPU. Without ``torchrun`` it returns a one-process :class:`World`
and starts nothing, so the same code runs both ways::

    torchrun --standalone --nproc-per-node 4 -m resnet_lib.reproduce --profile full
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m resnet_lib.reproduce --profile full        # the same command on both machines

``fit(..., parallel=world.parallelism())`` then trains with :class:`DataParallel`, which splits
every global batch of 128 images across the ranks; rank 0 writes the results.

The rendezvous (every process joining) waits at most ``rendezvous_timeout`` seconds
(``--rendezvous-timeout``, ``$RESNET_BOOK_RENDEZVOUS_TIMEOUT``, default 120): a peer that never
starts is one line, :class:`RendezvousError`, not half an hour of silence. Every collective after it
waits at most ``$RESNET_BOOK_COLLECTIVE_TIMEOUT`` seconds (default 1800, enough for rank 0 to
download CIFAR-10 while the others wait): a rank that stopped or hangs then makes the others fail,
and :func:`collective_failure` turns that into one line. Before training, :class:`DataParallel`
compares every rank's data (:func:`data_fingerprint`): ranks that loaded different data stop alike.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from resnet_lib.data import ImageDataset
from resnet_lib.training import Parallelism, evaluate, read_checkpoint

DEVICES = ("auto", "cpu", "cuda")
TIMEOUT_ENV = "RESNET_BOOK_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0
RENDEZVOUS_ENV = "RESNET_BOOK_RENDEZVOUS_TIMEOUT"
DEFAULT_RENDEZVOUS_TIMEOUT_S = 120.0
#: The longest rendezvous timeout accepted (seconds): a day.
MAX_RENDEZVOUS_TIMEOUT_S = 86_400.0


class RendezvousError(ValueError):
    """The processes of a job did not all join within the rendezvous timeout (one line)."""


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``world_size`` processes, its device and backend."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: a single process, no process group

    @property
    def distributed(self) -> bool:
        """True when a process group of more than one process is running."""
        return self.backend is not None and self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that prints and writes files."""
        return self.rank == 0

    def describe(self) -> dict:
        """What a results record says about how the run was spread out."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {"world_size": self.world_size, "backend": self.backend or "none", "device": name}

    def parallelism(self) -> Parallelism:
        """How :func:`resnet_lib.training.fit` spreads a run over this world: :class:`DataParallel`
        when a process group of several processes runs, else one process."""
        return DataParallel() if self.distributed else Parallelism()


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or another launcher) set ``WORLD_SIZE`` for this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {value!r}") from None


def collective_timeout_s() -> float:
    """``$RESNET_BOOK_COLLECTIVE_TIMEOUT`` (seconds, > 0), else :data:`DEFAULT_TIMEOUT_S`."""
    value = os.environ.get(TIMEOUT_ENV)
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"${TIMEOUT_ENV} must be a positive number of seconds, got {value!r}")
    return seconds


def rendezvous_timeout_s(seconds: float | None = None) -> float:
    """``seconds``, else ``$RESNET_BOOK_RENDEZVOUS_TIMEOUT``, else :data:`DEFAULT_RENDEZVOUS_TIMEOUT_S`;
    a one-line ``ValueError`` unless it is a number of seconds above 0 and at most a day."""
    value = seconds if seconds is not None else os.environ.get(RENDEZVOUS_ENV)
    if value is None:
        return DEFAULT_RENDEZVOUS_TIMEOUT_S
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number <= MAX_RENDEZVOUS_TIMEOUT_S:
        where = "the rendezvous timeout" if seconds is not None else f"${RENDEZVOUS_ENV}"
        raise ValueError(f"{where} must be a number of seconds above 0 and at most 86400, got {value!r}")
    return number


_COLLECTIVE_FAILURE = re.compile(r"timed? ?out|timeout|connection (closed|reset)|broken pipe|peer", re.IGNORECASE)


def collective_failure(exc: BaseException, world: World) -> str | None:
    """One line for a collective that timed out or lost a peer (another rank stopped or hangs),
    or ``None`` when ``exc`` is something else."""
    if not world.distributed or not isinstance(exc, RuntimeError) or not _COLLECTIVE_FAILURE.search(str(exc)):
        return None
    first = re.sub(r"^\[[^\]]*\]\s*", "", (str(exc).strip().splitlines() or [""])[0])[:120]
    return (
        f"rank {world.rank} of {world.world_size}: another process stopped or hangs ({first}); ending the job "
        f"(timeout {collective_timeout_s():g} s, ${TIMEOUT_ENV})"
    )


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` (the local GPU when there is one, else the CPU), ``cpu`` or ``cuda``."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no GPU is visible to PyTorch; use 'cpu' or 'auto'")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _rendezvous(world_size: int, seconds: float) -> tuple[dist.Store, int]:
    """The store every process of the job joined (``env://``: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``)
    and this process's rank, once all ``world_size`` joined; a :class:`RendezvousError` after ``seconds``."""
    from torch.distributed.rendezvous import rendezvous

    rank = _env_int("RANK", 0)
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    timeout = timedelta(seconds=seconds)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    keys = [f"resnet_lib/joined/{attempt}/{r}" for r in range(world_size)]
    store = None
    try:
        store, rank, _ = next(rendezvous("env://", timeout=timeout))
        store.set_timeout(timeout)
        store.set(keys[rank], "1")
        store.wait(keys, timeout)
    except (RuntimeError, ValueError) as exc:  # DistStoreError, DistNetworkError: a peer or the master is missing
        try:
            joined = "" if store is None else f"{sum(store.check([k]) for k in keys)} of {world_size} joined; "
        except RuntimeError:
            joined = ""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]
        raise RendezvousError(
            f"rank {rank} of {world_size}: not every process joined the rendezvous at {where} within {seconds:g} s "
            f"({joined}{first}); start all {world_size} processes (same MASTER_ADDR and MASTER_PORT), or raise "
            f"--rendezvous-timeout / ${RENDEZVOUS_ENV}"
        ) from None
    return store, rank


def init_distributed(
    device: str = "auto", backend: str | None = None, rendezvous_timeout: float | None = None
) -> World:
    """Join the process group ``torchrun`` describes, or return a one-process :class:`World`.

    ``backend`` defaults to NCCL when the processes use GPUs and gloo on the CPU. Joining waits at most
    ``rendezvous_timeout`` seconds (see :func:`rendezvous_timeout_s`), then raises :class:`RendezvousError`.
    """
    world_size, local_rank = _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    resolved = resolve_device(device, local_rank)
    if not launched_by_torchrun() or world_size == 1:
        return World(0, 1, 0, resolved, None)
    seconds = rendezvous_timeout_s(rendezvous_timeout)
    if backend is None:
        backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        store, rank = _rendezvous(world_size, seconds)
        collective = timedelta(seconds=collective_timeout_s())
        prefixed = dist.PrefixStore("default_pg", store)  # as init_process_group names it without a store
        dist.init_process_group(backend=backend, store=prefixed, rank=rank, world_size=world_size, timeout=collective)
        store.set_timeout(collective)
    return World(dist.get_rank(), dist.get_world_size(), local_rank, resolved, backend)


def barrier(world: World) -> None:
    """Wait until every rank reaches this point (a no-op for one process)."""
    if world.distributed:
        if world.device.type == "cuda":
            dist.barrier(device_ids=[world.device.index])
        else:
            dist.barrier()


def broadcast_object(obj, world: World):
    """Rank 0's ``obj`` on every rank (e.g. a decision that only rank 0 can make)."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=world.device if world.device.type == "cuda" else None)
    return box[0]


def first_error(error: str | None, world: World) -> str | None:
    """The first rank's ``error`` that is not ``None``, on every rank (each rank passes its own)."""
    if not world.distributed:
        return error
    errors: list = [None] * world.world_size
    dist.all_gather_object(errors, error)
    return next((e for e in errors if e), None)


class DataParallel(Parallelism):
    """:func:`resnet_lib.training.fit` data-parallel over the running ``torch.distributed`` process group.

    Every rank draws the same global batch of ``recipe.batch_size`` images and trains on its share
    ``batch[rank::world_size]`` under ``DistributedDataParallel``; losses and error counts are summed
    over ranks, so the history means what a single-process one means. Rank 0 reads the checkpoint
    and hands it out (no shared disk is needed); only rank 0 shows progress and writes it.
    """

    #: Every step all-reduces: the sync-free checks and the CUDA graph stay off (``fit`` checks every step).
    local = False

    def __init__(self) -> None:
        if not dist.is_initialized():
            raise ValueError("DataParallel needs a torch.distributed process group; join one with init_distributed()")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        return device

    def check_data(self, data: ImageDataset, device: torch.device) -> None:
        """Every rank's :func:`data_fingerprint`, compared: a mismatch is the same one-line ``ValueError``
        on every rank, before any training."""
        prints: list = [None] * self.world_size
        dist.all_gather_object(prints, data_fingerprint(data))
        odd = [r for r, p in enumerate(prints) if p != prints[0]]
        if odd:
            show = lambda p: f"{p['label']}, {p['n_train']}/{p['n_val']}/{p['n_test']} images, {p['sha256'][:12]}"
            raise ValueError(
                f"rank {odd[0]} of {self.world_size} loaded other data than rank 0 ({show(prints[odd[0]])}, not "
                f"{show(prints[0])}); every process must load the same dataset (check $RESNET_BOOK_DATA on every "
                "machine, or pass --dataset)"
            )

    def read_checkpoint(self, path: Path | None, identity: dict, device: torch.device) -> dict | None:
        box: list = [None]
        if self.rank == 0 and path is not None:
            try:
                box[0] = read_checkpoint(path, identity)
            except ValueError as exc:
                box[0] = str(exc)  # every rank raises it, not rank 0 alone
        dist.broadcast_object_list(box, src=0, device=device if device.type == "cuda" else None)
        if isinstance(box[0], str):
            raise ValueError(box[0])
        return box[0]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def shard(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor] | None:
        if len(yb) < self.world_size:  # too few images to give every rank one: every rank skips it alike
            return None
        return xb[self.rank :: self.world_size], yb[self.rank :: self.world_size]

    def step_metrics(self, loss: Tensor, logits: Tensor, yb: Tensor) -> tuple[float, int, int]:
        with torch.no_grad():
            n = torch.tensor(float(len(yb)), device=loss.device)
            sums = torch.stack([loss.detach().double() * n, n.double(), (logits.argmax(1) != yb).sum().double()])
            dist.all_reduce(sums)
        loss_sum, n_total, n_wrong = sums.tolist()
        return loss_sum / n_total, int(n_total), int(n_wrong)

    def all_stop(self, bad: str | None, device: torch.device) -> str | None:
        # BatchNorm statistics are per rank: every rank must stop alike.
        flag = torch.tensor([0.0 if bad is None else 1.0], device=device)
        dist.all_reduce(flag)
        return bad or ("the state of another rank" if flag.item() else None)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, x: Tensor, y: Tensor, channels_last: bool, precision: str
    ) -> tuple[float, float]:
        """The test set shared out over ranks, all using rank 0's BatchNorm statistics."""
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
        xs, ys = x[self.rank :: self.world_size], y[self.rank :: self.world_size]
        device = next(model.parameters()).device
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        if len(ys):
            loss, error = evaluate(model, xs, ys, channels_last=channels_last, precision=precision)
            sums += torch.tensor([loss * len(ys), error * len(ys), len(ys)], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        loss_sum, wrong, n = sums.tolist()
        return loss_sum / n, wrong / n


def data_fingerprint(data: ImageDataset) -> dict:
    """What identifies ``data``: its name, label, image counts and size, and a SHA-256 of all its tensors."""
    digest = hashlib.sha256()
    for t in (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y):
        if t is None:
            digest.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{list(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return {**data.describe(), "sha256": digest.hexdigest()}


def shutdown(world: World) -> None:
    """Leave the process group (a no-op for one process)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "DEVICES",
    "DataParallel",
    "RendezvousError",
    "World",
    "barrier",
    "broadcast_object",
    "collective_failure",
    "collective_timeout_s",
    "data_fingerprint",
    "first_error",
    "init_distributed",
    "launched_by_torchrun",
    "rendezvous_timeout_s",
    "resolve_device",
    "shutdown",
]
