"""ros2_benchmark-style measures of a replay, computed from what was sent and what came back.

Inputs are plain records, so the numbers can be checked against any other observer. A frame
counts as received when an output with its camera's namespace and header stamp arrived;
latency is receive time minus send time of that frame (one clock: the harness' monotonic).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from togethernet_ros.bag.output_topics import camera_namespace
from togethernet_ros.pipeline.latency_stats import PERCENTILE_METHOD, percentile_reliable


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
    """Statistics in ms, with how the percentiles were estimated and whether to trust the tail.

    ``count`` samples, ``percentile_method`` numpy's estimator; ``p95_reliable`` /
    ``p99_reliable`` are false below 20 / 100 samples, where the value is an interpolation
    between the largest samples (see `percentile_reliable`). ``std`` is the population one.
    """
    count = len(values_s)
    stats: dict = {
        "count": count,
        "percentile_method": PERCENTILE_METHOD,
        "p95_reliable": percentile_reliable(95.0, count),
        "p99_reliable": percentile_reliable(99.0, count),
    }
    if count == 0:
        return {**stats, **dict.fromkeys(("mean", "p50", "p95", "p99", "max", "min", "std"))}
    values = np.asarray(values_s, np.float64) * 1000.0
    # numpy's default estimator, PERCENTILE_METHOD in every version (the `method=` keyword
    # itself is NumPy >= 1.22).
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        **stats,
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


def _sum_rates(rates: Iterable[float | None]) -> float | None:
    known = [r for r in rates if r is not None]
    return round(sum(known), 3) if known else None


def match_outputs(
    sent: Sequence[SentFrame], received: Sequence[ReceivedOutput], output_suffix: str = "detections"
) -> dict[str, list[tuple[SentFrame, ReceivedOutput]]]:
    """Per input topic: (frame, its output) pairs, each frame and each output used at most once.

    Stamps need not be unique (a looping bag repeats them, a camera without a clock sends 0), so
    a stamp alone cannot name the frame. The node keeps each camera's order (newest frame wins,
    older waiting ones are dropped), so an output belongs to a frame sent before it arrived and
    before the frame of the next output; of several such frames with its stamp, the latest, as
    the node drops the older ones when a newer frame arrives before it is processed. Matched
    from the last output back: matched forward, an output that arrives after the next frame was
    sent (latency above the frame period) takes that frame, and every later one is shifted by
    a frame (stamp 0 at 30 Hz, 45 ms latency read as 12 ms). Outputs that fit no frame (a
    previous trial's late ones) are ignored.
    """
    pairs: dict[str, list[tuple[SentFrame, ReceivedOutput]]] = {}
    for topic in sorted({f.topic for f in sent}):
        output_topic = f"{camera_namespace(topic)}/{output_suffix}"
        frames = sorted((f for f in sent if f.topic == topic), key=lambda f: f.sent_s)
        by_stamp: dict[int, list[int]] = {}
        for index, frame in enumerate(frames):
            by_stamp.setdefault(frame.stamp_ns, []).append(index)
        outputs = sorted(
            (r for r in received if r.topic == output_topic), key=lambda r: r.received_s
        )
        matched: list[tuple[SentFrame, ReceivedOutput]] = []
        following = len(frames)  # index of the frame matched to the next output
        for output in reversed(outputs):
            candidates = by_stamp.get(output.stamp_ns, [])
            # Indices are ascending: the latest frame sent before the output and before `following`.
            end = min(
                bisect.bisect_right(candidates, output.received_s, key=lambda i: frames[i].sent_s),
                bisect.bisect_left(candidates, following),
            )
            if end == 0:
                continue
            following = candidates[end - 1]
            matched.append((frames[following], output))
        matched.reverse()
        pairs[topic] = matched
    return pairs


def replay_metrics(
    sent: Sequence[SentFrame], received: Sequence[ReceivedOutput], output_suffix: str = "detections"
) -> dict:
    """Per camera and overall: sent/received/dropped, rates, latency and jitter statistics.

    Each statistics block states its sample count and percentile method, and flags a p95 or
    p99 taken from too few samples to mean it (see `_stats_ms`).

    Only outputs on ``<ns>/<output_suffix>`` count, each matched to one sent frame
    (:func:`match_outputs`); every frame sent counts, repeated stamps included. Throughput is
    the cameras' output rates added.
    """
    cameras: dict[str, dict] = {}
    all_latencies: list[float] = []
    totals = {"sent": 0, "received": 0, "dropped": 0}
    first_sent = min((f.sent_s for f in sent), default=math.nan)
    last_arrivals: list[float] = []
    for topic, pairs in match_outputs(sent, received, output_suffix).items():
        output_topic = f"{camera_namespace(topic)}/{output_suffix}"
        send_times = sorted(f.sent_s for f in sent if f.topic == topic)
        latencies = [output.received_s - frame.sent_s for frame, output in pairs]
        arrival_times = [output.received_s for _, output in pairs]
        last_arrivals += arrival_times[-1:]
        intervals = np.diff(arrival_times) if len(arrival_times) > 1 else np.zeros(0)
        send_intervals = np.diff(send_times) if len(send_times) > 1 else np.zeros(0)
        dropped = len(send_times) - len(pairs)
        stamps = [f.stamp_ns for f in sent if f.topic == topic]
        cameras[topic] = {
            "output_topic": output_topic,
            "sent": len(send_times),
            "received": len(pairs),
            "dropped": dropped,
            "drop_rate": round(dropped / len(send_times), 4) if send_times else None,
            # Frames whose stamp another frame of this camera also had: matched by order.
            "repeated_stamp_frames": len(stamps) - len(set(stamps)),
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
        totals["sent"] += len(send_times)
        totals["received"] += len(pairs)
        totals["dropped"] += dropped
    duration = max(last_arrivals) - first_sent if last_arrivals else math.nan
    overall = dict(totals)
    overall["drop_rate"] = round(totals["dropped"] / totals["sent"], 4) if totals["sent"] else None
    overall["duration_s"] = None if math.isnan(duration) else round(duration, 4)
    # Steady-state rates, added over the cameras: n frames span n - 1 intervals, so counting
    # them over first send → last output read 8 outputs of a 10 Hz stream as 11.4 frames/s.
    overall["throughput_fps"] = _sum_rates(c["output_rate_hz"] for c in cameras.values())
    # What was actually offered, against the rate asked for.
    overall["send_rate_fps"] = _sum_rates(c["playback_rate_hz"] for c in cameras.values())
    overall["latency_ms"] = _stats_ms(all_latencies)
    return {"overall": overall, "cameras": cameras}


def latency_series(
    sent: Sequence[SentFrame], received: Sequence[ReceivedOutput], output_suffix: str = "detections"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per camera: (send times relative to the first send, latencies in ms) for plotting."""
    origin = min((f.sent_s for f in sent), default=0.0)
    series = {}
    for topic, pairs in match_outputs(sent, received, output_suffix).items():
        times = np.array([frame.sent_s - origin for frame, _ in pairs], np.float64)
        latencies = np.array(
            [(output.received_s - frame.sent_s) * 1000 for frame, output in pairs], np.float64
        )
        series[topic] = (times, latencies)
    return series
