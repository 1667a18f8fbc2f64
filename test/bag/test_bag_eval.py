"""`bag eval` on a real `bag run` output with ground truth from a topic and from VOC files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from togethernet_ros.bag.bag_eval import evaluate_camera, load_bag_detections
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message
from togethernet_ros.bag.frame_consistency import frame_consistency
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.cli import main
from togethernet_ros.training.voc_xml import write_voc_xml

from .bag_samples import START_NS, scene
from .blob_detector import BlobDetector

NAMES = BlobDetector.class_names
FRAMES = 10


def _truth_box(index: int) -> list[float]:
    return [8 + 4 * index, 20, 41 + 4 * index, 71]


def _bag_with_ground_truth(path, truth_ids=(5,)):
    """A camera and its ground truth: one box per frame, or one per id, side by side."""
    typestore = create_typestore()
    with BagWriter(path, typestore=typestore) as writer:
        for index in range(FRAMES):
            stamp = START_NS + index * 100_000_000
            header = make_header(typestore, stamp, "cam")
            writer.write(
                "/cam/image_raw",
                IMAGE_TYPE,
                stamp,
                encode_image_message(typestore, scene(index), header),
            )
            boxes = np.array([_truth_box(index)] * len(truth_ids)) + np.array(
                [[48 * k, 0, 48 * k, 0] for k in range(len(truth_ids))]
            )
            count = len(truth_ids)
            truth = detections_to_message(
                typestore, header, boxes, [1.0] * count, [0] * count, NAMES, np.array(truth_ids)
            )
            writer.write("/cam/ground_truth", DETECTION2D_ARRAY, stamp, truth)
    return path


@pytest.fixture
def evaluated_bag(tmp_path):
    source = _bag_with_ground_truth(tmp_path / "in")
    output = tmp_path / "out"
    run_bag(source, output, BlobDetector(), BagRunOptions(dehazed=False))
    return output


def test_eval_with_ground_truth_topic(evaluated_bag):
    loaded = load_bag_detections(evaluated_bag, None, ["/cam/ground_truth"])
    assert loaded.class_names == NAMES  # from label_info
    result = evaluate_camera(loaded.cameras["/cam"], NAMES, loaded.ground_truth["/cam"])
    raw, smoothed = result["raw"], result["smoothed"]
    assert raw["voc"]["mAP"] == pytest.approx(1.0)
    # Tracks are confirmed on the 3rd frame: 8 of 10 boxes found, all correct.
    assert smoothed["voc"]["mAP"] == pytest.approx(0.8)
    assert raw["stability"]["recall"] == pytest.approx(1.0)
    assert smoothed["stability"]["id_switches"] == 0
    assert raw["stability"]["id_switches"] is None
    assert raw["consistency"]["chains"] == 1 and raw["consistency"]["flicker_rate"] == 0.0


def test_eval_cli_with_voc_ground_truth(evaluated_bag, tmp_path, capsys):
    voc = tmp_path / "voc"
    for index in range(FRAMES):
        write_voc_xml(
            voc / f"{index:06d}.xml",
            "",
            128,
            96,
            np.array([_truth_box(index)]),
            np.array([0]),
            NAMES,
        )
    report = tmp_path / "metrics.json"
    code = main(["bag", "eval", str(evaluated_bag), "--voc-dir", str(voc), "--output", str(report)])
    assert code == 0
    metrics = json.loads(report.read_text())["cameras"]["/cam"]
    assert metrics["raw"]["voc"]["mAP"] == pytest.approx(1.0)
    assert metrics["raw"]["voc"]["num_gt"]["person"] == FRAMES
    assert "/cam" in capsys.readouterr().out


def test_eval_without_ground_truth_and_missing_gt_topic(evaluated_bag, capsys):
    assert main(["bag", "eval", str(evaluated_bag)]) == 0
    assert "no ground truth given" in capsys.readouterr().out
    assert main(["bag", "eval", str(evaluated_bag), "--gt-topic", "/cam/nope"]) == 1
    assert "ground-truth topic /cam/nope is missing" in capsys.readouterr().err


def test_eval_of_a_bag_without_detections_or_not_a_bag_says_so(camera_bag, tmp_path, capsys):
    # An input-only bag (cameras, no detector outputs): rosbags would read every topic when
    # asked for none, and the images used to crash the detection decoder.
    inputs_only = camera_bag(frames=2)
    with pytest.raises(BagError, match="has no <ns>/detections or <ns>/detections_raw topics"):
        load_bag_detections(inputs_only, None)
    assert main(["bag", "eval", str(inputs_only)]) == 1
    assert "togethernet bag run" in capsys.readouterr().err
    not_a_bag = tmp_path / "weights.pt"
    not_a_bag.write_bytes(b"\x00" * 64)
    with pytest.raises(BagError, match="is not a readable rosbag2 bag"):
        load_bag_detections(not_a_bag, None)


def test_consistency_separates_shaky_from_steady_boxes():
    rng = np.random.default_rng(0)
    steady = [np.array([[10 + 3 * t, 10, 50 + 3 * t, 60]], float) for t in range(30)]
    shaky = [b + rng.normal(0, 2.0, 4) for b in steady]
    flicker = [b if t % 3 else np.zeros((0, 4)) for t, b in enumerate(steady)]
    assert frame_consistency(steady).centre_jitter < 1e-9
    assert frame_consistency(shaky).centre_jitter > 0.02
    report = frame_consistency(flicker)
    assert report.flicker_rate > 0.4 and report.chains == 10


def test_ground_truth_ids_that_repeat_within_a_frame_are_linked_by_iou(tmp_path, capsys):
    # Some tools fill Detection2D.id with the class index: two people in a frame share id 0.
    source = _bag_with_ground_truth(tmp_path / "in", truth_ids=(0, 0))
    output = tmp_path / "out"
    run_bag(source, output, BlobDetector(), BagRunOptions(dehazed=False))
    report = tmp_path / "metrics.json"
    arguments = ["bag", "eval", str(output), "--gt-topic", "/cam/ground_truth"]
    assert main([*arguments, "--output", str(report)]) == 0
    metrics = json.loads(report.read_text())["cameras"]["/cam"]["smoothed"]
    assert metrics["stability"]["id_switches"] is None
    assert metrics["stability"]["num_trajectories"] == 2
    assert "repeat within a frame" in metrics["ground_truth_ids_ignored"]
    assert "/cam (smoothed): ground-truth ids repeat within a frame" in capsys.readouterr().err


def test_bag_eval_refuses_its_own_option_mistakes_with_status_2(evaluated_bag, tmp_path, capsys):
    command = ["bag", "eval", str(evaluated_bag)]
    empty = tmp_path / "empty_voc"
    empty.mkdir()
    voc = tmp_path / "voc"
    write_voc_xml(voc / "000000.xml", "", 128, 96, np.array([_truth_box(0)]), [0], NAMES)
    for arguments, message in [
        # The metrics are written after the whole bag: a folder at --output failed only then,
        # naming a temporary file.
        (["--output", str(tmp_path)], f"--output {tmp_path} is a folder; give a file name"),
        (["--voc-dir", str(tmp_path / "nowhere")], "is not a folder"),
        (["--voc-dir", str(empty)], f"--voc-dir {empty} holds no VOC .xml files"),
        (["--voc-dir", str(voc), "--voc-camera", "/rear"], "--voc-camera must name one of"),
    ]:
        assert main([*command, *arguments]) == 2, arguments
        assert message in capsys.readouterr().err
