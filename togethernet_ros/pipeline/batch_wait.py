"""The `max_batch_wait_ms` policy, including its "auto" value.

How long a queued frame may wait for other cameras trades latency for batch size. On a CPU a
batch of 4 costs far less than 4 single frames, so waiting pays (20 ms). On a GPU a single
720p frame takes a few ms, and unsynchronised cameras rarely arrive within the same few ms, so
waiting mostly adds latency: on an H100 with 4 × 720p at 30 Hz, processing p50 was 3.6–4.6 ms
at 0–1 ms of wait against 9.1 ms at 5 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import math

AUTO_BATCH_WAIT_MS = -1.0
GPU_BATCH_WAIT_MS = 1.0
CPU_BATCH_WAIT_MS = 20.0


def resolve_batch_wait_ms(value: float, on_gpu: bool) -> float:
    """`value` when >= 0; for `AUTO_BATCH_WAIT_MS` (-1) the default for the device."""
    if value == AUTO_BATCH_WAIT_MS:
        return GPU_BATCH_WAIT_MS if on_gpu else CPU_BATCH_WAIT_MS
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"max_batch_wait_ms must be -1 (auto) or a finite value >= 0, got {value!r}"
        )
    return float(value)
