"""`max_detections` through the Detector backends, create_detector, predict, eval and bag run."""

from __future__ import annotations

import argparse
import inspect
import json

import numpy as np
import pytest

from togethernet_ros.cli import build_parser, main
from togethernet_ros.inference import create_detector
from togethernet_ros.inference.detector import DEFAULT_MAX_DETECTIONS

from .conftest import bag_run_settings, scene

# Every anchor passes (score >= 0) and none is suppressed (IoU > 1 never holds): at 256x256 an
# image has 1344 candidates, far more than the default cap.
EVERY_ANCHOR = {"conf_threshold": 0.0, "nms_threshold": 1.0}


def test_the_default_cap_is_300_for_every_way_to_build_a_detector():
    from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector
    from togethernet_ros.inference.torch_detector import TorchDetector

    assert DEFAULT_MAX_DETECTIONS == 300
    for build in (create_detector, TorchDetector, OnnxRuntimeDetector):
        assert inspect.signature(build).parameters["max_detections"].default == 300


@pytest.fixture(scope="module")
def torch_detector(checkpoint_path):
    detector = create_detector(
        checkpoint_path, device="cpu", input_size=256, color_order="bgr", **EVERY_ANCHOR
    )
    yield detector
    detector.close()


def test_the_torch_detector_returns_at_most_300_boxes_by_default(torch_detector):
    image = scene(256, 256, seed=4)
    assert torch_detector.max_detections == 300
    (capped,) = torch_detector.detect([image])
    torch_detector.max_detections = None  # no cap
    try:
        (everything,) = torch_detector.detect([image])
    finally:
        torch_detector.max_detections = 300
    assert len(everything.detections) > 1000
    assert len(capped.detections) == 300
    kept = capped.detections
    # The highest scores of all, in the uncapped order.
    np.testing.assert_array_equal(kept.scores, everything.detections.scores[:300])
    np.testing.assert_array_equal(kept.boxes, everything.detections.boxes[:300])
    np.testing.assert_array_equal(kept.class_ids, everything.detections.class_ids[:300])


def test_the_cap_changes_at_run_time_and_refuses_invalid_values(torch_detector):
    image = scene(256, 256, seed=5)
    try:
        torch_detector.max_detections = 7
        (found,) = torch_detector.detect([image])
        assert len(found.detections) == 7
        for bad in (0, -1, 1.5):
            with pytest.raises(ValueError, match=f"max_detections must be .*got {bad}"):
                torch_detector.max_detections = bad
        assert torch_detector.max_detections == 7  # a refused value leaves the cap as it was
    finally:
        torch_detector.max_detections = 300


def test_the_onnx_runtime_detector_applies_the_cap(onnx_pair):
    from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector

    with OnnxRuntimeDetector(onnx_pair, max_detections=12, **EVERY_ANCHOR) as detector:
        assert detector.max_detections == 12
        (found,) = detector.detect([scene(256, 256, seed=6)])
        assert len(found.detections) == 12
    with OnnxRuntimeDetector(onnx_pair, **EVERY_ANCHOR) as detector:
        assert detector.max_detections == 300


def test_create_detector_refuses_a_bad_cap_before_loading_anything(tmp_path):
    missing = tmp_path / "no-such-weights.pth"  # would fail as "not found" if loaded first
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"max_detections must be >= 1.*got {bad}"):
            create_detector(missing, max_detections=bad)
    with pytest.raises(ValueError, match="max_detections must be an integer"):
        create_detector(missing, max_detections="many")


def _predict_args(*options: str) -> argparse.Namespace:
    argv = ["predict", "--source", "in", "--output", "out", *options]
    return build_parser(argv).parse_args(argv)


