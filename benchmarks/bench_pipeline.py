"""Batching pipeline benchmark: FrameBatcher + InferenceWorker with simulated cameras and model.

Cameras publish from their own threads at a fixed rate; the "model" is a function that sleeps
``base + per_frame × batch`` milliseconds (a batched GPU model's cost shape). Unless synchronised,
cameras are evenly phase-shifted: the worst case for batching. Synchronised cameras are triggered
together, and each frame can reach the batcher ``index × arrival_spread + U(0, arrival_jitter)``
ms after its trigger, as frames taken one after another from DDS do. Each scenario runs with the
batcher's arrival forecast on or off (``forecast``). Reported per scenario: frames
in/processed/dropped, mean batch size, latency from the trigger to ``on_result`` (p50/p95/p99)
and its queue part (trigger to the model call starting: arrival, batch deadline and waiting for
a busy model). Also the cost of one ``put`` call.

Writes JSON to --out (default benchmarks/results/pipeline.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from machine import cpu_model_name

from togethernet_ros.pipeline import BatchInfo, FrameBatcher, InferenceWorker, LatencyWindow
from togethernet_ros.pipeline.latency_report import cell, footnote, summary_stats


@dataclass
class Frame:
    camera: str
    index: int
    triggered_at: float


@dataclass(frozen=True)
class Scenario:
    name: str
    rates_hz: tuple[float, ...]
    base_ms: float
    per_frame_ms: float
    max_batch_size: int
    max_batch_wait_ms: float
    synchronised: bool = False
    """Cameras triggered together (hardware sync) instead of evenly phase-shifted."""
    arrival_spread_ms: float = 0.0
    """Camera i's frames reach the batcher i × this after their trigger."""
    arrival_jitter_ms: float = 0.0
    """Plus a uniform random delay up to this."""
    forecast: bool = True
    """The batcher's arrival forecast (FrameBatcher ``forecast_arrivals``)."""


# The H100's node-side cost shape (docs/benchmarks.md, twelfth session): ~3 ms for one 720p
# frame, ~5.5 ms for four.
GPU_BASE_MS, GPU_PER_FRAME_MS = 2.2, 0.8
FOUR_30 = (30.0,) * 4
# Free-running cameras at slightly different rates: their phases sweep through each other.
DRIFTING = (30.0, 29.9, 30.1, 29.8)
SYNCED_DDS = {"synchronised": True, "arrival_spread_ms": 1.5, "arrival_jitter_ms": 3.0}

SCENARIOS = (
    Scenario("4 cams 30 Hz, fast model", FOUR_30, 3.0, 1.0, 4, 5.0),
    Scenario("  same, no forecast", FOUR_30, 3.0, 1.0, 4, 5.0, forecast=False),
    Scenario("  same, max_batch_wait_ms 0", FOUR_30, 3.0, 1.0, 4, 0.0),
    Scenario("  same, cameras synchronised", FOUR_30, 3.0, 1.0, 4, 5.0, True),
    Scenario("4 cams 30 Hz, model at capacity", FOUR_30, 20.0, 3.0, 4, 5.0),
    Scenario("4 cams 30 Hz, overloaded model", FOUR_30, 60.0, 10.0, 4, 5.0),
    Scenario("3 cams 30/30/5 Hz, fast model", (30.0, 30.0, 5.0), 3.0, 1.0, 4, 10.0),
    Scenario("  same, no forecast", (30.0, 30.0, 5.0), 3.0, 1.0, 4, 10.0, forecast=False),
    # GPU-like: which max_batch_wait_ms, with and without the forecast, per arrival pattern.
    *(
        Scenario(f"GPU {pattern}, wait {wait:g}{'' if forecast else ', no forecast'}",
                 rates, GPU_BASE_MS, GPU_PER_FRAME_MS, 4, wait, forecast=forecast, **extra)
        for pattern, rates, extra in (
            ("phase-shifted", FOUR_30, {}),
            ("synced + DDS spread", FOUR_30, SYNCED_DDS),
            ("drifting rates", DRIFTING, {}),
        )
        for wait, forecast in ((1.0, False), (5.0, False), (1.0, True), (5.0, True), (8.0, True))
    ),
)  # fmt: skip


