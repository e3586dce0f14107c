"""The training recipe: plain data, no behaviour, so every module may import it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Arithmetic a recipe may train in: the paper's float32, bfloat16 mixed precision, or the faster one here.
PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(precision: str) -> str:
    """``precision`` itself when it is one of :data:`PRECISIONS`, else a one-line ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True)
class Recipe:
    """How a CIFAR network is trained. Defaults are He et al. (2016), section 4.2.

    The learning rate is multiplied by ``lr_gamma`` at each fraction of the total
    number of steps in ``lr_milestones`` (the paper: 32k and 48k of 64k steps, i.e.
    0.5 and 0.75). ``warmup_steps`` steps come first: a linear ramp from 0 to ``lr``,
    or a constant ``warmup_lr`` when that is set (the paper's ResNet-110 warm-up).
    ``max_steps`` stops training part-way through an epoch (the paper counts
    iterations, not epochs).

    ``precision`` is the arithmetic of the forward and backward pass: ``"fp32"`` (the paper),
    ``"bf16"`` (autocast to bfloat16 with float32 weights, optimizer and loss: mixed precision),
    or ``"auto"``: bf16 where the device does bfloat16 in hardware, else fp32. The engine
    resolves ``"auto"`` per device (:func:`resnet_lib.training.resolve_precision`).
    """

    epochs: int = 182
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    warmup_lr: float | None = None
    max_steps: int | None = None
    augment: bool = True
    channels_last: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"Recipe needs epochs >= 1 and batch_size >= 1, got {self.epochs} and {self.batch_size}")
        if any(not 0.0 < m < 1.0 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones are fractions of training in (0, 1), got {self.lr_milestones}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be None (no limit) or >= 1, got {self.max_steps}")
        check_precision(self.precision)
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    def as_dict(self) -> dict:
        return asdict(self)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Number of optimizer steps this recipe takes with ``steps_per_epoch``."""
        total = self.epochs * steps_per_epoch
        return total if self.max_steps is None else min(total, self.max_steps)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
        if step < self.warmup_steps:
            if self.warmup_lr is not None:
                return self.warmup_lr
            return self.lr * (step + 1) / self.warmup_steps
        # A milestone never falls on step 0 (round(0.5 * 1) == 0 would start a 1-step run at lr/10).
        drops = sum(step >= max(1, round(m * total_steps)) for m in self.lr_milestones)
        return self.lr * self.lr_gamma**drops