def test_predict_parses_max_detections():
    assert _predict_args().max_detections == 300
    assert _predict_args("--max-detections", "25").max_detections == 25
    assert _predict_args("--max-detections", "none").max_detections is None
    assert _predict_args("--max-detections", "None").max_detections is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "must be >= 1 or 'none' (no cap), got 0"),
        ("-2", "must be >= 1 or 'none' (no cap), got -2"),
        ("lots", "expected a whole number >= 1 or 'none' (no cap), got 'lots'"),
    ],
)
def test_predict_refuses_a_bad_max_detections(text, message, capsys):
    with pytest.raises(SystemExit) as stop:
        _predict_args("--max-detections", text)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "--max-detections" in error and message in error


def test_predict_writes_at_most_max_detections_per_image(tmp_path, checkpoint_path):
    import cv2

    source = tmp_path / "in"
    source.mkdir()
    for seed in (1, 2):
        cv2.imwrite(str(source / f"{seed}.png"), scene(256, 256, seed=seed))
    argv = ["predict", "--weights", str(checkpoint_path), "--source", str(source)]
    argv += ["--output", str(tmp_path / "out"), "--device", "cpu", "--input-size", "256"]
    argv += ["--no-dehazed", "--no-annotated", "--conf", "0", "--nms", "1"]
    assert main([*argv, "--max-detections", "4"]) == 0
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert written["max_detections"] == 4
    assert [len(image["detections"]) for image in written["images"]] == [4, 4]


def test_eval_runs_the_detector_without_a_cap(checkpoint_path):
    # mAP is computed over every detection (as get_map.py): a cap would change the results.
    from togethernet_ros.evaluation.eval_command import open_detector

    argv = ["eval", "--weights", str(checkpoint_path), "--device", "cpu", "--input-size", "256"]
    detector = open_detector(build_parser(argv).parse_args(argv))
    try:
        assert detector.max_detections is None
    finally:
        detector.close()


def test_bag_run_takes_max_detections_from_the_node_parameters(tmp_path, checkpoint_path):
    from togethernet_ros.bag.detector_options import (
        checked_max_detections,
        create_detector_from_settings,
    )

    settings = bag_run_settings
    assert settings()["max_detections"] == 300  # config/detect.yaml, as the node
    params = tmp_path / "params.yaml"
    params.write_text("detector:\n  ros__parameters:\n    max_detections: 40\n")
    assert settings("--params-file", str(params))["max_detections"] == 40
    chosen = settings("--params-file", str(params), "--max-detections", "9")
    assert chosen["max_detections"] == 9  # the command line wins
    chosen.update(weights=str(checkpoint_path), device="cpu", input_size=(256, 256))
    detector = create_detector_from_settings(chosen)
    try:
        # As the node: the cap follows the class filter (OfflinePipeline), not the detector.
        assert detector.max_detections is None
    finally:
        detector.close()
    assert checked_max_detections(chosen["max_detections"]) == 9
    with pytest.raises(ValueError, match="parameter 'max_detections' must be an integer >= 1"):
        checked_max_detections(0)


def test_the_offline_pipeline_caps_after_the_class_filter():
    from support.stand_in_detectors import CrowdDetector

    from togethernet_ros.bag.bag_reader import ImageFrame
    from togethernet_ros.bag.offline_pipeline import OfflinePipeline

    def classes_of(**options) -> list[int]:
        pipeline = OfflinePipeline(
            CrowdDetector(cars=350, conf_threshold=0.3), max_batch_size=1, restore=False,
            tracking=False, **options,
        )  # fmt: skip
        image = np.zeros((96, 128, 3), np.uint8)
        frame = ImageFrame("/cam/image_raw", "sensor_msgs/msg/Image", 1, 1, "cam", image)
        (result,) = list(pipeline.push(frame)) + list(pipeline.finish())
        return result.detections.class_ids.tolist()

    car = 2
    assert classes_of(class_filter=frozenset({"person"}), max_detections=300) == [0]
    assert classes_of(max_detections=300) == [car] * 300
    assert classes_of(max_detections=None) == [car] * 350 + [0]
