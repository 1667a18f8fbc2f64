"""A camera's receiver process: takes the camera's messages from DDS and hands them to the node.

rclpy copies each message out of DDS with the GIL held (0.7 ms for a 720p frame), so in one
process four cameras triggered together are taken one after another, the fourth ~5 ms after
the first, while the inference thread waits for the GIL too (docs/benchmarks.md, "Camera
receiver processes"). The detector node therefore starts one of these per raw camera
(ros/camera_receivers.py): it subscribes to the camera in its own process, copies each
message's serialized bytes into a shared-memory slot (pipeline/shared_frame_slots.py) and sends
the node a short notice over the socket it inherited; the node reads the frame in place and
hands the slot back over the same socket.

A message arriving while every slot is still with the node is dropped here; the node counts
it by its publisher's sequence number as lost before the node. The process ends when
the node closes the socket (its end of it, or the node's process, going away); SIGINT, SIGTERM
and SIGHUP are left to the node, which stops its receivers as it shuts down.

Internal: started by the node as
``python -m togethernet_ros.ros.camera_receiver_process --topic T --socket-fd N ...``.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from typing import Any

from togethernet_ros.pipeline.heap_tuning import keep_frames_on_the_heap
from togethernet_ros.pipeline.shared_frame_slots import (
    PUBLISHERS_CHANGED,
    SlotWriter,
    decode_release,
)
from togethernet_ros.ros.qos_settings import QosSettings

SPIN_TIMEOUT_S = 0.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options the node passes (see ros/camera_receivers.py)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True, help="resolved topic of sensor_msgs/Image")
    parser.add_argument("--socket-fd", type=int, required=True, help="inherited socket to the node")
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--namespace", default="/")
    parser.add_argument("--qos", required=True, help="QosSettings as JSON")
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--domain-id", type=int, default=None, help="the node's ROS domain")
    parser.add_argument("--prefix", default="", help="slot file-name prefix (unique per receiver)")
    parser.add_argument("--enclave", default=None, help="the node's SROS2 enclave")
    return parser.parse_args(argv)


class _Handoff:
    """The subscription's callback and the thread reading the node's slot releases."""

    def __init__(self, connection: socket.socket, writer: SlotWriter) -> None:
        self._connection = connection
        self._writer = writer
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self.failure: str | None = None

    def on_message(self, serialized: bytes, message_info: dict[str, Any] | None) -> None:
        try:
            with self._lock:
                notice = self._writer.write(serialized, _plain_info(message_info))
        except OSError as error:
            # The node sees this process end and receives the camera itself from then on.
            self.failure = (
                f"cannot hold a {len(serialized)}-byte frame in {self._writer.directory}: {error}"
            )
            self.closed.set()
            return
        if notice is None:
            return  # every slot is with the node: lost here, counted there by its sequence gap
        try:
            self._connection.send(notice.encode())
        except OSError:  # the node is gone
            self.closed.set()

    def on_publishers_changed(self, _status: object = None) -> None:
        try:
            self._connection.send(PUBLISHERS_CHANGED)
        except OSError:  # the node is gone
            self.closed.set()

    def read_releases(self) -> None:
        """Hand released slots back to the writer until the node closes the socket."""
        try:
            while True:
                data = self._connection.recv(64)
                if not data:
                    break
                with self._lock:
                    self._writer.release(decode_release(data))
        except (OSError, ValueError) as error:
            print(f"camera receiver: {error}; stopping", file=sys.stderr)
        finally:
            self.closed.set()


def _plain_info(message_info: dict[str, Any] | None) -> dict[str, int | None] | None:
    if message_info is None:
        return None
    return {key: (None if value is None else int(value)) for key, value in message_info.items()}


def main(argv: list[str] | None = None) -> int:
    """Receive until the node closes the socket; 0 then, 2 on bad options, 3 when a frame
    cannot be put in shared memory."""
    args = parse_args(argv)
    # Each taken message is a new 2.7 MB bytes object (720p): without this glibc maps and
    # zeroes fresh pages for every one, ~4 ms of page faults between reception and callback.
    keep_frames_on_the_heap()
    # The node stops its receivers itself when it shuts down (they run in a session of their
    # own, out of a terminal's reach): a signal to the whole control group (systemd's stop) must
    # not end a receiver while the node still runs. SIGKILL still does; the node then falls back.
    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, signal.SIG_IGN)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from togethernet_ros.ros.qos_profiles import qos_profile

    qos = QosSettings(**json.loads(args.qos))
    connection = socket.socket(fileno=args.socket_fd)
    writer = SlotWriter(args.slots, prefix=args.prefix)
    handoff = _Handoff(connection, writer)
    context = rclpy.Context()
    domain = {} if args.domain_id is None else {"domain_id": args.domain_id}
    ros_arguments = [] if args.enclave is None else ["--ros-args", "--enclave", args.enclave]
    rclpy.init(args=ros_arguments, context=context, **domain, **_no_signal_handlers())
    node = None
    try:
        node = rclpy.create_node(
            args.node_name,
            namespace=args.namespace,
            context=context,
            start_parameter_services=False,
        )
        from rclpy.subscription import Subscription

        # rclpy passes the message info to a two-argument callback since Iron; Humble's calls
        # every callback with the message alone.
        if hasattr(Subscription, "CallbackType"):
            callback: Any = handoff.on_message
        else:
            callback = lambda serialized: handoff.on_message(serialized, None)  # noqa: E731
        node.create_subscription(
            Image,
            args.topic,
            callback,
            qos_profile(qos),
            raw=True,
            **_publisher_change_events(handoff),
        )
        releases = threading.Thread(target=handoff.read_releases, daemon=True)
        releases.start()
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        while not handoff.closed.is_set() and context.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        writer.close()
        connection.close()
    if handoff.failure is not None:
        print(f"camera receiver of {args.topic}: {handoff.failure}", file=sys.stderr)
        return 3
    return 0


def _publisher_change_events(handoff: _Handoff) -> dict[str, Any]:
    """Tell the node when a camera publisher connects or leaves (it restarts its count of
    frames lost before the node); nothing on Humble, which has no matched event."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:
        return {}
    return {"event_callbacks": SubscriptionEventCallbacks(matched=handoff.on_publishers_changed)}


def _no_signal_handlers() -> dict[str, Any]:
    """rclpy.init's option to install no signal handlers, where this rclpy has it."""
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:
        return {}
    return {"signal_handler_options": SignalHandlerOptions.NO}


if __name__ == "__main__":
    sys.exit(main())
