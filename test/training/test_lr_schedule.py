"""The learning-rate schedule against the published one (bubbliiiing's get_lr_scheduler("cos")).

Upstream evaluates it once per epoch with warm-up = min(max(0.1·E, 1), 3) epochs and a flat
minimum over the last min(max(0.3·E, 1), 15) epochs, so 3 and 15 for the published 100 epochs
and proportionally shorter phases for shorter runs.
"""

import math

import pytest

from togethernet_ros.training.lr_schedule import published_schedule


def _upstream_lr(base: float, epochs: int, epoch: int) -> float:
    """The published per-epoch rule, written out from its definition."""
    low = base * 0.01
    start = max(base * 0.1, 1e-6)
    warmup = min(max(0.1 * epochs, 1), 3)
    flat = min(max(0.3 * epochs, 1), 15)
    if epoch <= warmup:
        return (base - start) * (epoch / warmup) ** 2 + start
    if epoch >= epochs - flat:
        return low
    progress = (epoch - warmup) / (epochs - warmup - flat)
    return low + 0.5 * (base - low) * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("epochs", [100, 50, 30, 20, 10])
def test_one_step_per_epoch_equals_the_published_schedule(epochs):
    schedule = published_schedule(0.01, epochs, 1)
    for epoch in range(epochs):
        assert schedule(epoch) == pytest.approx(_upstream_lr(0.01, epochs, epoch)), epoch


@pytest.mark.parametrize(
    ("epochs", "warmup", "flat"), [(100, 3, 15), (30, 3, 9), (20, 2, 6), (10, 1, 3)]
)
def test_phases_shrink_with_the_run_as_upstream_clamps_them(epochs, warmup, flat):
    schedule = published_schedule(0.01, epochs, steps_per_epoch=7)
    assert (schedule.warmup_steps, schedule.flat_steps) == (warmup * 7, flat * 7)


def test_configured_phase_lengths_are_upper_bounds():
    schedule = published_schedule(0.01, 150, 1, warmup_epochs=5, flat_epochs=10)
    assert (schedule.warmup_steps, schedule.flat_steps) == (5, 10)
    schedule = published_schedule(0.01, 4, 1, warmup_epochs=1, flat_epochs=0)
    assert (schedule.warmup_steps, schedule.flat_steps) == (1, 0)
