"""In-process detector nodes for ROS tests, spinning in a test's `ros` harness."""

from __future__ import annotations

from typing import Any


def _new_node(ros: Any, parameters: dict[str, Any], node_options: dict[str, Any]) -> Any:
    from rclpy.parameter import Parameter

    from togethernet_ros.ros.detector_node import DetectorNode

    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    return DetectorNode(parameter_overrides=overrides, context=ros.context, **node_options)


def detector_node(ros: Any, parameters: dict[str, Any], **node_options: Any) -> Any:
    """A DetectorNode with these parameter overrides, added to ``ros``, not yet configured."""
    return ros.add_node(_new_node(ros, parameters, node_options))


def active_detector_node(ros: Any, parameters: dict[str, Any], **node_options: Any) -> Any:
    """A DetectorNode with these parameter overrides, configured, activated and added to ``ros``."""
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _new_node(ros, parameters, node_options)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return ros.add_node(node)
