"""ros2_benchmark-style measures of a replay, computed from what was sent and what came back.

Inputs are plain records, so the numbers can be checked against any other observer. A frame
counts as received when an output with its camera's namespace and header stamp arrived;
latency is receive time minus send time of that frame (one clock: the harness' monotonic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from togethernet_ros.bag.output_topics import camera_namespace


@dataclass(frozen=True)
class SentFrame:
    """A frame published by the harness."""

    topic: str
    stamp_ns: int
    sent_s: float


@dataclass(frozen=True)
class ReceivedOutput:
    """An output message seen by the harness."""

    topic: str
    stamp_ns: int
    received_s: float
    detections: int = 0


def _stats_ms(values_s: Sequence[float]) -> dict:
    if len(values_s) == 0:
        return {k: None for k in ("count", "mean", "p50", "p95", "p99", "max", "min", "std")}
    values = np.asarray(values_s, np.float64) * 1000.0
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "count": len(values),
        "mean": round(float(values.mean()), 3),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(values.max()), 3),
        "min": round(float(values.min()), 3),
        "std": round(float(values.std()), 3),
    }


def _rate(times: Sequence[float]) -> float | None:
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return round((len(times) - 1) / span, 3) if span > 0 else None


def replay_metrics(
    sent: Sequence[SentFrame], received: Sequence[ReceivedOutput], output_suffix: str = "detections"
) -> dict:
    """Per camera and overall: sent/received/dropped, rates, latency and jitter statistics.

    Only outputs on ``<ns>/<output_suffix>`` count; duplicates of one stamp count once.
    """
    cameras: dict[str, dict] = {}
    all_latencies: list[float] = []
    totals = {"sent": 0, "received": 0, "dropped": 0}
    first_sent = min((f.sent_s for f in sent), default=math.nan)
    last_received = max((r.received_s for r in received), default=math.nan)
    for topic in sorted({f.topic for f in sent}):
        namespace = camera_namespace(topic)
        frames = [f for f in sent if f.topic == topic]
        send_time = {}
        for frame in frames:
            send_time.setdefault(frame.stamp_ns, frame.sent_s)
        output_topic = f"{namespace}/{output_suffix}"
        arrivals: dict[int, float] = {}
        for output in received:
            if output.topic == output_topic and output.stamp_ns in send_time:
                arrivals.setdefault(output.stamp_ns, output.received_s)
        latencies = [arrivals[s] - send_time[s] for s in sorted(arrivals)]
        arrival_times = sorted(arrivals.values())
        intervals = np.diff(arrival_times) if len(arrival_times) > 1 else np.zeros(0)
        send_times = sorted(send_time.values())
        send_intervals = np.diff(send_times) if len(send_times) > 1 else np.zeros(0)
        dropped = len(send_time) - len(arrivals)
        cameras[topic] = {
            "output_topic": output_topic,
            "sent": len(send_time),
            "received": len(arrivals),
            "dropped": dropped,
            "drop_rate": round(dropped / len(send_time), 4) if send_time else None,
            "playback_rate_hz": _rate(send_times),
            "output_rate_hz": _rate(arrival_times),
            "latency_ms": _stats_ms(latencies),
            # ros2_benchmark's jitter: spread of the time between consecutive outputs.
            "output_interval_ms": _stats_ms(intervals),
            "jitter_ms": round(float(np.std(intervals) * 1000), 3) if len(intervals) else None,
            "send_interval_ms": _stats_ms(send_intervals),
            "first_sent_to_first_received_ms": (
                round((arrival_times[0] - send_times[0]) * 1000, 3) if arrival_times else None
            ),
            "last_sent_to_last_received_ms": (
                round((arrival_times[-1] - send_times[-1]) * 1000, 3) if arrival_times else None
            ),
        }
        all_latencies += latencies
        totals["sent"] += len(send_time)
        totals["received"] += len(arrivals)
        totals["dropped"] += dropped
    duration = last_received - first_sent if received and sent else math.nan
    overall = dict(totals)
    overall["drop_rate"] = round(totals["dropped"] / totals["sent"], 4) if totals["sent"] else None
    overall["duration_s"] = None if math.isnan(duration) else round(duration, 4)
    overall["throughput_fps"] = (
        round(totals["received"] / duration, 3) if duration and duration > 0 else None
    )
    overall["latency_ms"] = _stats_ms(all_latencies)
    return {"overall": overall, "cameras": cameras}


def latency_series(
    sent: Sequence[SentFrame], received: Sequence[ReceivedOutput], output_suffix: str = "detections"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per camera: (send times relative to the first send, latencies in ms) for plotting."""
    origin = min((f.sent_s for f in sent), default=0.0)
    series = {}
    for topic in sorted({f.topic for f in sent}):
        output_topic = f"{camera_namespace(topic)}/{output_suffix}"
        arrivals: dict[int, float] = {}
        for output in received:
            if output.topic == output_topic:
                arrivals.setdefault(output.stamp_ns, output.received_s)
        pairs = [
            (f.sent_s - origin, (arrivals[f.stamp_ns] - f.sent_s) * 1000)
            for f in sent
            if f.topic == topic and f.stamp_ns in arrivals
        ]
        times, latencies = (
            (np.array(v) for v in zip(*pairs, strict=True)) if pairs else (np.zeros(0), np.zeros(0))
        )
        series[topic] = (times, latencies)
    return series
