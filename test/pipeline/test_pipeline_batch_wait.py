"""max_batch_wait_ms: the auto value picks the device's wait; others pass or are refused."""

from __future__ import annotations

import pytest

from togethernet_ros.pipeline.batch_wait import AUTO_BATCH_WAIT_MS, resolve_batch_wait_ms


def test_auto_waits_briefly_on_a_gpu_and_batches_on_the_cpu():
    assert resolve_batch_wait_ms(AUTO_BATCH_WAIT_MS, on_gpu=True) == 1.0
    assert resolve_batch_wait_ms(AUTO_BATCH_WAIT_MS, on_gpu=False) == 20.0


@pytest.mark.parametrize("value", [0.0, 5.0, 250.0])
def test_explicit_waits_are_kept_on_any_device(value):
    assert resolve_batch_wait_ms(value, on_gpu=True) == value
    assert resolve_batch_wait_ms(value, on_gpu=False) == value


@pytest.mark.parametrize("value", [-0.5, -2.0, float("nan"), float("inf")])
def test_other_values_are_refused(value):
    with pytest.raises(ValueError, match="-1 \\(auto\\) or a finite value >= 0"):
        resolve_batch_wait_ms(value, on_gpu=False)
