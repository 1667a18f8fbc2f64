"""The node parameter `num_threads`: its checks, and the CPU threads a configured node uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from togethernet_ros.ros.node_settings import (
    SPECS_BY_NAME,
    SettingsError,
    default_config_path,
    load_default_parameters,
    validate_settings,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def defaults() -> dict:
    values = load_default_parameters(default_config_path())
    values["allow_untrained_weights"] = True
    return values


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


def test_num_threads_defaults_to_every_core_and_is_set_at_start(defaults):
    spec = SPECS_BY_NAME["num_threads"]
    assert spec.kind is int and spec.read_only  # applied when configure loads the model
    assert (spec.minimum, spec.maximum) == (0, 1024)
    assert "process-wide" in spec.description
    assert defaults["num_threads"] == 0  # config/detect.yaml: the libraries' default
    assert validate_settings(defaults)["num_threads"] == 0
    for value in (1, 4, 1024):
        defaults["num_threads"] = value
        assert validate_settings(defaults)["num_threads"] == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "parameter 'num_threads' must be >= 0, got -1"),
        (1025, "parameter 'num_threads' must be <= 1024, got 1025"),
        (2.5, "parameter 'num_threads' must be an integer, got 2.5"),
        (True, "parameter 'num_threads' must be an integer, got True"),
        ("4", "parameter 'num_threads' must be an integer, got '4'"),
    ],
)
def test_bad_num_threads_are_refused_naming_the_parameter(defaults, value, message):
    defaults["num_threads"] = value
    with pytest.raises(SettingsError) as refused:
        validate_settings(defaults)
    assert str(refused.value) == message


def _node(ros, **parameters):
    from rclpy.parameter import Parameter

    from togethernet_ros.ros.detector_node import DetectorNode

    overrides = {
        "image_topics": ["/cam_a/image_raw"],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "device": "cpu",
        **parameters,
    }
    return ros.add_node(
        DetectorNode(
            parameter_overrides=[Parameter(n, value=v) for n, v in overrides.items()],
            context=ros.context,
        )
    )


@pytest.mark.ros
def test_a_configured_node_runs_torch_on_the_threads_it_is_given(ros, torch_threads):
    import torch
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    node = _node(ros, num_threads=1)
    (descriptor,) = node.describe_parameters(["num_threads"])
    assert descriptor.read_only
    assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (
        0,
        1024,
    )
    assert torch.get_num_threads() == 2  # declared, not yet applied: the model loads at configure
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert torch.get_num_threads() == 1
    refused = node.set_parameters([Parameter("num_threads", value=2)])[0]
    assert not refused.successful and "num_threads" in refused.reason
    assert torch.get_num_threads() == 1


@pytest.mark.ros
def test_the_default_leaves_torch_threads_alone(ros, torch_threads):
    import torch
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _node(ros)
    assert node.get_parameter("num_threads").value == 0
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert torch.get_num_threads() == 2


@pytest.mark.ros
def test_the_onnxruntime_backend_gets_the_thread_count(ros, tmp_path, torch_threads):
    import torch
    from rclpy.lifecycle import TransitionCallbackReturn

    from togethernet_ros.cli import main

    onnx = tmp_path / "demo.onnx"
    export = ["export", "--weights", str(REPO / "models" / "togethernet_vtest_384.pt")]
    export += ["--output", str(onnx), "--input-size", "128", "--variant", "detect"]
    assert main([*export, "--no-verify"]) == 0
    node = _node(
        ros,
        backend="onnxruntime",
        onnx_path=str(onnx.with_name("demo.detect.onnx")),
        num_threads=1,
        allow_untrained_weights=False,
    )
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    session = node._detector._sessions[False]
    assert session.get_session_options().intra_op_num_threads == 1
    # Its letterbox and NMS run in torch, in the same process.
    assert torch.get_num_threads() == 1
