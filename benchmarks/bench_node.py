"""Benchmark the detector node as users run it: a separate process fed over real DDS.

Two measurements (issue: the ROS 2 detector node, "Targets"):

* ``overhead``: one 1280x720 camera at a rate the model can follow; end-to-end latency (receive
  time of the Detection2DArray minus the image stamp) against the detector's own time per frame
  (``inference_p50_ms`` from /diagnostics). Their difference is what the node adds: DDS transfer,
  decoding, batching, smoothing and message building.
* ``soak``: N cameras at 30 Hz for a given duration; the node must keep processing the newest frames
  with bounded latency, without queue growth and with flat memory (RSS sampled with psutil).

Usage: .venv/bin/python benchmarks/bench_node.py overhead|soak [--seconds S] [--cameras N]
Writes JSON to --out (default benchmarks/results/node_<mode>.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import multiprocessing.synchronize
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from machine import cpu_model_name

from togethernet_ros.pipeline.latency_report import (
    describe,
    is_flagged,
    percentile_stats,
    sample_needs,
)
from togethernet_ros.pipeline.latency_stats import percentile_reliable

REPO = Path(__file__).resolve().parents[1]
# How often the soak samples the node's memory (RSS).
RSS_INTERVAL_S = 5.0


def _start_node(
    topics: list[str],
    input_size: list[int],
    input_reliability: str,
    weights: str,
    env: dict[str, str],
    extra_parameters: dict[str, str],
    log_path: Path,
    emulated_gpu_ms: str | None = None,
) -> subprocess.Popen:
    topic_list = "[" + ",".join(f"'{t}'" for t in topics) + "]"
    size = "[" + ",".join(str(s) for s in input_size) + "]"
    executable = [str(Path(sys.executable).parent / "detector_node")]
    if emulated_gpu_ms is not None:
        executable = [sys.executable, str(REPO / "benchmarks" / "emulated_gpu_node.py")]
        env = dict(env, EMULATED_GPU_MS=emulated_gpu_ms)
    # The child keeps its own descriptor of the log; this process closes its copy.
    with log_path.open("w") as log:
        return subprocess.Popen(
            [
                *executable,
                "--ros-args",
                "--params-file",
                str(REPO / "config" / "detect.yaml"),
                "-p",
                f"weights:={weights or chr(39) * 2}",
                "-p",
                "allow_untrained_weights:=true",
                "-p",
                f"input_reliability:={input_reliability}",
                "-p",
                f"image_topics:={topic_list}",
                "-p",
                f"input_size:={size}",
                "-p",
                "diagnostics_period_s:=1.0",
                "-p",
                f"max_batch_size:={max(1, len(topics))}",
                *[f for key, value in extra_parameters.items() for f in ("-p", f"{key}:={value}")],
            ],
            env=env,
            # A file, not a pipe nobody reads: the node's reason for failing to start is in it.
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _abort_when_node_exits(
    process: subprocess.Popen, ready: multiprocessing.synchronize.Barrier, started: threading.Event
) -> None:
    """Break the start barrier as soon as the node exits, instead of after its 150 s timeout."""
    while not started.wait(0.2):
        if process.poll() is not None:
            ready.abort()
            return


def _log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(nothing)"


def _cdr_header_stamp(serialized: bytes) -> float:
    """Seconds of the std_msgs/Header stamp that opens a serialized message.

    CDR: a 4-byte encapsulation header (its second byte 1 = little endian), then the stamp's
    int32 sec and uint32 nanosec.
    """
    order = "<" if serialized[1] == 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", serialized, 4)
    return sec + nanosec * 1e-9


def _camera_frame(image_path: Path | None) -> np.ndarray:
    """The 1280x720 BGR frame every camera sends: an image, a video's middle frame, or noise."""
    if image_path is None:
        return np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    import cv2

    source = cv2.imread(str(image_path)) if image_path.suffix != ".avi" else None
    if source is None:  # a video: its middle frame
        capture = cv2.VideoCapture(str(image_path))
        capture.set(cv2.CAP_PROP_POS_FRAMES, capture.get(cv2.CAP_PROP_FRAME_COUNT) // 2)
        ok, source = capture.read()
        if not ok:
            raise RuntimeError(f"cannot read a frame from {image_path}")
    return np.ascontiguousarray(cv2.resize(source, (1280, 720)))


def _publish_camera(
    topic: str,
    rate_hz: float,
    seconds: float,
    image_path: Path | None,
    ready: multiprocessing.synchronize.Barrier,
    sent_counts: multiprocessing.Queue,
    publish_serialized: bool = True,
    phase_s: float = 0.0,
    jpeg: bool = False,
) -> None:
    """One camera process: publish ``topic`` at ``rate_hz`` for ``seconds`` once the node listens.

    Each camera has its own process, as drivers do, and stamps its frame just before publishing
    it. In one process the receiver's executor was starved by 120 x 2.7 MB images per second
    (detections seen up to a second late that the node had published within ~15 ms), and one
    stamp for four frames published one after another added ~2 ms per camera before the last.
    The cameras start together (a barrier), like hardware-triggered ones, each on the system-wide
    monotonic clock's period grid plus ``phase_s``: processes leaving the barrier a few ms apart
    would otherwise start at a different phase in every run, which moved the latency between runs
    more than what was being compared.

    ``publish_serialized``: send the frame's CDR bytes with the stamp written into them, which
    costs a copy like a C++ driver's publish. rclpy's publish of the message instead converts
    the 2.7 MB to C after the stamp (1.4 ms on the 2-core development machine), Python's cost,
    not the detector node's; False measures that way too.

    ``jpeg``: publish a sensor_msgs/CompressedImage (the frame as a quality-90 JPEG, as
    image_transport's compressed plugin sends it) on ``topic``, which ends in ``/compressed``.
    """
    import cv2
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    rclpy.init(args=[])  # not sys.argv: "--param name:=value" would read as a remap rule
    node = rclpy.create_node(f"bench_camera_{topic.strip('/').split('/')[0]}")
    publisher = node.create_publisher(
        CompressedImage if jpeg else Image,
        topic,
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    )
    pixels = _camera_frame(image_path)
    if jpeg:
        message = CompressedImage()
        message.format = "jpeg"
        message.data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    else:
        message = Image()
        message.height, message.width, message.encoding, message.step = 720, 1280, "bgr8", 3840
        message.data = pixels.tobytes()
    message.header.frame_id = "bench"
    serialized = bytearray(serialize_message(message))
    deadline = time.monotonic() + 120
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    ready.wait(timeout=150)
    sent = 0
    period = 1.0 / rate_hz
    # CLOCK_MONOTONIC is one clock for every process: the same grid in each camera.
    start = next_send = (math.floor((time.monotonic() + 0.2) / period) + 1) * period + phase_s
    time.sleep(max(0.0, start - time.monotonic()))
    # A count, not a time limit: a stall near the end would otherwise leave frames unsent
    # (late sends are caught up, back to back, as a driver's queued frames would be); a
    # camera more than 5 s behind stops there and reports what it sent.
    for _ in range(round(seconds * rate_hz)):
        if time.monotonic() - start > seconds + 5.0:
            break
        now_wall = time.time()
        sec, nanosec = int(now_wall), int((now_wall % 1) * 1e9)
        if publish_serialized:
            # The stamp is the first field, right after the 4-byte CDR encapsulation header.
            struct.pack_into("<iI", serialized, 4, sec, nanosec)
            publisher.publish(bytes(serialized))
        else:
            message.header.stamp.sec, message.header.stamp.nanosec = sec, nanosec
            publisher.publish(message)
        sent += 1
        next_send += period
        time.sleep(max(0.0, next_send - time.monotonic()))
    sent_counts.put(sent)
    node.destroy_node()
    rclpy.shutdown()


def run(
    mode: str,
    seconds: float,
    cameras: int,
    rate_hz: float,
    input_size: list[int],
    input_reliability: str,
    weights: str,
    image_path: Path | None = None,
    extra_parameters: dict[str, str] | None = None,
    camera_publish: str = "serialized",
    emulated_gpu_ms: str | None = None,
    forecast: bool = True,
    camera_phase: str = "synchronized",
    camera_format: str = "raw",
) -> dict:
    from togethernet_ros.ros.local_dds import local_dds_environment

    env = dict(os.environ, **local_dds_environment())
    # Before rclpy starts here and in the spawned camera process: they inherit os.environ.
    os.environ.update(env)
    import psutil
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    suffix = "/compressed" if camera_format == "jpeg" else ""
    topics = [f"/bench_cam{index}/image_raw{suffix}" for index in range(cameras)]
    node_log = Path(tempfile.mkstemp(prefix="bench_node_", suffix=".log")[1])
    node_parameters = dict(extra_parameters or {})
    if not forecast:
        node_parameters["batch_arrival_forecast"] = "false"
    process = _start_node(
        topics,
        input_size,
        input_reliability,
        weights,
        env,
        node_parameters,
        node_log,
        emulated_gpu_ms,
    )
    rclpy.init(args=[])  # not sys.argv: "--param name:=value" would read as a remap rule
    node = rclpy.create_node("node_benchmark")
    # Not MultiThreadedExecutor: under Python 3.12 (Jazzy on Ubuntu 24.04) it fell behind 120
    # detections/s (1,776 of 2,400 received, p50 124 ms); this one gets all at p50 15 ms.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    # Stopped before the node is destroyed: a daemon thread still inside executor.spin() at
    # exit aborted the process ("terminate called without an active exception").
    spinner = BackgroundSpinner(executor, "bench_receiver")
    spinner.start()
    latencies: dict[str, list[tuple[float, float]]] = {topic: [] for topic in topics}
    diagnostics: dict[str, dict[str, str]] = {}
    lock = threading.Lock()

    def on_detections(topic: str):
        # Raw CDR: the stamp is all a latency probe needs, and turning every Detection2DArray
        # into nested Python objects made this receiver, not the node, the bottleneck.
        def callback(serialized: bytes) -> None:
            now = time.time()
            stamp = _cdr_header_stamp(serialized)
            with lock:
                latencies[topic].append((now, (now - stamp) * 1e3))

        return callback

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            with lock:
                diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    detection_subscriptions = []
    for topic in topics:
        namespace = topic.removesuffix("/compressed").rsplit("/", 1)[0]
        detection_subscriptions.append(
            node.create_subscription(
                Detection2DArray,
                f"{namespace}/detections",
                on_detections(topic),
                reliable,
                raw=True,
            )
        )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)

    context = multiprocessing.get_context("spawn")
    # Every camera plus this process: the soak starts when all cameras see the node.
    ready, sent_counts = context.Barrier(cameras + 1), context.Queue()
    camera_processes = [
        context.Process(
            target=_publish_camera,
            args=(
                topic,
                rate_hz,
                seconds,
                image_path,
                ready,
                sent_counts,
                camera_publish == "serialized",
                index / cameras / rate_hz if camera_phase == "staggered" else 0.0,
                camera_format == "jpeg",
            ),
            name=f"bench_camera_{index}",
        )
        for index, topic in enumerate(topics)
    ]
    for camera_process in camera_processes:
        camera_process.start()
    started = threading.Event()
    threading.Thread(
        target=_abort_when_node_exits, args=(process, ready, started), daemon=True
    ).start()
    # The cameras wait for the node; this receiver also waits until it hears the node's
    # detections publishers, or a slow discovery on a loaded machine loses the first answers.
    heard_by = time.monotonic() + 120.0
    while time.monotonic() < heard_by and process.poll() is None:
        if all(subscription.get_publisher_count() for subscription in detection_subscriptions):
            break
        time.sleep(0.05)
    try:
        ready.wait(timeout=150)
    except threading.BrokenBarrierError as error:
        for camera_process in camera_processes:
            camera_process.terminate()
        process.terminate()
        try:
            exit_code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # rclpy ignoring SIGTERM in a stuck start-up
            process.kill()
            exit_code = process.wait()
        # As at the normal end: a spinning thread left at exit aborts the process.
        spinner.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
        raise RuntimeError(
            f"the detector node or a camera did not come up (node exit code {exit_code}); "
            f"the node's last lines ({node_log}):\n{_log_tail(node_log)}"
        ) from error
    finally:
        started.set()
    node_process = psutil.Process(process.pid)
    rss_samples: list[tuple[float, float]] = []
    start = time.monotonic()
    # A camera that reported its count but then hangs in DDS teardown (rclpy's
    # destroy_when_not_in_use; seen once in ~10 runs) is killed rather than waited for.
    give_up_at = start + seconds + 30.0
    # Memory every RSS_INTERVAL_S from the start on a fixed grid, while the cameras send (not
    # during their teardown after it): a soak of S seconds has S / RSS_INTERVAL_S + 1 samples.
    next_sample = start
    while alive := [camera for camera in camera_processes if camera.is_alive()]:
        now = time.monotonic()
        if next_sample <= start + seconds and now >= next_sample:
            rss_samples.append((now - start, node_process.memory_info().rss / 2**20))
            next_sample += RSS_INTERVAL_S
        if now > give_up_at:
            for camera in alive:
                camera.kill()
            break
        sampling = next_sample <= start + seconds
        alive[0].join(max(0.01, (next_sample if sampling else give_up_at) - time.monotonic()))
    sent = sum(sent_counts.get(timeout=10) for _ in camera_processes)
    # Drain: the node's last batches still come. At least 3 s, then until 1 s passes without
    # new detections (at most 30 s): a loaded machine may not have answered one frame yet.
    drain_from = time.monotonic()

    def received() -> int:
        with lock:
            return sum(len(values) for values in latencies.values())

    last_count, last_change = received(), drain_from
    while time.monotonic() - drain_from < 30.0:
        time.sleep(0.1)
        count = received()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        quiet = time.monotonic() - last_change >= 1.0
        if time.monotonic() - drain_from >= 3.0 and quiet and count > 0:
            break
    process.send_signal(2)
    try:
        exit_code: int | str = process.wait(timeout=60)
    except subprocess.TimeoutExpired:  # the node must not outlive the bench; the run still counts
        process.kill()
        process.wait()
        exit_code = "killed: no exit within 60 s of SIGINT"
    if exit_code == 0:
        node_log.unlink(missing_ok=True)  # kept (and named in the error) only when it failed
    spinner.stop()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()

    all_latency = np.array([lat for topic in topics for _, lat in latencies[topic]])
    received = int(all_latency.size)
    first_topic = f"detector: {topics[0]}"
    inference_p50 = float(diagnostics.get(first_topic, {}).get("inference_p50_ms", "nan"))
    dropped = sum(int(d.get("dropped_frames", "0")) for d in diagnostics.values())
    processed = sum(int(d.get("frames_processed", "0")) for d in diagnostics.values())
    result = {
        "mode": mode,
        "machine": f"{os.cpu_count()}-core CPU, {cpu_model_name()}",
        "date": time.strftime("%Y-%m-%d"),
        "cameras": cameras,
        "rate_hz": rate_hz,
        "camera_publish": camera_publish,
        "camera_phase": camera_phase,
        "image": f"1280x720 {'JPEG (quality 90)' if camera_format == 'jpeg' else 'bgr8'} "
        f"({image_path.name if image_path else 'random noise'})",
        "input_size": input_size,
        "input_reliability": input_reliability,
        "weights": "none (emulated GPU)" if emulated_gpu_ms else weights or "untrained",
        # "base:per_frame" ms of the stand-in model (benchmarks/emulated_gpu_node.py), or None.
        "emulated_gpu_ms": emulated_gpu_ms,
        "forecast_arrivals": forecast,
        "node_parameters": node_parameters,
        "backend": diagnostics.get(first_topic, {}).get("backend", "unknown"),
        "seconds": seconds,
        "frames_sent": sent,
        "frames_with_detections": received,
        "dropped_reported_by_node": dropped,
        "processed_reported_by_node": processed,
        # With their sample count and p95_reliable/p99_reliable: the overhead mode's default
        # 40 frames give a p99 that is an interpolation between the two slowest.
        "latency_ms": percentile_stats(all_latency),
        "detector_p50_ms": inference_p50,
        # The node's diagnostics cover its last 500 frames per camera: compare them with the
        # receiver's last 500 of that camera, not the whole run (a drifting run skews that).
        "end_to_end_minus_detector_p50_ms": (
            float(np.percentile([lat for _, lat in latencies[topics[0]][-500:]], 50))
            - inference_p50
            if latencies[topics[0]]
            else None
        ),
        "in_node_overhead_ms": node_overhead_ms(diagnostics.get(first_topic, {})),
        "rss_mib": rss_samples,
        "exit_code_after_sigint": exit_code,
        # The node's own output, kept when it did not exit cleanly.
        "node_log": None if exit_code == 0 else str(node_log),
        # The node's last /diagnostics per camera: its own latency (publish time - stamp),
        # rates, batch sizes and counters.
        "node_diagnostics": diagnostics,
    }
    if mode == "soak" and received:
        times = np.array([t for topic in topics for t, _ in latencies[topic]])
        result.update(soak_windows_p99(times, all_latency, seconds))
    if mode == "soak":
        result.update(rss_trend(rss_samples))
    return result


