"""The training recipe: plain data, no behaviour, so every module may import it."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

#: Arithmetic a recipe may train in: the paper's float32, bfloat16 mixed precision, or the faster one here.
PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(precision: str) -> str:
    """``precision`` itself when it is one of :data:`PRECISIONS`, else a one-line ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    return precision


def check_whole(name: str, value, minimum: int = 0, allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` when it is a whole number >= ``minimum`` (or ``None`` where allowed),
    else a one-line ``ValueError`` saying what is allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        allowed = f"a whole number >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_depth(name: str, value) -> int:
    """``value`` when it is a CIFAR net's depth, 6n+2 with n >= 1, else a one-line ``ValueError``."""
    if not isinstance(value, int) or value < 8 or (value - 2) % 6:
        raise ValueError(f"{name} must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {value!r}")
    return int(value)


def check_real(
    name: str, value, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = True,
    allow_none: bool = False,
) -> float | None:  # fmt: skip
    """``value`` as a ``float`` when it is a finite number in the range, else a one-line ``ValueError``."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        hi = "inf" if math.isinf(high) else f"{high:g}"
        allowed = f"a finite number in {left}{low:g}, {hi}{right}" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses: store the checked, normalized value


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

    ``divergence_factor``: a run whose training loss rises above this many times its first one
    has diverged (as has one with a non-finite loss, parameter or BatchNorm statistic).
    Every field is checked here, with a one-line ``ValueError``.
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
    divergence_factor: float = 100.0

    def __post_init__(self) -> None:
        _set(self, "epochs", check_whole("Recipe.epochs", self.epochs, 1))
        _set(self, "batch_size", check_whole("Recipe.batch_size", self.batch_size, 1))
        _set(self, "lr", check_real("Recipe.lr", self.lr, 0.0, low_open=True))
        _set(self, "momentum", check_real("Recipe.momentum", self.momentum, 0.0, 1.0))
        _set(self, "weight_decay", check_real("Recipe.weight_decay", self.weight_decay, 0.0))
        milestones = self.lr_milestones
        if not isinstance(milestones, tuple | list) or not all(
            isinstance(m, numbers.Real) and not isinstance(m, bool) and 0.0 < m < 1.0 for m in milestones
        ):
            raise ValueError(f"Recipe.lr_milestones are fractions of training in (0, 1), got {milestones!r}")
        _set(self, "lr_milestones", tuple(float(m) for m in milestones))
        _set(self, "lr_gamma", check_real("Recipe.lr_gamma", self.lr_gamma, 0.0, low_open=True))
        _set(self, "warmup_steps", check_whole("Recipe.warmup_steps", self.warmup_steps, 0))
        _set(self, "warmup_lr", check_real("Recipe.warmup_lr", self.warmup_lr, 0.0, low_open=True, allow_none=True))
        _set(self, "max_steps", check_whole("Recipe.max_steps", self.max_steps, 1, allow_none=True))
        for name in ("augment", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Recipe.{name} must be True or False, got {getattr(self, name)!r}")
        check_precision(self.precision)
        factor = check_real("Recipe.divergence_factor", self.divergence_factor, 1.0, low_open=True)
        _set(self, "divergence_factor", factor)

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
