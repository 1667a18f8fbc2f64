"""A separate ROS process that records (topic, header stamp) of Detection2DArray topics.

Run: python independent_subscriber.py OUT.json TOPIC...; stops on SIGINT and writes OUT.json.
Used to check that the replay report counts what any other subscriber sees.

It subscribes only once it sees a publisher on every topic (the detector node, started later by
the replay). Subscribed from the start, its readers were known to the replay at once, so the
replay's wait for two subscribers per topic passed before the node and this process had
discovered each other: on a loaded machine the node published its first outputs, or all of them,
before matching this reader, which then missed them (VOLATILE: no late delivery).
"""

from __future__ import annotations

import json
import signal
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection2DArray


def main() -> None:
    out_path, topics = sys.argv[1], sys.argv[2:]
    rclpy.init()
    node = rclpy.create_node("independent_subscriber")
    seen: list[list] = []
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE
    )
    print("ready", flush=True)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    while not stop and not all(node.count_publishers(topic) > 0 for topic in topics):
        rclpy.spin_once(node, timeout_sec=0.05)
    for topic in topics:
        node.create_subscription(
            Detection2DArray,
            topic,
            lambda m, t=topic: seen.append(
                [t, m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec, len(m.detections)]
            ),
            qos,
        )
    try:
        while not stop:
            rclpy.spin_once(node, timeout_sec=0.05)
        # Take what DDS already delivered before stopping: on a loaded machine this process can
        # lag the replay by seconds, and the replay stops it as soon as its own drain ends.
        idle_since = time.monotonic()
        deadline = idle_since + 15.0
        while time.monotonic() - idle_since < 1.0 and time.monotonic() < deadline:
            before = len(seen)
            rclpy.spin_once(node, timeout_sec=0.1)
            if len(seen) != before:
                idle_since = time.monotonic()
    except ExternalShutdownException:
        pass
    with open(out_path, "w") as sink:
        json.dump(seen, sink)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
