"""One reader of ``--ros-args`` sections (ros/params_file.py ``split_ros_args``) against rcl.

The node finds its ``--params-file`` paths and ``-p`` values on its command line again (to warn
about files for other node names and values rcl dropped): those readers must split the command
line where rcl splits it, which rclpy's own ``remove_ros_args`` and parameter overrides show.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.rcl_overrides import rcl_parameter_overrides

from togethernet_ros.ros.node_settings import command_line_values
from togethernet_ros.ros.params_file import (
    enclave_name,
    params_file_paths,
    ros_args_options,
    split_ros_args,
)

pytestmark = pytest.mark.ros

# Command lines rcl accepts; none configures logging output, so nothing is written to ~/.ros.
ACCEPTED = [
    ["prog", "in.bag", "--ros-args", "-p", "a:=1", "--", "--out", "x"],
    ["prog", "--ros-args", "--ros-args", "-p", "a:=1", "--", "--", "z"],
    ["prog", "--ros-args", "-r", "__node:=cam", "--", "mid", "--ros-args", "-e", "/enc", "--"],
    ["prog", "--ros-args", "--remap", "a:=b", "--param", "b:=2", "--", "tail"],
    ["prog", "--ros-args", "--log-level", "debug", "--disable-rosout-logs", "--", "q"],
    ["prog", "--ros-args", "--log-level", "rcl:=warn", "--enable-stdout-logs", "--"],
    ["prog", "--ros-args", "--disable-external-lib-logs", "-p", "n:a:=1", "--", "-p", "b:=1"],
    ["prog", "-p", "a:=1", "--params-file", "not_ros.yaml"],
    ["--ros-args", "-p", "a:=1"],  # rcl reads argv[0] too
    # The value of --log-file-name is taken whatever it is: `--` here names a log file.
    ["prog", "--ros-args", "--log-file-name", "--", "-p", "a:=1", "--", "x"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=lambda argv: " ".join(argv))
def test_the_program_keeps_the_words_rcl_leaves_it(argv):
    from rclpy.utilities import remove_ros_args

    assert split_ros_args(argv)[1] == remove_ros_args(argv)


def test_options_pair_each_flag_with_its_value():
    argv = [
        "prog", "--ros-args", "--params-file", "a.yaml", "-p", "x:=1", "--disable-rosout-logs",
        "--log-level", "debug", "--", "--params-file", "outside.yaml", "--ros-args",
        "-r", "__ns:=/front", "--param", "y:=[1, 2]", "-e", "/enc", "--params-file",
    ]  # fmt: skip
    assert ros_args_options(argv) == [
        ("--params-file", "a.yaml"),
        ("-p", "x:=1"),
        ("--disable-rosout-logs", ""),
        ("--log-level", "debug"),
        ("-r", "__ns:=/front"),
        ("--param", "y:=[1, 2]"),
        ("-e", "/enc"),
    ]  # the trailing --params-file has no value: rcl refuses the command line


def test_a_flag_value_that_looks_like_the_end_of_the_section_is_a_value(tmp_path):
    """``--log-file-name --`` names a log file; the ``--params-file`` after it is rcl's.

    The two readers walked the words without taking a flag's value, so they took that ``--``
    for the end of the section and missed the file and ``-p`` value after it.
    """
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    conf_threshold: 0.4\n")
    argv = [
        "prog", "--ros-args", "--log-file-name", "--", "--params-file", str(params),
        "-p", "max_batch_size:=2", "--", "rest",
    ]  # fmt: skip
    from rclpy.utilities import remove_ros_args

    assert remove_ros_args(argv) == ["prog", "rest"]
    assert params_file_paths(argv) == [params]
    assert command_line_values(argv) == {"max_batch_size": 2}


def test_files_and_values_found_are_the_ones_rcl_applies(tmp_path: Path):
    first = tmp_path / "first.yaml"
    first.write_text("/**:\n  ros__parameters:\n    from_first: 1\n    shared: 1\n")
    second = tmp_path / "second.yaml"
    second.write_text("/**:\n  ros__parameters:\n    from_second: 2\n    shared: 2\n")
    outside = tmp_path / "outside.yaml"
    outside.write_text("/**:\n  ros__parameters:\n    from_outside: 3\n")
    argv = [
        "prog", "--ros-args", "--params-file", str(first), "-r", "chatter:=talk",
        "--enable-rosout-logs", "-p", "given:=1e-1", "--", "--params-file", str(outside),
        "-p", "ignored:=5", "--ros-args", "--param", "also:=[1, 2]", "--params-file",
        str(second), "-p", "detector:qualified:=7",
    ]  # fmt: skip
    rcl = rcl_parameter_overrides(argv)
    assert params_file_paths(argv) == [first, second]
    assert "from_outside" not in rcl and "ignored" not in rcl
    assert rcl["from_first"] == 1 and rcl["from_second"] == 2 and rcl["qualified"] == 7
    values = command_line_values(argv)
    # Node-qualified rules are left out; the rest are what rcl gave the node.
    assert values == {"given": 0.1, "also": [1, 2]}
    assert all(rcl[name] == value for name, value in values.items())


def test_the_enclave_is_the_last_one_given_inside_ros_args():
    assert enclave_name(["prog", "--ros-args", "-p", "a:=1"]) is None
    assert enclave_name(["prog", "--enclave", "/not_ros", "--ros-args", "-p", "a:=1"]) is None
    assert enclave_name(["prog", "--ros-args", "-e", "/first", "--enclave", "/second"]) == (
        "/second"
    )
    assert enclave_name(ACCEPTED[2]) == "/enc"
