"""Shared pytest set-up: a loopback-only DDS session and per-test ROS contexts.

Every test session gets its own random ROS_DOMAIN_ID and the repo's Fast DDS profile before any
rclpy import, so parallel runs on one machine never see each other's topics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from togethernet_ros.ros.local_dds import local_dds_environment
from togethernet_ros.ros.shm_segments import fastdds_segments, remove_stale_segments

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(local_dds_environment())
    config.stash[_SHM_BEFORE] = fastdds_segments()


def pytest_unconfigure(config: pytest.Config) -> None:
    # Fast DDS leaves shared-memory segments behind when a process dies hard; remove the ones this
    # session created that no process maps any more (never touch other runs' live segments).
    remove_stale_segments(config.stash.get(_SHM_BEFORE, set()))


_SHM_BEFORE = pytest.StashKey[set]()


@dataclass
class RosHarness:
    """One rclpy context with an executor spinning in a background thread."""

    context: object
    executor: object
    spinner: object

    def add_node(self, node: object) -> object:
        self.executor.add_node(node)
        return node

    def paused(self):
        """A block in which the executor builds no wait set: for lifecycle transitions
        triggered from the test thread, which destroy subscriptions (see BackgroundSpinner)."""
        return self.spinner.paused()


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    """A fresh rclpy Context per test, spun in a thread, shut down in the documented order."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    context = rclpy.Context()
    rclpy.init(context=context)
    # Not MultiThreadedExecutor: under Python 3.12 (Jazzy on Ubuntu 24.04) it falls behind
    # ~100 messages/s (docs/benchmarks.md, "GPU end to end over DDS").
    executor = SingleThreadedExecutor(context=context)
    spinner = BackgroundSpinner(executor, "test-executor")
    spinner.start()
    try:
        yield RosHarness(context=context, executor=executor, spinner=spinner)
    finally:
        spinner.stop()  # before destroying: a callback still running would use dead handles
        for node in list(executor.get_nodes()):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)  # a test may have shut it down (the SIGINT path)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """Two torch threads during the test (a limit to 1 is then visible), the old count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)  # process-wide: later tests must not run on one thread
