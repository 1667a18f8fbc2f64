"""The standard ROS 2 QoS overrides (`qos_overrides./<topic>.<entity>.<policy>`) on the node.

A real detector_node process (UNTRAINED model) started with `--ros-args --params-file`, its QoS
checked from another node through the ROS graph, over real DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.wait import wait_for

from togethernet_ros.ros.node_settings import SettingsError
from togethernet_ros.ros.qos_settings import (
    PUBLISHER,
    SUBSCRIPTION,
    QosEntity,
    QosSettings,
    detector_entities,
    unmatched_overrides,
)

pytestmark = pytest.mark.ros

NODE_PARAMETERS = """\
/**:
  ros__parameters:
    weights: ""
    allow_untrained_weights: true
    input_size: [128]
    image_topics: [/qos_a/image_raw, /qos_b/image_raw]
    qos_overrides:
      /qos_a/image_raw:
        subscription:
          reliability: reliable
          durability: transient_local
      /qos_b/detections:
        publisher:
          reliability: best_effort
          deadline: 2000000000
"""


def _node_command() -> list[str]:
    return [str(Path(sys.executable).parent / "detector_node"), "--ros-args"]


def _only(infos: list, topic: str):
    assert len(infos) == 1, f"{len(infos)} endpoints on {topic}"
    return infos[0].qos_profile


def test_overrides_from_a_params_file_change_the_qos_of_that_topic_only(ros, tmp_path):
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    params = tmp_path / "qos.yaml"
    params.write_text(NODE_PARAMETERS)
    log = tmp_path / "node.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*_node_command(), "--params-file", str(params)],
            env=dict(os.environ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        tester = ros.add_node(rclpy.create_node("qos_tester", context=ros.context))
        topics = ("/qos_a/image_raw", "/qos_b/image_raw")
        wait_for(
            lambda: (
                all(tester.get_subscriptions_info_by_topic(t) for t in topics)
                or process.poll() is not None
            ),
            120.0,
            "the node's camera subscriptions",
        )
        assert process.poll() is None, log.read_text()[-3000:]
        camera_a = _only(tester.get_subscriptions_info_by_topic(topics[0]), topics[0])
        camera_b = _only(tester.get_subscriptions_info_by_topic(topics[1]), topics[1])
        # Overridden on camera a only; camera b keeps input_reliability (best effort).
        assert camera_a.reliability == ReliabilityPolicy.RELIABLE
        assert camera_a.durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert camera_b.reliability == ReliabilityPolicy.BEST_EFFORT
        assert camera_b.durability == DurabilityPolicy.VOLATILE
        detections_a = _only(tester.get_publishers_info_by_topic("/qos_a/detections"), "a")
        detections_b = _only(tester.get_publishers_info_by_topic("/qos_b/detections"), "b")
        assert detections_a.reliability == ReliabilityPolicy.RELIABLE  # output_reliability
        assert detections_b.reliability == ReliabilityPolicy.BEST_EFFORT
        assert detections_b.deadline == Duration(seconds=2)
        # `ros2 param get` shows them, and they are read-only as ROS users expect.
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient

        client = AsyncParameterClient(tester, "/detector")
        assert client.wait_for_services(30.0)
        name = "qos_overrides./qos_a/image_raw.subscription.reliability"
        future = client.get_parameters([name])
        wait_for(future.done, 30.0, "get_parameters")
        assert future.result().values[0].string_value == "reliable"
        future = client.set_parameters([Parameter(name, value="best_effort")])
        wait_for(future.done, 30.0, "set_parameters")
        assert not future.result().results[0].successful
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    # The overrides are the node's: no "not its own" warning names them.
    assert "not its own" not in log.read_text(), log.read_text()[-3000:]


def test_bad_misspelt_and_unmatched_settings_are_named_before_the_model_loads(tmp_path):
    """A bad value was a bare RuntimeError from rclpy; a misspelt one was silently ignored."""
    params = tmp_path / "qos.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    image_topics: [cam/image_raw]\n"
        "    qos_overrides./front/cam/image_raw.subscription.reliability: reliabel\n"
        "    qos_overrides./front/cam/image_raw.subscriber.depth: 5\n"
    )
    # Keyed by the node's name without its namespace: applies to /detector, not /front/detector.
    plain_name = tmp_path / "detector_only.yaml"
    plain_name.write_text("detector:\n  ros__parameters:\n    conf_threshold: 0.6\n")
    result = subprocess.run(
        [
            *_node_command(), "-r", "__ns:=/front", "--params-file", str(params),
            "--params-file", str(plain_name), "-p", "weights:=''",
            "-p", "allow_untrained_weights:=true", "-p", "input_size:=[128]",
        ],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert (
        "parameter 'qos_overrides./front/cam/image_raw.subscription.reliability' must be one of "
        "['system_default', 'reliable', 'best_effort', 'best_available'], got 'reliabel'"
    ) in output, output[-3000:]
    assert (
        "qos_overrides./front/cam/image_raw.subscriber.depth (did you mean "
        "qos_overrides./front/cam/image_raw.subscription.depth?)"
    ) in output, output[-3000:]
    assert f"params file {plain_name} has no section for this node (/front/detector)" in output
    assert "model ready" not in output  # refused before loading the model


def _entities() -> list[QosEntity]:
    values = {
        "input_reliability": "best_effort",
        "input_depth": 1,
        "output_reliability": "reliable",
        "output_depth": 10,
        "publish_label_info": True,
    }
    return detector_entities(values, {"/cam/image_raw": "/cam/image_raw"}, lambda name: name)


def test_our_parameters_are_the_defaults_the_overrides_change_policy_by_policy():
    by_key = {(e.topic, e.entity): e for e in _entities()}
    camera = by_key[("/cam/image_raw", SUBSCRIPTION)]
    assert camera.base == QosSettings(reliability="best_effort", depth=1)
    assert camera.resolve(
        {
            "qos_overrides./cam/image_raw.subscription.reliability": "RELIABLE",
            "qos_overrides./cam/image_raw.subscription.liveliness_lease_duration": 10**9,
            "qos_overrides./other/image_raw.subscription.depth": 7,
        }
    ) == QosSettings(reliability="reliable", depth=1, liveliness_lease_duration=10**9)
    label_info = by_key[("/cam/label_info", PUBLISHER)]
    assert label_info.base.durability == "transient_local"
    assert "lifespan" not in camera.policies and "lifespan" in label_info.policies
    for policy, value, message in [
        ("depth", "5", r"must be an integer \(a depth\), got '5'"),
        ("depth", True, "must be an integer"),
        ("deadline", -1, "must be >= 0"),
        ("history", "keep_some", "must be one of"),
    ]:
        name = f"qos_overrides./cam/image_raw.subscription.{policy}"
        with pytest.raises(SettingsError, match=f"parameter '{name}' {message}"):
            camera.resolve({name: value})
    assert unmatched_overrides(
        [
            "qos_overrides./cam/detections.publisher.depth",
            "qos_overrides./cam/image_raw.subscription.lifespan",
            "qos_overrides./cam/detection.publisher.depth",
            "qos_overrides./lidar/points.subscription.reliability",
            "conf_threshold",
        ],
        _entities(),
    ) == {
        "qos_overrides./cam/image_raw.subscription.lifespan": (
            "a subscription has no policy 'lifespan': ['reliability', 'history', 'depth', "
            "'durability', 'deadline', 'liveliness', 'liveliness_lease_duration']"
        ),
        "qos_overrides./lidar/points.subscription.reliability": "no such topic or policy",
        "qos_overrides./cam/detection.publisher.depth": (
            "did you mean qos_overrides./cam/detections.publisher.depth?"
        ),
    }


def test_best_available_follows_the_installed_rclpy():
    """Accepted on every rclpy; Humble's has no BEST_AVAILABLE and failed with a bare KeyError."""
    from enum import Enum

    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from togethernet_ros.ros.qos_profiles import (
        RCLPY_POLICY_ENUMS,
        available_policy_choices,
        policy_choices,
        qos_profile,
    )
    from togethernet_ros.ros.qos_settings import POLICY_CHOICES

    # Shaped as Humble's rclpy.qos enums (no Humble here).
    humble_enums = {
        **RCLPY_POLICY_ENUMS,
        "reliability": Enum("ReliabilityPolicy", "SYSTEM_DEFAULT RELIABLE BEST_EFFORT UNKNOWN"),
        "durability": Enum("DurabilityPolicy", "SYSTEM_DEFAULT TRANSIENT_LOCAL VOLATILE UNKNOWN"),
        "liveliness": Enum("LivelinessPolicy", "SYSTEM_DEFAULT AUTOMATIC MANUAL_BY_TOPIC UNKNOWN"),
    }
    humble = policy_choices(humble_enums)
    assert humble["reliability"] == ("system_default", "reliable", "best_effort")
    assert humble["history"] == POLICY_CHOICES["history"]
    camera = next(e for e in _entities() if e.entity == SUBSCRIPTION)
    for policy in ("reliability", "durability", "liveliness"):
        name = f"qos_overrides./cam/image_raw.subscription.{policy}"
        with pytest.raises(
            SettingsError,
            match=(
                rf"^parameter '{name}' is 'Best_Available', which is not available in this ROS 2 "
                rf"distribution's rclpy \(it came with Iron\); use one of "
                rf"\['system_default', '{humble[policy][1]}', '{humble[policy][2]}'\]$"
            ),
        ):
            camera.resolve({name: "Best_Available"}, humble)
    with pytest.raises(SettingsError, match=r"must be one of \['system_default', 'reliable', "):
        camera.resolve({"qos_overrides./cam/image_raw.subscription.reliability": "x"}, humble)
    # The installed (Jazzy) rclpy has it: accepted by default, and rclpy builds the profile.
    assert available_policy_choices() == POLICY_CHOICES
    resolved = camera.resolve(
        {
            "qos_overrides./cam/image_raw.subscription.reliability": "best_available",
            "qos_overrides./cam/image_raw.subscription.durability": "BEST_AVAILABLE",
        }
    )
    assert (resolved.reliability, resolved.durability) == ("best_available", "best_available")
    profile = qos_profile(resolved)
    assert profile.reliability == ReliabilityPolicy.BEST_AVAILABLE
    assert profile.durability == DurabilityPolicy.BEST_AVAILABLE


def test_a_params_file_rcl_misreads_is_named_at_start_up(tmp_path):
    """rcl starts with a trailing `name: {}` (the name gets no value); the node says so."""
    misread = tmp_path / "misread.yaml"
    misread.write_text("/**:\n  ros__parameters:\n    conf_threshold: 0.3\n    classes: {}\n")
    result = subprocess.run(
        [*_node_command(), "--params-file", str(misread), "-p", "weights:=''"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert f"params file {misread}, line 4: 'classes' is an empty mapping" in output, output
    assert "rcl read it, so check what the node got" in output, output
