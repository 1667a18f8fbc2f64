"""The node parameter `max_detections` in a running node (settings checks: test_node_settings.py)."""

from __future__ import annotations

import pytest


@pytest.mark.ros
def test_the_node_takes_the_cap_and_changes_it_at_run_time(ros):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from togethernet_ros.ros.detector_node import DetectorNode

    overrides = {
        "image_topics": ["/cam_a/image_raw"],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "device": "cpu",
        "max_detections": 25,
    }
    node = ros.add_node(
        DetectorNode(
            parameter_overrides=[Parameter(n, value=v) for n, v in overrides.items()],
            context=ros.context,
        )
    )
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
