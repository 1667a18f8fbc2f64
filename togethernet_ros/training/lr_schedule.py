"""The published learning-rate schedule: quadratic warm-up, cosine, then a flat minimum.

Evaluated per iteration from the global step, so resuming only needs the step count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupCosineSchedule:
    """lr(step): warm-up from ``warmup_start`` to ``base_lr`` (quadratic), cosine to ``min_lr``,
    then ``min_lr`` for the last ``flat_steps`` steps (bubbliiiing's yolox_warm_cos_lr)."""

    base_lr: float
    min_lr: float
    total_steps: int
    warmup_steps: int
    warmup_start: float
    flat_steps: int

    def __call__(self, step: int) -> float:
        """Learning rate at global iteration ``step``."""
        if self.warmup_steps > 0 and step <= self.warmup_steps:
            progress = step / self.warmup_steps
            return (self.base_lr - self.warmup_start) * progress**2 + self.warmup_start
        if step >= self.total_steps - self.flat_steps:
            return self.min_lr
        span = max(self.total_steps - self.warmup_steps - self.flat_steps, 1)
        progress = (step - self.warmup_steps) / span
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))


def published_schedule(
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 3,
    flat_epochs: float = 15,
    min_lr_ratio: float = 0.01,
    warmup_lr_ratio: float = 0.1,
) -> WarmupCosineSchedule:
    """Schedule in steps from epoch counts; warm-up/flat phases shrink for very short runs
    the way upstream clamps them (at most ``warmup_epochs``/``flat_epochs``, at least 1 epoch
    of warm-up, and together never more than the run)."""
    total = epochs * steps_per_epoch
    warmup = min(max(warmup_epochs, 0), epochs) * steps_per_epoch
    flat = min(max(flat_epochs, 0), max(epochs - warmup_epochs, 0)) * steps_per_epoch
    return WarmupCosineSchedule(
        base_lr=base_lr,
        min_lr=base_lr * min_lr_ratio,
        total_steps=int(total),
        warmup_steps=int(warmup),
        warmup_start=max(base_lr * warmup_lr_ratio, 1e-6),
        flat_steps=int(flat),
    )