def run_scenario(scenario: Scenario, seconds: float) -> dict:
    batcher = FrameBatcher(
        scenario.max_batch_size,
        scenario.max_batch_wait_ms,
        forecast_arrivals=scenario.forecast,
    )
    latency = LatencyWindow(100_000)
    queue_wait = LatencyWindow(100_000)
    batch_sizes: list[int] = []
    seen_batches: set[int] = set()
    lock = threading.Lock()

    def model(frames: list[Frame]) -> list[int]:
        time.sleep((scenario.base_ms + scenario.per_frame_ms * len(frames)) / 1000.0)
        return [frame.index for frame in frames]

    def on_result(camera: str, frame: Frame, result: int, info: BatchInfo) -> None:
        done = time.monotonic()
        latency.record((done - frame.triggered_at) * 1e3)
        queue_wait.record((info.started_at - frame.triggered_at) * 1e3)
        with lock:
            if info.batch_index not in seen_batches:
                seen_batches.add(info.batch_index)
                batch_sizes.append(info.batch_size)

    worker = InferenceWorker(model, batcher, on_result)
    worker.start()
    stop = threading.Event()

    num_cameras = len(scenario.rates_hz)

    start = time.monotonic()

    def camera_loop(camera_index: int) -> None:
        period = 1.0 / scenario.rates_hz[camera_index]
        phase = 0.0 if scenario.synchronised else camera_index * period / num_cameras
        # Seeded per camera: the same arrival jitter for every policy compared.
        jitter = random.Random(camera_index)
        trigger_at = start + phase
        index = 0
        while not stop.is_set():
            arrival_ms = camera_index * scenario.arrival_spread_ms
            arrival_ms += jitter.uniform(0.0, scenario.arrival_jitter_ms)
            delay = trigger_at + arrival_ms / 1e3 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            batcher.put(f"cam{camera_index}", Frame(f"cam{camera_index}", index, trigger_at))
            index += 1
            trigger_at += period

    threads = [
        threading.Thread(target=camera_loop, args=(i,), name=f"camera-{i}")
        for i in range(num_cameras)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    time.sleep(0.2)
    worker.stop()
    counters = batcher.counters()
    return {
        "scenario": scenario.__dict__,
        "received": sum(c.received for c in counters.values()),
        "processed": sum(c.batched for c in counters.values()),
        "dropped": sum(c.dropped for c in counters.values()),
        "mean_batch_size": float(np.mean(batch_sizes)) if batch_sizes else 0.0,
        # Each with its sample count and p95_reliable/p99_reliable (a short --seconds gives
        # too few frames for a p99).
        "latency_ms": summary_stats(latency.summary()),
        "queue_wait_ms": summary_stats(queue_wait.summary(), (50, 99), include_max=False),
    }


def put_cost_us(calls: int = 200_000) -> float:
    batcher = FrameBatcher(max_batch_size=4, max_batch_wait_ms=5.0)
    frame = object()
    start = time.perf_counter()
    for index in range(calls):
        batcher.put("cam0" if index % 2 else "cam1", frame)
    return (time.perf_counter() - start) / calls * 1e6


def table_lines(rows: list[dict]) -> list[str]:
    """The printed table; a p95/p99 from too few frames is marked ``*`` (footnote below)."""
    lines = [
        f"{'scenario':34}{'in':>6}{'done':>6}{'drop':>6}{'batch':>7}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'queue p50':>10}{'queue p99':>10}"
    ]
    for row in rows:
        lat, wait = row["latency_ms"], row["queue_wait_ms"]
        lines.append(
            f"{row['scenario']['name']:34}{row['received']:>6}{row['processed']:>6}"
            f"{row['dropped']:>6}{row['mean_batch_size']:>7.2f}{cell(lat, 50)}"
            f"{cell(lat, 95)}{cell(lat, 99)}{cell(wait, 50, 10)}{cell(wait, 99, 10)}"
        )
    note = footnote([row[key] for row in rows for key in ("latency_ms", "queue_wait_ms")], "frames")
    return [*lines, note] if note else lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline.json"))
    args = parser.parse_args()
    result = {
        "machine": f"{cpu_model_name()}, {platform.python_version()}",
        "put_cost_us": put_cost_us(),
        "scenarios": [run_scenario(s, args.seconds) for s in SCENARIOS],
    }
    print(f"FrameBatcher.put: {result['put_cost_us']:.2f} µs per call")
    print("\n".join(table_lines(result["scenarios"])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
