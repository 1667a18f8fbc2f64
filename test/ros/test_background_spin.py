"""A background-spun executor stops before its nodes are destroyed (real rclpy, real DDS)."""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros


@pytest.fixture
def context_and_thread_errors():
    """A fresh rclpy context, and the exceptions that end any thread meanwhile."""
    context = rclpy.Context()
    rclpy.init(context=context)
    thread_errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(args.exc_value)
    try:
        yield context, thread_errors
    finally:
        threading.excepthook = previous_hook
        rclpy.shutdown(context=context)


def test_stop_waits_for_the_running_callback_so_destroying_the_node_is_safe(
    context_and_thread_errors,
) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    context, thread_errors = context_and_thread_errors
    node = rclpy.create_node("spin_stop_probe", context=context)
    echo = node.create_publisher(String, "spin_stop_echo", 10)
    callback_started = threading.Event()
    callback_finished = threading.Event()

    def slow_callback(message: String) -> None:
        callback_started.set()
        time.sleep(0.5)  # the node is being torn down meanwhile (without the fix)
        echo.publish(message)
        callback_finished.set()

    node.create_subscription(String, "spin_stop_probe", slow_callback, 10)
    sender = node.create_publisher(String, "spin_stop_probe", 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = BackgroundSpinner(executor, "probe-spin")
    spinner.start()
    give_up = time.monotonic() + 60
    while not callback_started.is_set() and time.monotonic() < give_up:
        sender.publish(String(data="x"))
        callback_started.wait(0.1)
    assert callback_started.is_set(), "the subscription never received a message"

    spinner.stop()
    assert callback_finished.is_set()  # stop returned only after the callback was done
    node.destroy_node()
    executor.shutdown()
    time.sleep(0.2)  # a spinner still running would fail on the destroyed handles now
    assert thread_errors == []


def test_stopping_a_spinner_that_never_started_is_allowed() -> None:
    from rclpy.executors import SingleThreadedExecutor

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        spinner = BackgroundSpinner(SingleThreadedExecutor(context=context), "idle")
        spinner.stop()  # a set-up that failed before start() still tears down (join would raise)
    finally:
        rclpy.shutdown(context=context)


def test_a_shutdown_landing_inside_spin_once_ends_the_thread_quietly() -> None:
    # The context shut down between the spinner's check and the executor's wait set: rclpy raises
    # RCLError ("the given context is not valid"), which used to end the thread with a traceback.
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    spun = threading.Event()

    def spin_once_into_a_shut_down_context(timeout_sec: float | None = None) -> None:
        context.try_shutdown()
        spun.set()
        raise rclpy_implementation.RCLError("failed to initialize wait set: context not valid")

    executor.spin_once = spin_once_into_a_shut_down_context
    thread_errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(args.exc_value)
    try:
        spinner = BackgroundSpinner(executor, "race-spin")
        spinner.start()
        assert spun.wait(10.0)  # the thread reached the executor before being asked to stop
        spinner.stop(timeout_s=10.0)
    finally:
        threading.excepthook = previous_hook
        executor.shutdown()
    assert thread_errors == []


def test_paused_holds_callbacks_and_lets_the_test_thread_destroy_subscriptions(
    context_and_thread_errors,
) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    context, thread_errors = context_and_thread_errors
    node = rclpy.create_node("spin_pause_probe", context=context)
    received: list[str] = []
    node.create_subscription(String, "spin_pause_probe", lambda m: received.append(m.data), 10)
    sender = node.create_publisher(String, "spin_pause_probe", 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = BackgroundSpinner(executor, "pause-probe")
    spinner.start()
    with spinner.paused():
        sender.publish(String(data="held"))
        time.sleep(0.3)
        assert received == [], "a callback ran while paused"
        # What a lifecycle transition from this thread does: subscriptions (with their QoS
        # event handlers) created and destroyed while the spinner would build wait sets.
        for _ in range(20):
            node.destroy_subscription(node.create_subscription(String, "other", print, 1))
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert received == ["held"]
    spinner.stop()
    assert thread_errors == []
    executor.shutdown()
    node.destroy_node()


def test_paused_before_start_and_stop_while_paused_return_at_once() -> None:
    from rclpy.executors import SingleThreadedExecutor

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        executor = SingleThreadedExecutor(context=context)
        spinner = BackgroundSpinner(executor, "pause-edge-probe")
        with spinner.paused(timeout_s=1.0):
            pass  # nothing spins yet
        spinner.start()
        began = time.monotonic()
        with spinner.paused(timeout_s=5.0):
            spinner.stop(timeout_s=5.0)  # a paused thread leaves too
        assert time.monotonic() - began < 3.0
        executor.shutdown()
    finally:
        rclpy.shutdown(context=context)
