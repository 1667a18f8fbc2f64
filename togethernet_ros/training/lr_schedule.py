"""The published learning-rate schedule: quadratic warm-up, cosine, then a flat minimum.

Evaluated per iteration from the global step, so resuming only needs the step count. Upstream
sets it once per epoch; per iteration (as Megvii's YOLOX does) gives the same value at every
epoch start and moves smoothly in between instead of in steps (0.1, 0.2, 0.5, 1 × lr over
the published warm-up).
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


# Upstream's get_lr_scheduler: warm-up min(max(0.1·E, 1), 3) epochs and a flat minimum over the
# last min(max(0.3·E, 1), 15) epochs (3 and 15 for the published 100 epochs).
WARMUP_RATIO = 0.1
FLAT_RATIO = 0.3


def published_schedule(
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 3,
    flat_epochs: float = 15,
    min_lr_ratio: float = 0.01,
    warmup_lr_ratio: float = 0.1,
) -> WarmupCosineSchedule:
    """Schedule in steps from epoch counts; the warm-up and flat phases shrink with the run the
    way upstream clamps them: min(max(0.1·epochs, 1), ``warmup_epochs``) epochs of warm-up and
    min(max(0.3·epochs, 1), ``flat_epochs``) at the minimum, together never more than the run."""
    warmup = min(max(WARMUP_RATIO * epochs, 1), max(warmup_epochs, 0), epochs)
    flat = min(max(FLAT_RATIO * epochs, 1), max(flat_epochs, 0), max(epochs - warmup, 0))
    return WarmupCosineSchedule(
        base_lr=base_lr,
        min_lr=base_lr * min_lr_ratio,
        total_steps=int(epochs * steps_per_epoch),
        warmup_steps=int(warmup * steps_per_epoch),
        warmup_start=max(base_lr * warmup_lr_ratio, 1e-6),
        flat_steps=int(flat * steps_per_epoch),
    )
