"""Shared pytest set-up: a loopback-only DDS session and per-test ROS contexts.

Every test session gets its own random ROS_DOMAIN_ID and the repo's Fast DDS profile before any
rclpy import, so parallel runs on one machine never see each other's topics.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from togethernet_ros.ros.local_dds import local_dds_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
SHM_DIR = Path("/dev/shm")


def _shm_entries() -> set[str]:
    if not SHM_DIR.is_dir():
        return set()
    return {entry.name for entry in SHM_DIR.iterdir() if "fastrtps" in entry.name}


def _mapped_shm_names() -> set[str]:
    """Names of /dev/shm files some live process still has mapped."""
    names: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if "/dev/shm/" in line:
                names.add(line.rsplit("/dev/shm/", 1)[1].split()[0])
    return names


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(local_dds_environment())
    config.stash[_SHM_BEFORE] = _shm_entries()


def pytest_unconfigure(config: pytest.Config) -> None:
    # Fast DDS leaves shared-memory segments behind when a process dies hard; remove the ones this
    # session created that no process maps any more (never touch other runs' live segments).
    created = _shm_entries() - config.stash.get(_SHM_BEFORE, set())
    in_use = _mapped_shm_names()
    for name in created - in_use:
        with contextlib.suppress(OSError):
            (SHM_DIR / name).unlink()


_SHM_BEFORE = pytest.StashKey[set]()


@dataclass
class RosHarness:
    """One rclpy context with an executor spinning in a background thread."""

    context: object
    executor: object

    def add_node(self, node: object) -> object:
        self.executor.add_node(node)
        return node


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    """A fresh rclpy Context per test, spun in a thread, shut down in the documented order."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    spinner = threading.Thread(target=executor.spin, name="test-executor", daemon=True)
    spinner.start()
    try:
        yield RosHarness(context=context, executor=executor)
    finally:
        for node in list(executor.get_nodes()):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        spinner.join(timeout=10)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