def rss_trend(rss_samples: list[tuple[float, float]]) -> dict:
    """The node's RSS after warm-up and at the end, from ``(seconds, MiB)`` samples every 5 s.

    The first sample is taken as the cameras start, before the node has processed a frame, so
    ``rss_first_mib`` is the second (None without one) and the trend runs from there to the
    last: it needs three samples, a soak longer than 10 s. A shorter soak reports what it has
    and ``rss_trend_note`` says why there is no trend, instead of failing after the whole run
    (its latencies would be lost).
    """
    values = [float(value) for _, value in rss_samples]
    first = values[1] if len(values) >= 2 else None
    last = values[-1] if values else None
    if len(values) >= 3:
        return {"rss_first_mib": first, "rss_last_mib": last}
    return {
        "rss_first_mib": first,
        "rss_last_mib": last,
        "rss_trend_note": (
            f"{len(values)} memory sample(s), taken every {RSS_INTERVAL_S:g} s: the memory trend "
            f"needs a soak longer than {2 * RSS_INTERVAL_S:g} s"
        ),
    }


def node_overhead_ms(values: dict[str, str]) -> dict:
    """The node's own overhead percentiles from one camera's /diagnostics key-values.

    ``count`` is the window's ``node_overhead_samples`` and ``p95_reliable`` the shared rule on
    it; both None when the node published no count (an older node, or no diagnostics at all).
    """
    samples = values.get("node_overhead_samples")
    count = int(samples) if samples is not None and samples.isdigit() else None
    return {
        "p50": float(values.get("node_overhead_p50_ms", "nan")),
        "p95": float(values.get("node_overhead_p95_ms", "nan")),
        "count": count,
        "percentile_method": values.get("percentile_method"),
        "p95_reliable": None if count is None else percentile_reliable(95.0, count),
    }


