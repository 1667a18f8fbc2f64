"""Latency percentiles as the benchmark scripts report them: with sample count and trust flags.

The rule is togethernet_ros/pipeline/latency_stats.py's (numpy's linear estimate; the p-th
percentile is reliable from ``100 / (100 - p)`` samples: p95 from 20, p99 from 100). This module
only puts it into the scripts' JSON (``count``, ``percentile_method``, ``p95_reliable``, ...) and
tables (an unreliable value is still printed, marked ``*``, with a footnote giving the counts).
Needs numpy only (no torch, no rclpy): the benchmark scripts, the GPU scripts included, and
`togethernet bench` use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from togethernet_ros.pipeline.latency_stats import (
    PERCENTILE_METHOD,
    LatencySummary,
    min_samples_for_percentile,
    percentile_reliable,
)

UNRELIABLE_MARK = "*"


def percentile_key(percent: float) -> str:
    """The JSON key of a percentile: 95 -> ``p95``, 99.9 -> ``p99.9``."""
    return f"p{percent:g}"


def percentile_stats(
    samples: Iterable[float],
    percentiles: Sequence[float] = (50, 95, 99),
    *,
    include_max: bool = True,
    digits: int | None = None,
) -> dict:
    """``count``, ``percentile_method``, each ``p<P>`` and, above p50, ``p<P>_reliable``.

    Values are numpy's linear percentiles of ``samples`` (rounded to ``digits`` if given), None
    when there are no samples; ``max`` too unless ``include_max`` is false. A percentile from
    fewer samples than it needs is still reported, with its flag false.
    """
    listed = samples if isinstance(samples, np.ndarray) else list(samples)
    values = np.asarray(listed, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(
            f"percentile_stats: {bad} of {values.size} latency samples are NaN or infinite"
        )
    count = int(values.size)
    computed = np.percentile(values, list(percentiles)) if count else [None] * len(percentiles)
    stats: dict = {"count": count, "percentile_method": PERCENTILE_METHOD}
    for percent, value in zip(percentiles, computed, strict=True):
        _put(stats, percent, None if value is None else _round(float(value), digits), count)
    if include_max:
        stats["max"] = _round(float(values.max()), digits) if count else None
    return stats


def summary_stats(
    summary: LatencySummary, percentiles: Sequence[float] = (50, 95, 99), include_max: bool = True
) -> dict:
    """:func:`percentile_stats`' shape from a :class:`LatencyWindow` summary (NaN -> None)."""
    stats: dict = {"count": summary.count, "percentile_method": summary.method}
    for percent in percentiles:
        field = percentile_key(percent)
        if not hasattr(summary, field):
            raise ValueError(f"summary_stats: a LatencySummary has no {field} (p50, p95, p99)")
        _put(stats, percent, _finite_or_none(getattr(summary, field)), summary.count)
    if include_max:
        stats["max"] = _finite_or_none(summary.max)
    return stats


def is_flagged(stats: dict, percent: float) -> bool:
    """Whether ``stats`` says its ``percent``-th percentile came from too few samples.

    Reports written before the flags existed carry none: they read as not flagged.
    """
    return stats.get(f"{percentile_key(percent)}_reliable", True) is False


def cell(stats: dict, percent: float, width: int = 8, precision: int = 1) -> str:
    """A ``width``-wide table cell: the value, then ``*`` if flagged or a space; ``n/a`` if none."""
    value = stats.get(percentile_key(percent))
    mark = UNRELIABLE_MARK if is_flagged(stats, percent) else " "
    text = "n/a" if value is None else f"{value:.{precision}f}"
    return f"{text:>{width - 1}}{mark}"


def describe(stats: dict, precision: int = 1, unit: str = "ms") -> str:
    """One line: ``p50 12.3  p95 15.1  p99 19.9*  max 22.0 ms (n=40)``."""
    parts = []
    for key, value in stats.items():
        if key == "max" or (key.startswith("p") and key[1:].replace(".", "").isdigit()):
            flagged = key != "max" and is_flagged(stats, float(key[1:]))
            text = "n/a" if value is None else f"{value:.{precision}f}"
            parts.append(f"{key} {text}{UNRELIABLE_MARK if flagged else ''}")
    return f"{'  '.join(parts)} {unit} (n={stats.get('count')})"


def sample_needs(percentiles: Sequence[float] = (95, 99)) -> str:
    """``p95 needs 20 samples, p99 100``: what a table's ``*`` footnote says is missing."""
    needs = [f"{percentile_key(p)} {min_samples_for_percentile(float(p))}" for p in percentiles]
    return needs[0].replace(" ", " needs ", 1) + " samples" + "".join(f", {n}" for n in needs[1:])


def footnote(rows: Iterable[dict], what: str = "samples") -> str:
    """What ``*`` means, with the sample counts of the flagged rows; empty when none is flagged.

    ``rows`` are :func:`percentile_stats` dicts; ``what`` names a sample (e.g. "frames").
    """
    flagged: dict[str, set[int]] = {}
    for stats in rows:
        for key in stats:
            if key.endswith("_reliable") and stats[key] is False:
                flagged.setdefault(key.removesuffix("_reliable"), set()).add(stats["count"])
    if not flagged:
        return ""
    needs = ", ".join(
        f"{key} needs {min_samples_for_percentile(float(key[1:]))} (here from "
        f"{', '.join(str(count) for count in sorted(counts))})"
        for key, counts in sorted(flagged.items(), key=lambda item: float(item[0][1:]))
    )
    return (
        f"{UNRELIABLE_MARK} from too few {what} to be more than an interpolation between the "
        f"slowest ones ({PERCENTILE_METHOD} percentiles): {needs}"
    )


def _put(stats: dict, percent: float, value: float | None, count: int) -> None:
    key = percentile_key(percent)
    stats[key] = value
    if percent > 50:  # the median of two samples is a median; tails need their own count
        stats[f"{key}_reliable"] = percentile_reliable(float(percent), count)


def _round(value: float, digits: int | None) -> float:
    return value if digits is None else round(value, digits)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
