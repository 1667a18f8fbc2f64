"""The /diagnostics key-values of one latency window: percentiles, sample count, trust flags.

A window holds up to 500 samples, but in a camera's first seconds it holds a handful: a "p99"
of 10 samples is the max, nearly (see pipeline/latency_stats.py). Each window's values say how
many samples they come from (``<window>_samples``), and each p95/p99 gets
``<window>_p95_reliable`` / ``<window>_p99_reliable`` ("false" below 20 / 100 samples). The value
itself stays, as a number, under its old key (``<window>_p95_ms``): tools parse it with float().
Plain Python (no rclpy).
"""

from __future__ import annotations

from collections.abc import Sequence

from togethernet_ros.pipeline.latency_stats import LatencySummary, percentile_reliable

_PERCENTILE_VALUES = {50: "p50", 95: "p95", 99: "p99"}


def latency_values(
    name: str, summary: LatencySummary, percentiles: Sequence[int]
) -> dict[str, str]:
    """``<name>_samples``, ``<name>_p<P>_ms`` for each of ``percentiles`` (50, 95, 99), and
    ``<name>_p<P>_reliable`` for each tail one (95, 99): whether the window held enough.

    An empty window reads ``nan`` and, for the tail ones, not reliable.
    """
    values = {f"{name}_samples": str(summary.count)}
    for percent in percentiles:
        field = _PERCENTILE_VALUES.get(percent)
        if field is None:
            raise ValueError(f"latency_values: no p{percent} in a LatencySummary (50, 95, 99)")
        values[f"{name}_{field}_ms"] = f"{getattr(summary, field):.2f}"
        if percent > 50:
            reliable = percentile_reliable(float(percent), summary.count)
            values[f"{name}_{field}_reliable"] = "true" if reliable else "false"
    return values