def soak_windows_p99(times: np.ndarray, latencies_ms: np.ndarray, seconds: float) -> dict:
    """p99 of the soak's first and last windows (a minute, or a third of a short run), each
    with its sample count and whether that count is enough for a p99 (100 samples).

    ``times`` are the receive times of ``latencies_ms``, in any order.
    """
    order = np.argsort(times)
    times, ordered = np.asarray(times)[order], np.asarray(latencies_ms)[order]
    minute = 60.0 if seconds >= 180 else seconds / 3
    windows = {
        "first": ordered[times - times[0] <= minute],
        "last": ordered[times >= times[-1] - minute],
    }
    result: dict = {}
    for name, window in windows.items():
        stats = percentile_stats(window, (99,), include_max=False)
        result[f"latency_{name}_window_p99_ms"] = stats["p99"]
        result[f"latency_{name}_window_samples"] = stats["count"]
        result[f"latency_{name}_window_p99_reliable"] = stats["p99_reliable"]
    return result


def report_lines(result: dict) -> list[str]:
    """The printed table: one line per result key, each p95/p99 with its sample count and
    marked ``*`` when from too few samples, then one line per camera's last /diagnostics."""
    lines, marked = [], False
    for key, value in result.items():
        if key in ("rss_mib", "node_diagnostics") or key.endswith(
            ("_window_samples", "_window_p99_reliable")
        ):
            continue  # the last two are printed with their window's p99
        if key == "latency_ms":
            marked |= is_flagged(value, 95) or is_flagged(value, 99)
            value = describe(value)
        elif key == "in_node_overhead_ms":
            flagged = value.get("p95_reliable") is False
            marked |= flagged
            value = (
                f"p50 {value['p50']:.2f}  p95 {value['p95']:.2f}{'*' if flagged else ''} ms "
                f"(n={value['count']})"
            )
        elif key.endswith("_window_p99_ms") and value is not None:
            window = key.removesuffix("_p99_ms")
            flagged = result.get(f"{window}_p99_reliable") is False
            marked |= flagged
            value = f"{value:.1f}{'*' if flagged else ''} (n={result.get(f'{window}_samples')})"
        lines.append(f"{key:32s} {value}")
    if marked:
        lines.append(f"{'':32s} * from too few samples for a tail ({sample_needs()})")
    # The node's own latency p99 with the sample count and the flag that say whether it is one.
    shown = (
        "frames_processed",
        "frames_lost_before_node",
        "frames_prepared_ahead",
        "batch_size_mean",
        "receive_delay_p50_ms",
        "receive_delay_p99_ms",
        # Where the receive delay goes (stamp -> DDS write -> reception -> callback).
        "driver_delay_p50_ms",
        "transport_delay_p50_ms",
        "transport_delay_p99_ms",
        "executor_delay_p50_ms",
        "executor_delay_p99_ms",
        "batch_wait_p50_ms",
        "inference_p50_ms",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_samples",
        "latency_p99_reliable",
    )
    for name, values in result.get("node_diagnostics", {}).items():
        lines.append(f"{name:32s} " + " ".join(f"{key}={values.get(key)}" for key in shown))
    rss = [round(value) for _, value in result.get("rss_mib", [])]
    lines.append(f"{'rss_mib (every 5 s)':32s} {rss[:6]} ... {rss[-6:]}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["overhead", "soak"])
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--cameras", type=int, default=None)
    parser.add_argument("--rate-hz", type=float, default=None)
    parser.add_argument("--input-size", type=int, nargs="+", default=[384, 640])
    parser.add_argument(
        "--input-reliability",
        choices=["reliable", "best_effort"],
        default="reliable",
        help="node input QoS (reliable: every offered frame reaches the node's newest-wins "
        "queue, so drops are the node's own; see docs/benchmarks.md)",
    )
    parser.add_argument(
        "--weights",
        default="models/togethernet_vtest_384.pt",
        help="checkpoint for the node ('' = untrained)",
    )
    parser.add_argument(
        "--image",
        type=Path,
        default=None,
        help="image or video (middle frame) to send, resized to 1280x720; default random noise",
    )
    parser.add_argument(
        "--camera-publish",
        choices=["serialized", "message"],
        default="serialized",
        help="how the camera processes publish: CDR bytes with the stamp written in (a copy, "
        "like a C++ driver) or an rclpy message (adds rclpy's 1.4 ms conversion after the stamp)",
    )
    parser.add_argument(
        "--camera-format",
        choices=["raw", "jpeg"],
        default="raw",
        help="cameras send sensor_msgs/Image (bgr8) or CompressedImage (JPEG, on "
        "<topic>/compressed, decoded by the node)",
    )
    parser.add_argument(
        "--camera-phase",
        choices=["synchronized", "staggered"],
        default="synchronized",
        help="cameras triggered at the same instants (hardware sync) or spread evenly over the "
        "frame period (free-running cameras at their worst for batching)",
    )
    parser.add_argument(
        "--emulate-gpu",
        metavar="BASE:PER_FRAME",
        default=None,
        help="run the node with a stand-in model that sleeps BASE + PER_FRAME x batch ms "
        "(benchmarks/emulated_gpu_node.py; 2.2:0.8 is the H100's cost shape): the node and DDS "
        "part of a GPU node's latency, on any machine",
    )
    parser.add_argument(
        "--no-forecast",
        action="store_true",
        help="the node's batcher without its arrival forecast (batch_arrival_forecast:=false)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--device", default=None, help="node parameter device (cpu, cuda)")
    parser.add_argument("--precision", default=None, help="node parameter precision (fp16)")
    parser.add_argument("--max-batch-wait-ms", type=float, default=None)
    parser.add_argument("--backend", default=None, help="node parameter backend (onnxruntime)")
    parser.add_argument("--onnx-path", default=None, help="node parameter onnx_path")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="any other node parameter, e.g. prepare_frames_ahead:=false (repeatable)",
    )
    args = parser.parse_args()
    node_options = {
        "device": args.device,
        "precision": args.precision,
        "max_batch_wait_ms": args.max_batch_wait_ms,
        "backend": args.backend,
        "onnx_path": args.onnx_path,
    }
    if args.emulate_gpu is not None:
        base, separator, per_frame = args.emulate_gpu.partition(":")
        try:
            valid = bool(separator) and float(base) >= 0 and float(per_frame) >= 0
        except ValueError:
            valid = False
        if not valid:
            parser.error(f"--emulate-gpu takes BASE:PER_FRAME in ms, got {args.emulate_gpu!r}")
    for assignment in args.param:
        name, separator, value = assignment.partition(":=")
        if not separator or not name:
            parser.error(f"--param takes NAME:=VALUE, got {assignment!r}")
        node_options[name] = value
    if args.mode == "overhead":
        seconds, cameras, rate = args.seconds or 40.0, args.cameras or 1, args.rate_hz or 1.0
    else:
        seconds, cameras, rate = args.seconds or 600.0, args.cameras or 4, args.rate_hz or 30.0
    result = run(
        args.mode,
        seconds,
        cameras,
        rate,
        args.input_size,
        args.input_reliability,
        args.weights,
        args.image,
        {key: str(value) for key, value in node_options.items() if value is not None},
        args.camera_publish,
        args.emulate_gpu,
        not args.no_forecast,
        args.camera_phase,
        args.camera_format,
    )
    out = args.out or REPO / "benchmarks" / "results" / f"node_{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(report_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
