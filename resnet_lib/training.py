"""One training engine: the paper's recipe, batched tensor data, progress, divergence, checkpoints."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import operator
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from resnet_lib.data import ImageDataset, iterate_batches
from resnet_lib.recipe import Recipe, check_precision, check_whole
from resnet_lib.results import atomic_write_bytes


@dataclass
class History:
    """What a run did, epoch by epoch, as plain numbers (JSON-ready).

    ``precision`` is the arithmetic the run used (``"fp32"`` or ``"bf16"``).
    ``epochs`` holds one dict per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``,
    ``train_error`` (running average over the epoch's augmented mini-batches, as in
    He et al.'s curves), ``test_loss``, ``test_error`` and ``seconds``. A run that diverged
    (see :func:`divergence`) stops with ``diverged=True``, the optimizer step (0-based) at which
    it was seen in ``diverged_at_step``, and what was seen in ``diverged_reason``.
    """

    epochs: list[dict] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    diverged: bool = False
    diverged_at_step: int | None = None
    precision: str = "fp32"
    diverged_reason: str | None = None

    @property
    def final(self) -> dict:
        """The last epoch's record (empty before the first epoch ends)."""
        return self.epochs[-1] if self.epochs else {}

    def mark_diverged(self, step: int, reason: str) -> None:
        """Record that the run diverged at optimizer step ``step`` (0-based), and why."""
        self.diverged, self.diverged_at_step, self.diverged_reason = True, step, reason

    def divergence_line(self, name: str = "run") -> str | None:
        """One line saying where and why ``name`` diverged, or ``None`` when it did not."""
        if not self.diverged:
            return None
        return f"{name} diverged at step {self.diverged_at_step}: {self.diverged_reason or 'non-finite loss'}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**d)


#: The largest seed :func:`fit` takes (each epoch's generator is seeded with ``seed * 1_000_003 + epoch``).
MAX_SEED = 2**32 - 1


def check_seed(seed) -> int:
    """``seed`` when it is a whole number from 0 to :data:`MAX_SEED`, else a one-line ``ValueError``."""
    try:
        ok = not isinstance(seed, bool) and 0 <= operator.index(seed) <= MAX_SEED
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return operator.index(seed)


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


# ----------------------------------------------------------------- divergence


def loss_divergence(loss: float, start: float | None, factor: float, what: str = "training loss") -> str | None:
    """Why ``loss`` means divergence (non-finite, or above ``factor`` times the run's first
    training loss ``start``), or ``None`` when it does not."""
    if not math.isfinite(loss):
        return f"{what} is {loss}"
    if start is not None and math.isfinite(start) and start > 0 and loss > factor * start:
        return f"{what} {loss:.3g} is above {factor:g}x the starting training loss {start:.3g}"
    return None


def non_finite_state(model: nn.Module) -> str | None:
    """The name of the first parameter or buffer (BatchNorm statistics) of ``model`` holding a NaN
    or infinity, or ``None`` when all are finite (one reduction, one synchronization)."""
    named = [(n, t) for n, t in model.state_dict().items() if t.is_floating_point()]
    if not named:
        return None
    largest = torch.nn.utils.get_total_norm([t.detach() for _, t in named], norm_type=math.inf)
    if math.isfinite(largest.item()):
        return None
    return next((n for n, t in named if not torch.isfinite(t).all()), "?")


# ----------------------------------------------------------------- checkpoints


def _data_fingerprint(data: ImageDataset) -> list:
    """Cheap identity of a dataset: sizes and sums (float64) of its images and labels."""
    sums = [float(t.double().sum()) for t in (data.train_x, data.train_y, data.test_x, data.test_y)]
    return [len(data.train_y), len(data.test_y), data.image_size, *sums]


def checkpoint_identity(model: nn.Module, data: ImageDataset, recipe: Recipe, seed: int) -> dict:
    """What a checkpoint must match to be resumed: seed, recipe, data and the model's tensors."""
    shapes = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    return {"seed": seed, "recipe": recipe.as_dict(), "data": _data_fingerprint(data), "model": shapes}


def _identity_difference(there: dict, here: dict) -> str | None:
    for key in ("seed", "recipe", "data", "model"):
        a, b = there.get(key), here[key]
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    return f"recipe.{k}: {a.get(k)!r} there, {b.get(k)!r} here"
        elif a != b and key in ("data", "model"):
            return f"another {'dataset' if key == 'data' else 'model'}"
        elif a != b:
            return f"{key}: {a!r} there, {b!r} here"
    return None


#: A checkpoint file: this line (with the SHA-256 of what follows), then the bytes of ``torch.save``.
CHECKPOINT_MAGIC = b"resnet_lib checkpoint sha256="


def checkpoint_bytes(state: dict) -> bytes:
    """``state`` as the bytes of a checkpoint file: a header line with its SHA-256, then ``torch.save``'s bytes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def load_checkpoint_file(path: Path) -> dict:
    """The training state in the checkpoint file ``path``, its SHA-256 verified *before* it is unpickled
    (``weights_only=True``); a one-line ``ValueError`` saying what is wrong otherwise."""
    blob = Path(path).read_bytes()
    header, _, payload = blob.partition(b"\n")
    if not header.startswith(CHECKPOINT_MAGIC):
        raise ValueError("no checksum header: not a checkpoint this library wrote")
    if hashlib.sha256(payload).hexdigest().encode() != header.removeprefix(CHECKPOINT_MAGIC):
        raise ValueError("its contents do not match its SHA-256: damaged")
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not {"model", "optimizer", "history", "step", "epoch"} <= set(state):
        raise ValueError("not a training checkpoint")
    History.from_dict(state["history"])
    return state


def read_checkpoint(path: Path, identity: dict) -> dict | None:
    """The checkpoint at ``path`` when it verifies and belongs to the run ``identity`` describes.

    A missing file is ``None``. A file that fails its SHA-256 or does not load (truncated, a flipped
    bit, not a checkpoint) is discarded with one warning line, so that the run starts again; a
    checkpoint of another run (another seed, recipe, data or model) is a one-line ``ValueError``:
    it is never resumed.
    """
    if not path.exists():
        return None
    try:
        state = load_checkpoint_file(path)
    except Exception as exc:  # damaged, truncated zip, bad pickle, EINVAL from the reader, wrong contents, ...
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        print(f"warning: checkpoint {path} is corrupt ({reason}); discarding it and starting the run again",
              file=sys.stderr)  # fmt: skip
        path.unlink(missing_ok=True)
        return None
    difference = _identity_difference(state.get("identity") or {}, identity)
    if difference:
        raise ValueError(f"checkpoint {path} belongs to another run ({difference}); delete it or use another path")
    return state


def _save_checkpoint(state: dict, path: Path) -> None:
    atomic_write_bytes(path, checkpoint_bytes(state))


class Parallelism:
    """How :func:`fit` spreads one run over processes: this base class keeps it in one process.

    Every hook here is the trivial one-process step. :class:`resnet_lib.distributed.DataParallel`
    overrides them to train data-parallel over a ``torch.distributed`` process group.
    """

    #: Whether this process shows progress, reports divergence and writes the checkpoint.
    is_main: bool = True
    #: Whether a step involves this process alone (no collective per step): what the GPU's sync-free
    #: checks and CUDA graph need. :class:`resnet_lib.distributed.DataParallel` is not local.
    local: bool = True

    def place(self, device: torch.device) -> torch.device:
        """The device this process trains on, given the one asked for."""
        return device

    def check_data(self, data: ImageDataset, device: torch.device) -> None:
        """Raise a one-line ``ValueError`` unless every process trains on the same data (one process: it does)."""

    def read_checkpoint(self, path: Path | None, identity: dict, device: torch.device) -> dict | None:
        """The checkpoint to resume from (see :func:`read_checkpoint`), ``None`` without one."""
        return read_checkpoint(path, identity) if path is not None else None

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module the training forward pass runs through."""
        return model

    def shard(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor] | None:
        """This process's share of a global batch, or ``None`` when every process skips the batch."""
        return xb, yb

    def step_metrics(self, loss: Tensor, logits: Tensor, yb: Tensor) -> tuple[float, int, int]:
        """Mean loss, number of images and number of errors of the global batch."""
        return loss.item(), len(yb), (logits.argmax(1) != yb).sum().item()

    def all_stop(self, bad: str | None, device: torch.device) -> str | None:
        """What makes every process stop after a step (``bad``: what this process found), or ``None``."""
        return bad

    def evaluate(
        self, model: nn.Module, x: Tensor, y: Tensor, channels_last: bool, precision: str
    ) -> tuple[float, float]:
        """Mean loss and error rate of ``model`` on ``(x, y)`` (see :func:`evaluate`)."""
        return evaluate(model, x, y, channels_last=channels_last, precision=precision)


# ----------------------------------------------------------------- the GPU's pace

#: Steps between two read-backs of the divergence checks on a GPU (one host synchronization each).
GPU_CHECK_EVERY = 50
#: Eager steps before the training step is captured as a CUDA graph (cuDNN and cuBLAS set themselves up).
GRAPH_WARMUP_STEPS = 3


def check_interval(check_every, device: torch.device, parallel: Parallelism) -> int:
    """How many steps ``fit`` runs between read-backs of its divergence checks: ``check_every``, or 1 on the
    CPU (every step, as always) and :data:`GPU_CHECK_EVERY` on a GPU when it is ``None``; one-line ``ValueError``s."""
    if check_every is None:
        return GPU_CHECK_EVERY if device.type == "cuda" and parallel.local else 1
    every = check_whole("check_every", check_every, 1)
    if every > 1 and not parallel.local:
        raise ValueError(f"check_every must be 1 (or None) for data-parallel training, got {check_every!r}")
    return every


def use_cuda_graph(cuda_graph, device: torch.device, parallel: Parallelism) -> bool:
    """Whether ``fit`` replays its training step as a CUDA graph: ``cuda_graph``, or (``None``) on a GPU in one
    process and never on the CPU; a one-line ``ValueError`` for a graph that cannot be."""
    if cuda_graph is not None and not isinstance(cuda_graph, bool):
        raise ValueError(f"cuda_graph must be True, False or None, got {cuda_graph!r}")
    if cuda_graph is None:
        return device.type == "cuda" and parallel.local
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph=True needs a CUDA device; this run trains on {device.type}")
    if cuda_graph and not parallel.local:
        raise ValueError("cuda_graph=True is for one process; data-parallel training steps eagerly")
    return cuda_graph


class StepLog:
    """Each step's numbers, kept on the device and read back in one synchronization.

    A row per step: the loss, the number of errors and the largest absolute value of every floating
    parameter and buffer (BatchNorm statistics) after the update. Rows go to ``rows[count]``, with
    ``count`` a device counter, so a captured CUDA graph writes them too; :meth:`read` returns them and
    starts again. The verdicts read from them are :func:`loss_divergence` and :func:`non_finite_state`'s.
    """

    def __init__(self, model: nn.Module, capacity: int, device: torch.device) -> None:
        named = [(n, t) for n, t in model.state_dict().items() if t.is_floating_point() and t.numel()]
        groups: dict[torch.dtype, list[tuple[int, str, Tensor]]] = {}
        for position, (name, tensor) in enumerate(named):
            groups.setdefault(tensor.dtype, []).append((position, name, tensor))
        self.groups = [[t for _, _, t in members] for members in groups.values()]
        order = [(position, name) for members in groups.values() for position, name, _ in members]
        self.positions, self.names = [p for p, _ in order], [n for _, n in order]
        self.capacity = capacity
        self.rows = torch.zeros(capacity, 2 + len(order), dtype=torch.float64, device=device)
        self.count = torch.zeros(1, dtype=torch.long, device=device)

    @torch.no_grad()
    def record(self, loss: Tensor, logits: Tensor, yb: Tensor) -> None:
        """Append this step's row (device operations only: no synchronization)."""
        wrong = (logits.argmax(1) != yb).sum()
        parts = [loss.detach().reshape(1).double(), wrong.reshape(1).double()]
        parts += [torch.stack(torch._foreach_norm(g, math.inf)).double() for g in self.groups]
        self.rows.index_copy_(0, self.count, torch.cat(parts).unsqueeze(0))
        self.count += 1

    def read(self, n: int) -> list[list[float]]:
        """The first ``n`` rows as numbers (one synchronization); the log starts again."""
        rows = self.rows[:n].tolist()
        self.count.zero_()
        return rows

    def non_finite(self, row: list[float]) -> str | None:
        """The first (in ``state_dict`` order) tensor a row finds non-finite, or ``None``."""
        bad = [(p, n) for p, n, v in zip(self.positions, self.names, row[2:], strict=True) if not math.isfinite(v)]
        return min(bad)[1] if bad else None


class GraphedStep:
    """The training step (forward, loss, backward, SGD update, the :class:`StepLog` row) as one CUDA graph.

    The step reads its batch from static tensors and its learning rate from a device tensor, and updates
    the optimizer's own momentum buffers (``torch._fused_sgd_``), so checkpoints are the optimizer's as
    ever. The first steps run eagerly (the optimizer's first step makes its momentum buffers; then
    :data:`GRAPH_WARMUP_STEPS`, on a side stream); a batch of another shape (an epoch's last, smaller
    one) runs the same step eagerly. Off CUDA (the tests) the graph is never captured: every step is eager.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.SGD, log: StepLog, precision: str,
                 channels_last: bool, batch_size: int, device: torch.device) -> None:  # fmt: skip
        self.model, self.optimizer, self.log, self.device = model, optimizer, log, device
        self.precision, self.channels_last, self.batch_size = precision, channels_last, batch_size
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        # CUDA's fused kernel reads the learning rate as float32 (the eager step rounds it there too).
        self.lr, self.host_lr = torch.zeros((), dtype=torch.float32, device=device), None
        self.capture = device.type == "cuda"
        self.graph, self.static, self.eager_steps, self.buffers_ready = None, None, 0, False

    def _update(self) -> None:
        group = self.optimizer.param_groups[0]
        buffers = [self.optimizer.state[p]["momentum_buffer"] for p in self.params] if group["momentum"] else []
        torch._fused_sgd_(
            self.params, [p.grad for p in self.params], buffers, weight_decay=group["weight_decay"],
            momentum=group["momentum"], lr=self.lr, dampening=group["dampening"], nesterov=group["nesterov"],
            maximize=group["maximize"], is_first_step=False,
        )  # fmt: skip

    def _step(self, x: Tensor, y: Tensor, first: bool = False) -> None:
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16", cache_enabled=False):
            logits = self.model(x)
        logits = logits.float()
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step() if first else self._update()
        self.log.record(loss, logits, y)

    def run(self, xb: Tensor, yb: Tensor, lr: float) -> None:
        """One training step on ``(xb, yb)`` at learning rate ``lr`` (no host synchronization)."""
        x = _to_device(xb, self.device, self.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = lr  # what a checkpoint records, as the eager step does
        if lr != self.host_lr:
            self.lr.fill_(lr)
            self.host_lr = lr
        if self.graph is not None and x.shape == self.static[0].shape:
            self.static[0].copy_(x)
            self.static[1].copy_(yb)
            self.graph.replay()
            return
        if not self.buffers_ready:  # the optimizer's first step makes its momentum buffers
            momentum = self.optimizer.param_groups[0]["momentum"]
            self.buffers_ready = not momentum or all("momentum_buffer" in self.optimizer.state[p] for p in self.params)
        full = len(yb) == self.batch_size
        ready = self.capture and self.graph is None and full and self.buffers_ready
        if ready and self.eager_steps >= GRAPH_WARMUP_STEPS and self._capture(x, yb):
            return self.run(xb, yb, lr)
        self.optimizer.zero_grad(set_to_none=True)
        with side_stream(self.device) if self.capture and self.graph is None else contextlib.nullcontext():
            self._step(x, yb, first=not self.buffers_ready)  # warm-up on a side stream, as capture wants
        self.eager_steps += 1

    def _capture(self, x: Tensor, y: Tensor) -> bool:
        """Capture the step on ``(x, y)``'s shapes (nothing runs); on failure, one warning line and eager steps."""
        self.static = (x.clone(), y.clone())
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward makes (static) gradients
        try:
            self.graph = capture_cuda_graph(lambda: self._step(*self.static))
        except RuntimeError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            print(f"warning: CUDA graph capture failed ({reason}); training on eagerly (cuda_graph=False "
                  "skips the attempt)", file=sys.stderr)  # fmt: skip
            self.capture, self.static = False, None
            return False
        self.grads = [p.grad for p in self.params]  # the graph's gradients, kept alive with it
        return True


@contextlib.contextmanager
def side_stream(device: torch.device) -> Iterator[None]:
    """Run the block on a fresh CUDA stream that waits for, and is then waited for by, the current one."""
    side, current = torch.cuda.Stream(device), torch.cuda.current_stream(device)
    side.wait_stream(current)
    with torch.cuda.stream(side):
        yield
    current.wait_stream(side)


def capture_cuda_graph(step: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """``step`` captured as a CUDA graph: nothing runs until ``replay()``, which runs all of it in one launch."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


@dataclass
class _Tally:
    """One epoch's running numbers (and the global step)."""

    step: int
    lr: float | None = None
    loss_sum: float = 0.0
    wrong: int = 0
    seen: int = 0

    def add(self, loss_value: float, n_batch: int, n_wrong: int) -> None:
        self.loss_sum, self.wrong = self.loss_sum + loss_value * n_batch, self.wrong + n_wrong
        self.seen += n_batch


@dataclass
class _Run:
    """What one ``fit`` call trains with (its epochs' loops read it)."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    precision: str
    device: torch.device
    parallel: Parallelism
    history: History
    bar: tqdm
    total_steps: int
    log: StepLog | None = None
    graphed: GraphedStep | None = None

    def per_step_epoch(self, batches, t: _Tally) -> None:
        """Every step's checks read back at once (the CPU's way, and data-parallel training's)."""
        recipe, history, device, parallel = self.recipe, self.history, self.device, self.parallel
        for batch in batches:
            if t.step >= self.total_steps:
                break
            batch = parallel.shard(*batch)
            if batch is None:
                continue
            xb, yb = batch
            t.lr = recipe.lr_at(t.step, self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = t.lr
            with precision_autocast(self.precision, device):
                logits = self.net(_to_device(xb, device, recipe.channels_last))
            logits = logits.float()
            loss = F.cross_entropy(logits, yb)
            loss_value, n_batch, n_wrong = parallel.step_metrics(loss, logits, yb)
            history.step_losses.append(loss_value)
            reason = loss_divergence(loss_value, history.step_losses[0], recipe.divergence_factor)
            if reason:
                history.mark_diverged(t.step, reason)
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            bad = parallel.all_stop(non_finite_state(self.model), device)
            if bad:
                history.mark_diverged(t.step, f"non-finite values in {bad} after the step")
            t.step += 1
            t.add(loss_value, n_batch, n_wrong)
            self.bar.update(1)
            if history.diverged:
                break
            if t.step % 10 == 0:
                self.bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{t.lr:.3g}")

    def deferred_epoch(self, batches, t: _Tally) -> None:
        """Steps without host synchronization: the checks stay on the device and are read back every
        ``log.capacity`` steps and at the epoch's end, then judged step by step as :meth:`per_step_epoch`
        judges them (a diverged run stops at the same step; its weights are those of the read-back)."""
        recipe, log, pending = self.recipe, self.log, []
        for xb, yb in batches:
            at = t.step + len(pending)
            if at >= self.total_steps:
                break
            lr = recipe.lr_at(at, self.total_steps)
            if self.graphed is not None:
                self.graphed.run(xb, yb, lr)
            else:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with precision_autocast(self.precision, self.device):
                    logits = self.model(_to_device(xb, self.device, recipe.channels_last))
                logits = logits.float()
                loss = F.cross_entropy(logits, yb)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                log.record(loss, logits, yb)
            pending.append((at, lr, len(yb)))
            self.bar.update(1)
            if len(pending) == log.capacity:
                if self._judge(pending, t):
                    return
                pending = []
        self._judge(pending, t)

    def _judge(self, pending: list[tuple[int, float, int]], t: _Tally) -> bool:
        """Read the log back and apply the per-step rules in order; True when the run diverged."""
        if not pending:
            return False
        history, factor = self.history, self.recipe.divergence_factor
        for (at, lr, n_batch), row in zip(pending, self.log.read(len(pending)), strict=True):
            t.lr, loss_value = lr, row[0]
            history.step_losses.append(loss_value)
            reason = loss_divergence(loss_value, history.step_losses[0], factor)
            if reason:
                history.mark_diverged(at, reason)
                return True
            bad = self.log.non_finite(row)
            if bad:
                history.mark_diverged(at, f"non-finite values in {bad} after the step")
            t.step = at + 1
            t.add(loss_value, n_batch, int(row[1]))
            if history.diverged:
                return True
        self.bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{t.lr:.3g}")
        return False


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
    parallel: Parallelism | None = None,
    check_every: int | None = None,
    cuda_graph: bool | None = None,
) -> History:
    """Train ``model`` on ``data.train_*`` with ``recipe``; evaluate on ``data.test_*`` each epoch.

    Mini-batch order and augmentation for epoch ``e`` come from a generator seeded with
    ``(seed, e)``, so a run resumed from ``checkpoint`` (saved atomically after every
    epoch) ends with the same history as one that never stopped. The checkpoint is bound to the
    run (seed, recipe, data, model) and carries a SHA-256 checked before it is loaded: another run's
    is refused with a ``ValueError``, a damaged one is discarded with one warning line (the run
    starts again). ``seed``: a whole number from 0 to :data:`MAX_SEED`. ``stop_after_epochs`` ends this
    call early (the checkpoint stays), as an interruption would.

    Divergence stops training and is recorded in the returned :class:`History` (step and reason),
    never raised, and reported in one line when ``progress``: a non-finite training or test loss, a
    training loss above ``recipe.divergence_factor`` times the first one, or a NaN or infinity in
    the parameters or BatchNorm statistics (checked after every step).

    ``check_every``: steps between read-backs of those checks (default: 1 on the CPU, every step as
    always; :data:`GPU_CHECK_EVERY` on a GPU, where a read-back stalls the device). Above 1 the checks
    are computed on the device every step (:class:`StepLog`) and read back every ``check_every`` steps
    and at each epoch's end: the verdict, its step and the history are the same; a diverged run's
    weights are those of the read-back. ``cuda_graph``: replay the training step as a CUDA graph
    (:class:`GraphedStep`; default: on a GPU in one process, never on the CPU; ``False`` turns it off).

    ``parallel`` spreads the run over processes (default: this one alone, :class:`Parallelism`);
    :class:`resnet_lib.distributed.DataParallel` trains data-parallel under ``torchrun``, with a
    history that means what a single-process one means. Only its main process shows progress,
    reports divergence and writes the checkpoint.
    """
    recipe = recipe or Recipe()
    seed = check_seed(seed)
    parallel = parallel or Parallelism()
    device = parallel.place(torch.device(device) if device is not None else default_device())
    every = check_interval(check_every, device, parallel)
    graph = use_cuda_graph(cuda_graph, device, parallel)
    parallel.check_data(data, device)
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
    identity = checkpoint_identity(model, data, replace(recipe, precision=precision), seed)
    state = parallel.read_checkpoint(ckpt_path, identity, device)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, step, start_epoch = History.from_dict(state["history"]), state["step"], state["epoch"]
    factor = recipe.divergence_factor
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    show = progress and parallel.is_main
    bar = tqdm(total=total_steps, initial=step, desc=desc, disable=not show, leave=False, unit="step")
    run = _Run(model, parallel.wrap(model, device), optimizer, recipe, precision, device, parallel, history, bar,
               total_steps)  # fmt: skip
    if every > 1 or graph:
        run.log = StepLog(model, every, device)
        if graph:
            run.graphed = GraphedStep(model, optimizer, run.log, precision, recipe.channels_last, recipe.batch_size,
                                      device)  # fmt: skip
    epoch_loop = run.deferred_epoch if run.log is not None else run.per_step_epoch
    model.train()
    lr = None
    for epoch in range(start_epoch, recipe.epochs):
        if step >= total_steps or history.diverged:
            break
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)
        started, tally = time.perf_counter(), _Tally(step, lr)
        epoch_loop(iterate_batches(train_x, train_y, recipe.batch_size, gen, augment=recipe.augment), tally)
        step, lr, loss_sum, wrong, seen = tally.step, tally.lr, tally.loss_sum, tally.wrong, tally.seen
        test_loss, test_error = parallel.evaluate(model, data.test_x, data.test_y, recipe.channels_last, precision)
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
        if not history.diverged:
            # Only non-finite: a BatchNorm net's test loss can be 100x its start after an epoch of
            # raw pixels (running statistics still warming up) and then recover, as chapter 2 showed.
            reason = loss_divergence(test_loss, None, factor, "test loss")
            if reason:
                history.mark_diverged(max(step - 1, 0), reason)
        if ckpt_path is not None and not history.diverged and parallel.is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "identity": identity}
            _save_checkpoint({**state, "history": history.to_dict(), "step": step, "epoch": epoch + 1}, ckpt_path)
        if stop_after_epochs is not None and epoch + 1 - start_epoch >= stop_after_epochs:
            break
    bar.close()
    if history.diverged and show:
        print(history.divergence_line(desc), file=sys.stderr)
    return history
