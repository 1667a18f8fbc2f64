"""A params file whose value is an empty list (``input_size: []``) in the bag commands and demo.

rcl gives ``[]`` no value at all (checked below against rclpy), so the node holds none and
refuses to configure. `bag run` and `demo` read the same file for their detector: they crashed
with ``TypeError: 'NoneType' object is not iterable``; they must name the parameter and file.
"""

from __future__ import annotations

import argparse

import pytest

from togethernet_ros.bag.detector_options import resolve_detector_settings
from togethernet_ros.cli import main


def _params(tmp_path, body: str):
    path = tmp_path / "params.yaml"
    path.write_text(f"detector:\n  ros__parameters:\n{body}")
    return path


@pytest.mark.ros
def test_rcl_gives_an_empty_list_no_value_not_the_declared_default(tmp_path):
    import rclpy

    path = _params(tmp_path, "    input_size: []\n")
    context = rclpy.Context()
    rclpy.init(args=["node", "--ros-args", "--params-file", str(path)], context=context)
    try:
        node = rclpy.create_node("detector", context=context)
        try:
            override = node._parameter_overrides["input_size"]
            assert override.type_ == rclpy.Parameter.Type.NOT_SET
            # The node declares its default; the override without a value replaces it.
            assert node.declare_parameter("input_size", [384, 640]).value is None
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_bag_run_names_the_parameter_without_a_value(camera_bag, tmp_path, capsys):
    params = _params(tmp_path, "    input_size: []\n")
    source = camera_bag(frames=2)
    output = tmp_path / "out"
    command = ["bag", "run", str(source), "--output", str(output), "--params-file", str(params)]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"params file {params}: parameter 'input_size' has no value" in error
    assert "empty list" in error and "Traceback" not in error
    assert not output.exists()  # refused before the model loads


def test_demo_names_the_parameter_without_a_value(tmp_path, capsys):
    # conf_threshold: the demo sets input_size, device and allow_untrained itself, not this.
    params = _params(tmp_path, "    conf_threshold: []\n")
    output = tmp_path / "demo"
    command = ["demo", "--params-file", str(params), "--output", str(output)]
    assert main([*command, "--frames", "1", "--input-size", "128", "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("demo: ")
    assert f"params file {params}: parameter 'conf_threshold' has no value" in error


def test_a_tracking_value_without_one_is_named_too(tmp_path):
    params = _params(tmp_path, "    tracking:\n      max_gap_s: []\n")
    with pytest.raises(ValueError, match=r"parameter 'tracking.max_gap_s' has no value"):
        resolve_detector_settings(argparse.Namespace(params_file=params))


def test_a_command_line_value_gives_it_one_as_p_does(tmp_path):
    # rcl: `-p input_size:=[128]` after a file's `input_size: []` gives the node [128].
    params = _params(tmp_path, "    input_size: []\n    conf_threshold: 0.25\n")
    settings = resolve_detector_settings(argparse.Namespace(params_file=params, input_size=[128]))
    assert settings["input_size"] == (128, 128)
    assert settings["conf_threshold"] == 0.25


@pytest.mark.parametrize("text", ["1.5", "abc", "[384, 640, 3]", "[true]"])
def test_an_input_size_the_node_refuses_is_named_not_a_traceback(tmp_path, text):
    # `1.5` was a TypeError; the others became ('a', 'b'), (384, 640) or (True, True).
    params = _params(tmp_path, f"    input_size: {text}\n")
    with pytest.raises(ValueError, match=rf"params file {params}: parameter 'input_size' must be"):
        resolve_detector_settings(argparse.Namespace(params_file=params))


def test_three_input_size_numbers_on_the_command_line_are_refused(camera_bag, tmp_path, capsys):
    source = camera_bag(frames=2)
    output = tmp_path / "out"
    command = ["bag", "run", str(source), "--output", str(output), "--allow-untrained-weights"]
    assert main([*command, "--input-size", "128", "128", "128"]) == 2
    error = capsys.readouterr().err
    assert "--input-size: parameter 'input_size' must be [side] or [height, width]" in error
