"""`bag run`, `bag replay` and the demo read params files and ``-p`` values as the node does.

One reader (ros/params_file.py) with rcl's rules: every section matching ``/detector``
(``/**: {detector: ...}`` too), merged in the order the sections appear, scalars typed by rcl
(``5e-2`` a number, ``n`` false, ``~`` text). Before, each tool had its own reader: sections
nested under a wildcard were missed, ``5e-2`` and ``n`` were text the tools refused although
the node takes them, and the demo took its weights from the file's first section.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from togethernet_ros.bag.bag_replay_command import parse_overrides
from togethernet_ros.bag.demo_command import _demo_weights
from togethernet_ros.bag.detector_options import read_node_parameters, resolve_detector_settings
from togethernet_ros.cli import main
from togethernet_ros.model.weights_path import resolve_weights_path
from togethernet_ros.ros.params_file import ParamsFileError


def _params(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bag_run_merges_the_sections_for_the_node_with_rcl_scalars(tmp_path):
    params = _params(
        tmp_path,
        "camera_driver:\n"  # another node's section: not ours
        "  ros__parameters:\n"
        "    conf_threshold: 0.9\n"
        "/**:\n"
        "  ros__parameters:\n"
        "    conf_threshold: 0.2\n"
        "    nms_threshold: 0.5\n"
        "    tracking:\n"
        "      low_score_threshold: 5e-2\n"
        "      enabled: n\n"
        "detector:\n"
        "  ros__parameters:\n"
        "    conf_threshold: 0.35\n"
        "robot:\n"  # /robot/detector: a node in a namespace, not /detector
        "  detector:\n"
        "    ros__parameters:\n"
        "      conf_threshold: 0.7\n",
    )
    settings = resolve_detector_settings(argparse.Namespace(params_file=params))
    assert settings["conf_threshold"] == 0.35  # `detector:` comes after `/**:`, so it wins
    assert settings["nms_threshold"] == 0.5
    # rcl reads 5e-2 as a double and n as false; YAML 1.1 made both text, which bag run refused
    # ("tracking.enabled must be true or false, got 'n'") although the node runs with them.
    assert settings["tracker"]["low_score_threshold"] == 0.05
    assert isinstance(settings["tracker"]["low_score_threshold"], float)
    assert settings["tracking_enabled"] is False


def test_a_section_named_first_is_merged_first(tmp_path):
    # rcl merges in the order the sections appear: a `/**:` after `detector:` wins.
    params = _params(
        tmp_path,
        "detector:\n  ros__parameters:\n    conf_threshold: 0.35\n"
        "/**:\n  ros__parameters:\n    conf_threshold: 0.25\n",
    )
    assert read_node_parameters(params) == {"conf_threshold": 0.25}


def test_a_section_nested_under_a_wildcard_configures_bag_run(camera_bag, tmp_path, capsys):
    params = _params(
        tmp_path,
        "/**:\n  detector:\n    ros__parameters:\n      nms_threshold: 0.6\n"
        "      max_batch_wait_ms: 5e0\n",
    )
    # `/**: {detector: ...}` is the section /**/detector, which /detector matches; it was
    # missed ("no 'ros__parameters:' section") as the node took it.
    settings = resolve_detector_settings(argparse.Namespace(params_file=params))
    assert settings["nms_threshold"] == 0.6
    assert settings["max_batch_wait_ms"] == 5.0
    # Through the command: the nested value reaches bag run's checks, before any model loads.
    bad = _params(
        tmp_path, "/**:\n  detector:\n    ros__parameters:\n      conf_threshold: 1.5\n", "bad.yaml"
    )
    command = ["bag", "run", str(camera_bag(frames=1)), "--output", str(tmp_path / "out")]
    assert main([*command, "--params-file", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "conf_threshold" in error and "1.5" in error, error
    assert "no 'ros__parameters:' section" not in error
    assert not (tmp_path / "out").exists()


def test_a_params_file_for_other_nodes_only_is_named(tmp_path):
    params = _params(tmp_path, "robot:\n  detector:\n    ros__parameters:\n      weights: x\n")
    with pytest.raises(ParamsFileError) as refused:
        read_node_parameters(params)
    message = str(refused.value)
    assert message.startswith(
        f"params file {params} has no 'ros__parameters:' section for the node /detector"
    )
    assert "its sections (robot/detector) apply to other nodes or namespaces" in message
    # ParamsFileError is a ValueError: `bag run` reports it in one line, exit status 2.
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        # The first section is another node's: its weights were taken.
        "camera_driver:\n  ros__parameters:\n    weights: {other}\n"
        "detector:\n  ros__parameters:\n    weights: {mine}\n",
        # `/**:` first: its weights were taken though `detector:` after it wins.
        "/**:\n  ros__parameters:\n    weights: {other}\n"
        "detector:\n  ros__parameters:\n    weights: {mine}\n",
        # Nested under a wildcard: refused as "not a ROS 2 parameters file".
        "/**:\n  detector:\n    ros__parameters:\n      weights: {mine}\n",
    ],
)
def test_the_demo_takes_the_weights_the_node_gets(tmp_path, text):
    mine, other = tmp_path / "mine.pt", tmp_path / "other.pt"
    mine.write_bytes(b"checkpoint")
    other.write_bytes(b"checkpoint")
    params = _params(tmp_path, text.format(mine=mine, other=other))
    assert _demo_weights(None, params) == mine


def test_the_demo_keeps_the_node_default_weights_a_params_file_does_not_set(
    tmp_path, repo_root, capsys
):
    # The node declares its defaults from config/detect.yaml; a file setting a threshold only
    # ran the demo on UNTRAINED weights.
    params = _params(tmp_path, "detector:\n  ros__parameters:\n    conf_threshold: 1e-1\n")
    shipped = yaml.safe_load((repo_root / "config" / "detect.yaml").read_text())
    default = resolve_weights_path(shipped["/**"]["ros__parameters"]["weights"])
    assert default.is_file()
    assert _demo_weights(None, params) == default
    assert "UNTRAINED" not in capsys.readouterr().err


def test_replay_overrides_are_typed_as_rcl_types_them():
    parsed = parse_overrides(
        ["prepare_frames_ahead:=y", "tracking.enabled:=n", "onnx_path:=~", "nms_threshold:=1e-1"]
    )
    # YAML 1.1 read y and n as text ("must be true or false") and ~ as null ("must be a
    # string"): values the node takes.
    assert parsed == {
        "prepare_frames_ahead": True,
        "tracking.enabled": False,
        "onnx_path": "~",
        "nms_threshold": 0.1,
    }


def test_a_quoted_number_override_is_refused_as_the_node_would_not_get_it():
    # Quoted, it is text: rcl does not give text to a double parameter and the node would run
    # with the params file's value. It was turned into a number and passed as if it worked.
    with pytest.raises(ValueError, match=r"'conf_threshold' must be a finite number, got '0\.4'"):
        parse_overrides(["conf_threshold:='0.4'"])


def test_replay_topics_leave_the_input_bag_to_the_command(camera_bag, tmp_path, capsys):
    bag = camera_bag(frames=1)
    topics = ["/cam_front/image_raw", "/cam_side/image_raw/compressed"]
    # `--topics A B BAG` took BAG as a topic: "the following arguments are required: input".
    # --record on the input proves the command has the bag as its input, before any node.
    assert main(["bag", "replay", "--topics", *topics, str(bag), "--record", str(bag)]) == 2
    error = capsys.readouterr().err
    assert f"--record {bag} would replace the input bag {bag}" in error, error
    repeated = ["--topic", topics[0], "--topic", topics[1], str(bag), "--record", str(bag)]
    assert main(["bag", "replay", *repeated]) == 2
    assert "would replace the input bag" in capsys.readouterr().err
    missing = tmp_path / "missing_bag"
    assert main(["bag", "replay", "--topics", topics[0], str(missing)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bag replay: no input bag given (--topics took {str(missing)!r} as a topic): give the "
        "input bag first, or choose topics with --topic TOPIC, once per topic"
    )
