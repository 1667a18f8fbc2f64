"""`bag eval`: ground truth whose stamps are a little off the camera frames' stamps.

Labels re-stamped through float seconds (``sec + nanosec * 1e-9``: ~0.2 µs steps at today's
epoch) or exported in microseconds no longer equal the frames' nanosecond stamps. Each such
label is paired with the nearest frame within ``--stamp-tolerance-ms``; what
finds no frame is reported with its distance to the nearest one. By default stamps must be
equal, as before.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.cli_refusal import refused

from togethernet_ros.bag.bag_eval import CameraDetections, align_truth_stamps
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import DecodedDetections, detections_to_message
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.cli import main
from togethernet_ros.training.voc_xml import write_voc_xml

from .bag_samples import START_NS, scene
from .blob_detector import BlobDetector

NAMES = BlobDetector.class_names
PERIOD_NS = 100_000_000
FRAMES = 5


def _box(index: int) -> np.ndarray:
    # Far apart from frame to frame: a label paired with the wrong frame never matches.
    return np.array([[4.0 + 20.0 * index, 10.0, 24.0 + 20.0 * index, 40.0]])


def _stamp(index: int) -> int:
    # Sub-microsecond parts, as camera drivers stamp.
    return START_NS + index * PERIOD_NS + 123_457


def _recording(path, truth_offset_ns: int):
    """Frames detected exactly; ground truth on /cam/ground_truth stamped ``offset`` off."""
    typestore = create_typestore()
    with BagWriter(path, typestore=typestore) as writer:
        for index in range(FRAMES):
            log_time = START_NS + (index + 1) * PERIOD_NS
            header = make_header(typestore, _stamp(index), "cam")
            image = encode_image_message(typestore, scene(index), header)
            writer.write("/cam/image_raw", IMAGE_TYPE, log_time, image)
            for topic in ("detections_raw", "detections"):
                message = detections_to_message(
                    typestore, header, _box(index), [0.9], [0], NAMES, np.array([3])
                )
                writer.write(f"/cam/{topic}", DETECTION2D_ARRAY, log_time, message)
            label_header = make_header(typestore, _stamp(index) + truth_offset_ns, "cam")
            truth = detections_to_message(typestore, label_header, _box(index), [1.0], [0], NAMES)
            writer.write("/cam/ground_truth", DETECTION2D_ARRAY, log_time, truth)
    return path


def _eval(bag, tmp_path, capsys, *options):
    report = tmp_path / "metrics.json"
    assert main(["bag", "eval", str(bag), *options, "--output", str(report)]) == 0
    captured = capsys.readouterr()
    return json.loads(report.read_text()), captured.err


def test_labels_restamped_through_float_seconds_still_label_their_frames(tmp_path, capsys):
    # What float seconds make of the stamps: a few hundred ns off.
    seconds = _stamp(0) * 1e-9
    offset = round(seconds * 1e9) - _stamp(0)
    assert offset != 0
    bag = _recording(tmp_path / "bag", offset)
    payload, said = _eval(
        bag, tmp_path, capsys, "--gt-topic", "/cam/ground_truth", "--stamp-tolerance-ms", "1"
    )
    raw = payload["cameras"]["/cam"]["raw"]
    assert raw["voc"]["mAP"] == 1.0
    assert raw["voc"]["num_gt"]["person"] == FRAMES
    assert raw["frames_without_detections_message"] == 0
    assert raw["frames_without_ground_truth"] == 0
    stamps = payload["ground_truth_stamps"]["/cam"]
    assert stamps["exact"] == 0 and stamps["within_tolerance"] == FRAMES
    assert stamps["unmatched"] == 0
    assert stamps["max_offset_ms"] == pytest.approx(abs(offset) / 1e6)
    assert f"{FRAMES} stamps paired with the nearest frame" in said


def test_exact_stamps_by_default_and_unmatched_labels_say_how_far_off(tmp_path, capsys):
    bag = _recording(tmp_path / "bag", 3_000)  # 3 µs late
    payload, said = _eval(bag, tmp_path, capsys, "--gt-topic", "/cam/ground_truth")
    assert payload["cameras"]["/cam"]["raw"]["voc"]["mAP"] == 0.0  # every label missed
    stamps = payload["ground_truth_stamps"]["/cam"]
    assert stamps["unmatched"] == FRAMES and stamps["within_tolerance"] == 0
    assert stamps["unmatched_stamps"][0] == _stamp(0) + 3_000
    assert stamps["unmatched_nearest_frame_offset_ms"] == [-0.003] * FRAMES
    assert f"{FRAMES} stamps match no frame of the camera within 0 ms" in said
    assert "nearest frame -0.003, -0.003" in said and "--stamp-tolerance-ms" in said


def test_a_label_half_a_frame_off_is_not_given_to_a_neighbouring_frame(tmp_path, capsys):
    bag = _recording(tmp_path / "bag", PERIOD_NS // 2)
    payload, said = _eval(
        bag, tmp_path, capsys, "--gt-topic", "/cam/ground_truth", "--stamp-tolerance-ms", "1"
    )
    assert payload["ground_truth_stamps"]["/cam"]["unmatched"] == FRAMES
    assert payload["cameras"]["/cam"]["raw"]["voc"]["mAP"] == 0.0
    assert "match no frame of the camera within 1 ms" in said


def test_voc_files_named_by_microsecond_stamps_label_their_frames(tmp_path, capsys):
    bag = _recording(tmp_path / "bag", 0)
    labels = tmp_path / "labels"
    labels.mkdir()
    for index in range(FRAMES):
        # An exporter that keeps microseconds: the name is the stamp rounded to µs, in ns.
        name = round(_stamp(index), -3)
        write_voc_xml(
            labels / f"{name}.xml", "", 128, 96, _box(index), np.zeros(1, np.int64), NAMES
        )
    options = ("--voc-dir", str(labels), "--voc-key", "stamp", "--stamp-tolerance-ms", "0.5")
    payload, _ = _eval(bag, tmp_path, capsys, *options)
    assert payload["cameras"]["/cam"]["raw"]["voc"]["mAP"] == 1.0
    assert payload["ground_truth_stamps"]["/cam"]["within_tolerance"] == FRAMES


def _labels(stamp: int) -> DecodedDetections:
    return DecodedDetections(
        stamp, "", np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    )


def test_each_frame_takes_the_nearest_label_and_an_exact_one_first():
    camera = CameraDetections(raw={(1000, 0): _labels(1000), (2000, 0): _labels(2000)})
    truth = {
        (1000, 0): _labels(1000),  # exact: frame 1000 is taken
        (1010, 0): _labels(1010),  # nearest frame 1000, taken: left unmatched
        (1990, 0): _labels(1990),  # 10 ns from frame 2000
        (2005, 0): _labels(2005),  # 5 ns from frame 2000: the nearest wins it
    }
    aligned, report = align_truth_stamps(camera, truth, None, tolerance_ns=20)
    assert set(aligned) == {(1000, 0), (1010, 0), (1990, 0), (2000, 0)}
    assert aligned[(2000, 0)] is truth[(2005, 0)]
    assert (report.exact, report.within_tolerance, report.unmatched) == (1, 1, 2)
    assert report.max_offset_ns == 5
    assert report.unmatched_stamps == [1010, 1990]
    assert report.nearest_offset_ns == [-10, 10]
    # Image-only frames (no detections message) take labels too.
    aligned, report = align_truth_stamps(camera, {(2990, 0): _labels(2990)}, {3000: 1}, 20)
    assert set(aligned) == {(3000, 0)}
    with pytest.raises(ValueError, match="tolerance"):
        align_truth_stamps(camera, truth, None, -1)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1ms"])
def test_a_tolerance_that_is_not_a_finite_number_of_ms_is_refused(tmp_path, capsys, value):
    bag = _recording(tmp_path / "bag", 0)
    refused(capsys, ["bag", "eval", str(bag), "--stamp-tolerance-ms", value], "stamp-tolerance-ms")
