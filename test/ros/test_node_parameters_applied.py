"""Node parameters in a configured in-process node: `max_detections` (changes at run time)
and `num_threads` (applied when configure loads the model). Their value checks are in
test_node_settings.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.detector_nodes import detector_node

REPO = Path(__file__).resolve().parents[2]


def _node(ros, **parameters):
    untrained_on_cpu = {
        "image_topics": ["/cam_a/image_raw"],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "device": "cpu",
    }
    return detector_node(ros, {**untrained_on_cpu, **parameters})


@pytest.mark.ros
def test_the_node_takes_the_cap_and_changes_it_at_run_time(ros):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    node = _node(ros, max_detections=25)
    (descriptor,) = node.describe_parameters(["max_detections"])
    assert not descriptor.read_only
    assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (
        1,
        100_000,
    )
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    # The node caps after its class filter (test_detector_node.py has the behaviour), so its
    # detector returns every box.
    assert node._detector.max_detections is None
    assert node._settings["max_detections"] == 25
    assert node.set_parameters([Parameter("max_detections", value=40)])[0].successful
    assert node._settings["max_detections"] == 40
    # rclpy checks the declared range itself; the node's own check refuses what is not an int.
    refused = node.set_parameters([Parameter("max_detections", value=0)])[0]
    assert not refused.successful and "max_detections out of range" in refused.reason
    refused = node.set_parameters([Parameter("max_detections", value=2.5)])[0]
    assert not refused.successful
    assert "'max_detections' must be an integer, got 2.5" in refused.reason
    assert node._settings["max_detections"] == 40
    assert node.get_parameter("max_detections").value == 40


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


@pytest.mark.ros
def test_a_batch_failing_after_sigint_shut_the_context_down_is_no_inference_error(ros):
    """SIGINT's handler shuts the context down before the node stops its inference thread:
    the batch in hand then cannot publish, which is a stop, not a bad frame."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _node(ros)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    stats = node._cameras["/cam_a/image_raw"].stats
    failure = RuntimeError("failed to publish: publisher's context is invalid")
    node._on_inference_error(failure, [("/cam_a/image_raw", None)])
    assert stats.bad_frames == 1  # while the node runs, a failed batch counts
    ros.spinner.stop()
    rclpy.try_shutdown(context=ros.context)
    node._on_inference_error(failure, [("/cam_a/image_raw", None)])
    assert stats.bad_frames == 1
