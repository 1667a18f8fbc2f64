"""Benchmark DDS transport of 1280x720 bgr8 images between two Python (rclpy) processes.

A publisher process sends one image per camera topic at a fixed rate with header.stamp = send
time; a subscriber process (depth-1 readers, as the detector node uses) records receive time minus
stamp. Both run once with reliable and once with best-effort QoS, each on a fresh ROS_DOMAIN_ID,
under the Fast DDS profile given by --profile (default: the project's config/fastdds_localhost.xml).

Usage: .venv/bin/python benchmarks/bench_transport.py [--cameras 4] [--rate 30] [--seconds 20]
       [--profile PATH] [--qos reliable best_effort] [--json PATH]
Prints a table; --json writes the same numbers with machine, load average and profile.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model_name  # noqa: E402

from togethernet_ros.pipeline.latency_report import cell, footnote, percentile_stats  # noqa: E402
from togethernet_ros.ros.local_dds import fastdds_profile_path, local_dds_environment  # noqa: E402
from togethernet_ros.ros.shm_segments import fastdds_segments, remove_stale_segments  # noqa: E402

HEIGHT, WIDTH = 720, 1280
# Fast DDS reports a rejected profile on stderr; these words mark the lines worth surfacing.
FASTDDS_ERROR_MARKERS = ("XMLPARSER", "XMLPROFILES", "Error", "error")


def _topics(cameras: int) -> list[str]:
    return [f"/bench_transport/cam{index}/image_raw" for index in range(cameras)]


def _qos(reliability: str):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    policy = {
        "reliable": ReliabilityPolicy.RELIABLE,
        "best_effort": ReliabilityPolicy.BEST_EFFORT,
    }[reliability]
    # Depth 1 on both sides: the node keeps only the newest frame per camera, so a writer that
    # queued more would only measure queueing, not transport.
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=policy)


def run_subscriber(cameras: int, reliability: str, out_path: Path) -> int:
    """Child process: record (topic index, latency ms) per received image until SIGINT/SIGTERM."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from togethernet_ros.pipeline.heap_tuning import keep_frames_on_the_heap

    # As the detector node does: under glibc's adaptive defaults each 720p take here cost
    # ~4 ms of page faults (docs/benchmarks.md), which is the receiver, not the transport.
    keep_frames_on_the_heap()
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    node = rclpy.create_node("bench_transport_subscriber")
    records: list[tuple[int, float]] = []
    bad_frames = 0

    def on_image(index: int):
        def callback(message: Image) -> None:
            nonlocal bad_frames
            received = time.time()
            stamp = message.header.stamp.sec + message.header.stamp.nanosec * 1e-9
            records.append((index, (received - stamp) * 1e3))
            # A size check costs nothing and catches truncated or mixed-up fragments.
            if len(message.data) != HEIGHT * WIDTH * 3:
                bad_frames += 1

        return callback

    for index, topic in enumerate(_topics(cameras)):
        node.create_subscription(Image, topic, on_image(index), _qos(reliability))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop:
        executor.spin_once(timeout_sec=0.1)
    out_path.write_text(json.dumps({"records": records, "bad_frames": bad_frames}))
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_publisher(cameras: int, reliability: str, rate_hz: float, seconds: float) -> int:
    """Child process: wait for the subscriber, then publish all cameras each period; print JSON."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_publisher")
    topics = _topics(cameras)
    publishers = [node.create_publisher(Image, topic, _qos(reliability)) for topic in topics]
    deadline = time.monotonic() + 60.0
    while any(p.get_subscription_count() < 1 for p in publishers):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "subscriber not matched within 60 s"}), flush=True)
            return 3
        time.sleep(0.02)
    # The writer sees the reader first; give the reader a moment to match the writer too, or the
    # first samples are dropped as coming from an unknown writer and counted as transport loss.
    time.sleep(1.0)

    frame = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    message = Image()
    message.header.frame_id = "bench"
    message.height, message.width, message.encoding, message.step = HEIGHT, WIDTH, "bgr8", WIDTH * 3
    message.data = frame.tobytes()
    sent = [0] * cameras
    publish_ms: list[float] = []
    late_ticks = 0
    period = 1.0 / rate_hz
    start = time.monotonic()
    next_tick = start
    while time.monotonic() - start < seconds:
        for index, publisher in enumerate(publishers):
            now_ns = time.time_ns()
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            begin = time.perf_counter()
            publisher.publish(message)
            publish_ms.append((time.perf_counter() - begin) * 1e3)
            sent[index] += 1
        next_tick += period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late_ticks += 1
    report = {"sent": sent, **publish_call_stats(publish_ms), "late_ticks": late_ticks}
    print(json.dumps(report), flush=True)
    # Reliable writers may still be repairing the last samples; let them finish before leaving.
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def publish_call_stats(publish_ms: list[float]) -> dict:
    """The publisher's ``publish()`` call times: p50, p95 with the sample count and the flag
    that says whether there were enough for a p95 (20)."""
    stats = percentile_stats(publish_ms, (50, 95), include_max=False)
    return {
        "publish_call_ms_p50": stats["p50"],
        "publish_call_ms_p95": stats["p95"],
        "publish_call_samples": stats["count"],
        "publish_call_ms_p95_reliable": stats["p95_reliable"],
    }


def latency_summary(records: list) -> dict:
    """Receive latency (ms, 2 decimals) of the subscriber's ``(camera, latency)`` records, with
    the sample count and p95_reliable/p99_reliable."""
    return percentile_stats([latency for _, latency in records], digits=2)


def _wait_with_cpu(process: subprocess.Popen, timeout: float) -> float:
    """Wait for a child and return its user+system CPU seconds (the cost on a 2-core machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.05)
    process.kill()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _fastdds_complaints(stderr_path: Path) -> list[str]:
    text = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
    return [line for line in text.splitlines() if any(m in line for m in FASTDDS_ERROR_MARKERS)]


