"""launch/detect.launch.py's `use_sim_time` argument, as `ros2 launch ... use_sim_time:=X` gives it.

launch_ros is not on PyPI, so the launch file runs with the stand-ins of
test/package/test_launch_file.py: what is checked is the parameters it hands the node.
"""

from __future__ import annotations

import pytest
from package.test_launch_file import _run_launch_file


@pytest.mark.parametrize(
    ("given", "expected"),
    [("true", True), ("True", True), ("1", True), ("false", False), ("FALSE", False), ("0", False)],
)
def test_use_sim_time_takes_the_spellings_launch_conditions_take(given, expected):
    node = _run_launch_file(use_sim_time=given)
    assert node["parameters"][1:] == [{"use_sim_time": expected}]


@pytest.mark.parametrize("given", ["yes", "on", "ture", "sim"])
def test_a_use_sim_time_it_cannot_read_is_refused_not_taken_as_false(given):
    """`use_sim_time:=yes` used to run on the wall clock: replayed latencies read years."""
    with pytest.raises(
        ValueError, match=f"launch argument 'use_sim_time' must be true or false, got '{given}'"
    ):
        _run_launch_file(use_sim_time=given)
