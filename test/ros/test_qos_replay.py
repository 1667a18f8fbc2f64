"""`bag replay` takes its QoS from what the node applies, qos_overrides included (real DDS).

The node is the real detector_node with the blob stand-in detector (test/bag/blob_node.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bag.bag_samples import write_camera_bag

from togethernet_ros.bag.image_codec import IMAGE_TYPE
from togethernet_ros.ros.bag_replay import ReplayError, ReplayOptions, _node_qos, run_replay
from togethernet_ros.ros.qos_settings import QosSettings

pytestmark = pytest.mark.ros

BLOB_NODE = [sys.executable, str(Path(__file__).parents[1] / "bag" / "blob_node.py")]
FRONT = "/cam_front/image_raw"
# Durability and reliability the harness must follow: a volatile publisher never reaches a
# transient-local subscription, a reliable subscription never hears a best-effort publisher.
OVERRIDES = """\
/**:
  ros__parameters:
    qos_overrides:
      /cam_front/image_raw:
        subscription: {durability: transient_local, deadline: 5000000000}
      /cam_front/detections:
        publisher: {reliability: best_effort}
      /cam_front/label_info:
        publisher: {durability: volatile}
"""


def test_the_harness_follows_the_nodes_overridden_qos(tmp_path):
    params = tmp_path / "qos.yaml"
    params.write_text(OVERRIDES)
    qos = _node_qos(params, {"input_reliability": "reliable"}, [FRONT])
    assert qos.inputs[FRONT] == QosSettings(
        reliability="reliable", depth=1, durability="transient_local", deadline=5 * 10**9
    )
    # Its publisher offers what the subscription asks (a deadline no longer than 5 s).
    assert qos.camera_publisher(FRONT) == QosSettings(
        reliability="reliable", depth=10, durability="transient_local", deadline=5 * 10**9
    )
    assert qos.output_subscription("/cam_front/detections").reliability == "best_effort"
    assert qos.output_subscription("/cam_front/label_info").durability == "volatile"
    assert qos.output_subscription("/cam_front/detections_raw").reliability == "reliable"
    params.write_text(OVERRIDES.replace("best_effort", "best_efort"))
    with pytest.raises(
        ReplayError,
        match=r"qos_overrides\./cam_front/detections\.publisher\.reliability' must be one of",
    ):
        _node_qos(params, {}, [FRONT])


def test_a_replay_of_a_node_with_qos_overrides_measures_every_frame(tmp_path):
    params = tmp_path / "qos.yaml"
    params.write_text(OVERRIDES)
    bag = write_camera_bag(tmp_path / "bag", frames=4, topics=((FRONT, IMAGE_TYPE),))
    options = ReplayOptions(
        rate=0.0,
        params_file=params,
        node_command=BLOB_NODE,
        node_parameters={"max_batch_wait_ms": 0.0},
        startup_timeout_s=60,
        accept_timeout_s=30.0,
        drain_timeout_s=30.0,
    )
    result = run_replay(bag, options)
    overall = result.trials[0].metrics["overall"]
    assert (overall["sent"], overall["received"]) == (4, 4), result.node_log_tail
