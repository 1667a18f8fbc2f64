"""The node's processing path on a GPU without DDS: 4 x 720p cameras at 30 Hz.

Runs what `detector_node` runs per frame — FrameBatcher (newest frame per camera, cross-camera
batches), the single InferenceWorker, the torch CUDA detector (fp16, on-device pre-processing) and
a Tracker per camera — fed by one thread per camera at a fixed rate. Latency is the time from a
frame's creation to its smoothed detections. DDS transport is not included (no rclpy on the GPU
machine); on one host it adds about 1-2 ms for a 720p image over shared memory.

    python benchmarks/gpu_pipeline_check.py --seconds 20 --out result.json
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from togethernet_ros.inference import create_detector
from togethernet_ros.pipeline.frame_batcher import FrameBatcher
from togethernet_ros.pipeline.inference_worker import InferenceWorker
from togethernet_ros.pipeline.latency_report import (
    describe,
    is_flagged,
    percentile_stats,
    sample_needs,
)
from togethernet_ros.tracking.tracker import Tracker


@dataclass
class Frame:
    camera: str
    image: np.ndarray
    created: float


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--input-size", type=int, nargs=2, default=[384, 640])
    parser.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--prepare-ahead",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="letterbox waiting frames before their batch is due (node: prepare_frames_ahead)",
    )
    parser.add_argument(
        "--forecast",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the batcher's arrival forecast: wait only for cameras due before the deadline",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    detector = create_detector(
        None,
        allow_untrained=True,
        device=args.device,
        precision=args.precision,
        input_size=tuple(args.input_size),
        conf_threshold=0.3,
        nms_threshold=0.45,
        max_batch_size=args.cameras,
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(args.cameras)]
    # Warm-up: allocations, kernels and one CUDA graph per batch size the batcher can form
    # (without it, a 1-2 s capture stall mid-run shows up as drops and p99 latency).
    detector.warm_up(restore_modes=(False,))
    batcher = FrameBatcher(args.cameras, args.max_batch_wait_ms, forecast_arrivals=args.forecast)
    trackers = {f"cam{i}": Tracker() for i in range(args.cameras)}
    latencies: list[float] = []
    batch_sizes: list[int] = []
    inference_ms: list[float] = []
    lock = threading.Lock()

    def on_result(camera, frame, result, info) -> None:
        trackers[camera].update(result.detections, frame.created)
        with lock:
            latencies.append((time.perf_counter() - frame.created) * 1e3)
            batch_sizes.append(info.batch_size)
            inference_ms.append(info.inference_time_s * 1e3)

    worker = InferenceWorker(
        lambda frames: detector.detect([f.image for f in frames]),
        batcher,
        on_result,
        prepare_fn=(lambda camera, frame: detector.prepare_ahead(camera, frame.image))
        if args.prepare_ahead
        else None,
    )
    worker.start()
    stop = threading.Event()

    def camera_loop(index: int) -> None:
        period = 1.0 / args.rate_hz
        next_time = time.perf_counter() + index * period / args.cameras
        while not stop.is_set():
            time.sleep(max(0.0, next_time - time.perf_counter()))
            name = f"cam{index}"
            batcher.put(name, Frame(name, images[index], time.perf_counter()))
            next_time += period

    threads = [threading.Thread(target=camera_loop, args=(i,)) for i in range(args.cameras)]
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    worker.stop()
    counters = batcher.counters()
    result = {
        "backend": detector.backend,
        "cameras": args.cameras,
        "rate_hz": args.rate_hz,
        "image": "1280x720",
        "input_size": args.input_size,
        "max_batch_wait_ms": args.max_batch_wait_ms,
        "prepare_ahead": args.prepare_ahead,
        "forecast_arrivals": args.forecast,
        "frames_prepared_ahead": worker.frames_prepared,
        "frames_in": sum(c.received for c in counters.values()),
        "frames_out": len(latencies),
        "dropped": sum(c.dropped for c in counters.values()),
        # With its count and p99_reliable: a 20 s GPU run has thousands of frames, a dry run
        # a few dozen, whose p99 is an interpolation between the slowest two.
        "latency_ms": percentile_stats(latencies, (50, 99), include_max=False),
        # None, not a crash that loses the run's JSON, when no frame came out.
        "latency_max_ms": max(latencies) if latencies else None,
        "mean_batch_size": float(np.mean(batch_sizes)) if batch_sizes else None,
        "inference_ms_p50": float(np.percentile(inference_ms, 50)) if inference_ms else None,
    }
    detector.close()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(report_lines(result)))
    return 0


def report_lines(result: dict) -> list[str]:
    """The printed summary: one line per result key, the latency with its sample count and
    ``*`` on a percentile from too few samples (short enough for gpu_session.sh's log tail)."""
    lines = []
    for key, value in result.items():
        if key == "latency_ms":
            value = describe(value, precision=2)
        elif isinstance(value, float):
            value = f"{value:.2f}"
        lines.append(f"{key:22s} {value}")
    if is_flagged(result["latency_ms"], 99):
        lines.append(f"{'':22s} * from too few samples for a tail ({sample_needs((99,))})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