def measure(profile: Path, cameras: int, rate_hz: float, seconds: float, reliability: str) -> dict:
    """One publisher/subscriber pair under one QoS; returns latency percentiles and delivery."""
    env = dict(os.environ, **local_dds_environment())
    # Fast DDS 2.x reads the FASTRTPS_ name, 3.x the FASTDDS_ one.
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    script = str(Path(__file__).resolve())
    common = ["--cameras", str(cameras), "--qos", reliability]
    timing = ["--rate", str(rate_hz), "--seconds", str(seconds)]
    with tempfile.TemporaryDirectory(prefix="bench_transport_") as tmp:
        tmp_dir = Path(tmp)
        out_path = tmp_dir / "subscriber.json"
        sub_err, pub_err = tmp_dir / "sub.err", tmp_dir / "pub.err"
        with sub_err.open("w") as sub_err_file, pub_err.open("w") as pub_err_file:
            # Fast DDS logs XML parser errors to stdout, so both streams go to the log file.
            subscriber = subprocess.Popen(
                [sys.executable, script, "--role", "sub", *common, "--out", str(out_path)],
                env=env,
                stdout=sub_err_file,
                stderr=sub_err_file,
            )
            publisher = subprocess.Popen(
                [sys.executable, script, "--role", "pub", *common, *timing],
                env=env,
                stdout=subprocess.PIPE,
                stderr=pub_err_file,
                text=True,
            )
            try:
                stdout, _ = publisher.communicate(timeout=seconds + 90)
            except subprocess.TimeoutExpired:
                publisher.kill()
                stdout, _ = publisher.communicate()
            # Let in-flight samples land before the subscriber stops counting.
            time.sleep(1.0)
            subscriber.send_signal(signal.SIGINT)
            subscriber_cpu_s = _wait_with_cpu(subscriber, timeout=30)
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        pub_report = json.loads(lines[-1]) if lines else {"error": "publisher printed nothing"}
        sub_report = (
            json.loads(out_path.read_text()) if out_path.exists() else {"records": [], "bad": 0}
        )
        complaints = _fastdds_complaints(sub_err) + _fastdds_complaints(pub_err)
        complaints += [line for line in stdout.splitlines() if not line.startswith("{")]

    records = sub_report["records"]
    latency = latency_summary(records)
    sent = pub_report.get("sent", [0] * cameras)
    received = [sum(1 for index, _ in records if index == cam) for cam in range(cameras)]
    total_sent = sum(sent)
    return {
        "qos": reliability,
        "sent": total_sent,
        "received": latency["count"],
        "delivery": round(latency["count"] / total_sent, 4) if total_sent else 0.0,
        "received_per_camera": received,
        "latency_ms": latency,
        "bad_frames": sub_report.get("bad_frames", 0),
        "publisher": pub_report,
        "publisher_exit": publisher.returncode,
        "subscriber_exit": subscriber.returncode,
        "subscriber_cpu_s": round(subscriber_cpu_s, 2),
        "fastdds_stderr": complaints[:20],
    }


def table_lines(runs: list[dict]) -> list[str]:
    """The printed table: a p95/p99 from too few received images is marked ``*`` (footnote)."""
    lines = [
        f"{'qos':<12}{'delivered':>18}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'sub CPU s':>11}"
    ]
    for run in runs:
        lat = run["latency_ms"]
        delivered = f"{run['received']}/{run['sent']} ({run['delivery']:.0%})"
        lines.append(
            f"{run['qos']:<12}{delivered:>18}{cell(lat, 50, 9)}{cell(lat, 95, 9)}"
            f"{cell(lat, 99, 9)}{run['subscriber_cpu_s']:>10.1f}"
        )
        lines += [f"  fast dds: {line}" for line in run["fastdds_stderr"]]
    note = footnote([run["latency_ms"] for run in runs], "received images")
    return [*lines, note] if note else lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["main", "pub", "sub"], default="main")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--qos", nargs="+", default=["reliable", "best_effort"])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "sub":
        return run_subscriber(args.cameras, args.qos[0], args.out)
    if args.role == "pub":
        return run_publisher(args.cameras, args.qos[0], args.rate, args.seconds)

    profile = (args.profile or fastdds_profile_path()).resolve()
    shm_before = fastdds_segments()
    load_before = os.getloadavg()
    runs = []
    try:
        for reliability in args.qos:
            runs.append(measure(profile, args.cameras, args.rate, args.seconds, reliability))
    finally:
        removed = remove_stale_segments(shm_before)
    result = {
        "machine": f"{os.cpu_count()}-core CPU, {cpu_model_name()}",
        "date": time.strftime("%Y-%m-%d"),
        "profile": str(profile),
        "cameras": args.cameras,
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "image": f"{WIDTH}x{HEIGHT} bgr8 ({HEIGHT * WIDTH * 3} bytes)",
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "stale_shm_removed": removed,
        "runs": runs,
    }
    print(f"profile {profile.name}, {args.cameras} cameras x {args.rate:g} Hz x {args.seconds:g} s")
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    print("\n".join(table_lines(runs)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = all(r["publisher_exit"] == 0 and r["subscriber_exit"] == 0 for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
