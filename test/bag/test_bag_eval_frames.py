"""`bag eval`: which detections message is scored against which ground truth.

Recordings are written here as the node or `bag run` leaves them (camera frames plus
``<ns>/detections`` and ``<ns>/detections_raw`` with the frames' headers), so each test states
exactly which frame was detected, dropped or labelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from togethernet_ros.bag.bag_eval import evaluate_camera, load_bag_detections
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.cli import main
from togethernet_ros.training.voc_xml import write_voc_xml

from .bag_samples import START_NS, scene
from .blob_detector import BlobDetector

NAMES = BlobDetector.class_names
PERIOD_NS = 100_000_000


def _box(index: int) -> list[float]:
    # Far apart from frame to frame: ground truth paired with the wrong frame never matches.
    return [4.0 + 20.0 * index, 10.0, 24.0 + 20.0 * index, 40.0]


@dataclass
class Frame:
    """One camera frame of a recording and what the detector published for it."""

    index: int  # stamp START_NS + index * PERIOD_NS; also the scene drawn
    detected: bool = True  # False: an empty Detection2DArray
    published: bool = True  # False: no detections message at all (dropped or bad frame)
    truth: bool = True  # a ground-truth message on /cam/ground_truth
    labels: list[str] = field(default_factory=lambda: ["person"])


def _write_recording(path, frames: list[Frame], camera: str = "/cam", inputs: bool = True):
    typestore = create_typestore()
    log_time = START_NS
    with BagWriter(path, typestore=typestore) as writer:
        for frame in frames:
            stamp = START_NS + frame.index * PERIOD_NS
            log_time += PERIOD_NS  # a loop repeats stamps, never log times
            header = make_header(typestore, stamp, camera.strip("/"))
            if inputs:
                image = encode_image_message(typestore, scene(frame.index), header)
                writer.write(f"{camera}/image_raw", IMAGE_TYPE, log_time, image)
            box = np.array([_box(frame.index)])
            if frame.truth:
                ids = [NAMES.index(label) if label in NAMES else 0 for label in frame.labels]
                truth = detections_to_message(
                    typestore, header, np.repeat(box, len(ids), 0), [1.0] * len(ids), ids, NAMES
                )
                if any(label not in NAMES for label in frame.labels):
                    for detection, label in zip(truth.detections, frame.labels, strict=True):
                        detection.results[0].hypothesis.class_id = label
                writer.write(f"{camera}/ground_truth", DETECTION2D_ARRAY, log_time, truth)
            if not frame.published:
                continue
            found = box if frame.detected else np.zeros((0, 4))
            count = len(found)
            for topic, tracks in (("detections_raw", None), ("detections", np.array([7] * count))):
                message = detections_to_message(
                    typestore, header, found, [0.9] * count, [0] * count, NAMES, tracks
                )
                writer.write(f"{camera}/{topic}", DETECTION2D_ARRAY, log_time, message)
    return path


def _voc_files(directory, frames: list[int], name=lambda index: f"{index:06d}", difficult=()):
    for index in frames:
        boxes = [_box(index)] + ([[100.0, 60.0, 110.0, 70.0]] if index in difficult else [])
        write_voc_xml(
            directory / f"{name(index)}.xml",
            "",
            128,
            96,
            np.array(boxes),
            np.zeros(len(boxes), np.int64),
            NAMES,
            np.array([False] + [True] * (len(boxes) - 1)),
        )
    return directory


def _eval(bag, *options, tmp_path, capsys):
    report = tmp_path / "metrics.json"
    assert main(["bag", "eval", str(bag), *options, "--output", str(report)]) == 0
    captured = capsys.readouterr()
    return json.loads(report.read_text())["cameras"]["/cam"], captured.out + captured.err


# A looping recording: stamps 0..4 twice. The second pass lost the outputs of frames 1 and 3
# (the node dropped them), the first pass found everything.
LOOP = [Frame(i) for i in range(5)] + [Frame(i, published=i not in (1, 3)) for i in range(5)]


def test_a_looping_recording_scores_every_frame_and_says_so(tmp_path, capsys):
    """Every message is a frame: keyed by stamp alone, the second pass overwrote the first.

    That scored 5 frames instead of 10 and hid both dropped frames behind the first pass's
    detections (mAP 1.0, no frame without a detections message), without a word.
    """
    bag = _write_recording(tmp_path / "loop", LOOP)
    loaded = load_bag_detections(bag, None, ["/cam/ground_truth"])
    result = evaluate_camera(loaded.cameras["/cam"], NAMES, loaded.ground_truth["/cam"])
    raw = result["raw"]
    assert raw["frames"] == 8
    assert raw["voc"]["num_gt"]["person"] == 10
    assert raw["frames_without_detections_message"] == 2
    assert raw["voc"]["mAP"] == pytest.approx(0.8)  # 8 of 10 found, none wrong
    assert raw["repeated_stamp_frames"] == 3
    metrics, said = _eval(bag, "--gt-topic", "/cam/ground_truth", tmp_path=tmp_path, capsys=capsys)
    assert metrics["raw"]["voc"]["mAP"] == pytest.approx(0.8)
    assert "repeat an earlier header stamp" in said
    assert "warning: ground truth of /cam: 2 of 10 frames have no detections message" in said


def test_a_looping_recording_pairs_voc_ground_truth_with_every_pass(tmp_path, capsys):
    # VOC files name a stamp (or a frame index) once; they label that frame in every pass.
    bag = _write_recording(tmp_path / "loop", LOOP)
    by_stamp = _voc_files(tmp_path / "by_stamp", range(5), lambda i: str(START_NS + i * PERIOD_NS))
    by_index = _voc_files(tmp_path / "by_index", range(5))
    for options in (
        ("--voc-dir", str(by_stamp), "--voc-key", "stamp"),
        ("--voc-dir", str(by_index)),
    ):
        metrics, _ = _eval(bag, *options, tmp_path=tmp_path, capsys=capsys)
        assert metrics["raw"]["voc"]["num_gt"]["person"] == 10, options
        assert metrics["raw"]["voc"]["mAP"] == pytest.approx(0.8), options
        assert metrics["raw"]["frames_without_detections_message"] == 2


def test_a_looping_recording_with_track_ids_counts_no_switch_at_the_loop(tmp_path):
    # Ground-truth ids repeat in each pass; the node's tracks restart when the stamp goes back.
    # That is a new trajectory, not an id switch of the old one.
    frames = [Frame(i) for i in range(4)] * 2
    bag = _write_recording(tmp_path / "loop", frames)
    loaded = load_bag_detections(bag, None, ["/cam/ground_truth"])
    truth = loaded.ground_truth["/cam"]
    for decoded in truth.values():
        decoded.track_ids[:] = 3
    camera = loaded.cameras["/cam"]
    for key in [key for key in camera.smoothed if key[1] == 1]:  # (stamp, occurrence)
        camera.smoothed[key].track_ids[:] = 8  # the restarted track
    stability = evaluate_camera(camera, NAMES, truth)["smoothed"]["stability"]
    assert stability["id_switches"] == 0
    assert stability["num_trajectories"] == 2


def test_voc_frame_index_counts_the_camera_frames_not_the_detections_messages(tmp_path, capsys):
    """File 000003.xml labels the 4th camera frame, also when an earlier frame has no output.

    Indices were taken from the detections messages' stamps: after a frame without one (dropped
    by the node, a bad frame skipped by `bag run`) every later file labelled the next frame.
    """
    frames = [Frame(i, published=i != 2) for i in range(6)]
    bag = _write_recording(tmp_path / "drop", frames)
    voc = _voc_files(tmp_path / "voc", range(6))
    metrics, said = _eval(bag, "--voc-dir", str(voc), tmp_path=tmp_path, capsys=capsys)
    raw = metrics["raw"]
    assert raw["voc"]["num_gt"]["person"] == 6
    assert raw["voc"]["mAP"] == pytest.approx(5 / 6)
    assert raw["frames_without_detections_message"] == 1
    assert "beyond" not in said
    # Without the camera frames in the bag the messages are all there is to count: said so.
    bare = _write_recording(tmp_path / "bare", frames, inputs=False)
    metrics, said = _eval(bare, "--voc-dir", str(voc), tmp_path=tmp_path, capsys=capsys)
    assert "no camera frames of /cam in the bag" in said


def test_voc_difficult_objects_are_neither_required_nor_penalised(tmp_path, capsys):
    # As `togethernet eval` (and the published get_map.py) scores them. They were read as
    # ordinary objects: an undetected difficult object cost recall.
    bag = _write_recording(tmp_path / "bag", [Frame(i) for i in range(4)])
    voc = _voc_files(tmp_path / "voc", range(4), difficult={1, 2})
    metrics, _ = _eval(bag, "--voc-dir", str(voc), tmp_path=tmp_path, capsys=capsys)
    assert metrics["raw"]["voc"]["num_gt"]["person"] == 4
    assert metrics["raw"]["voc"]["mAP"] == pytest.approx(1.0)


def test_eval_refuses_detections_of_classes_it_was_not_given(tmp_path, capsys):
    # `--classes` without the class the detector published (or a label_info-less recording of
    # another model): the detections cannot be scored. It ended in a traceback.
    bag = _write_recording(tmp_path / "bag", [Frame(i) for i in range(3)])
    voc = _voc_files(tmp_path / "voc", range(3))
    command = ["bag", "eval", str(bag), "--voc-dir", str(voc), "--classes", "car,bus"]
    assert main(command) == 1
    error = capsys.readouterr().err
    assert "/cam" in error and "'person'" in error and "--classes" in error
    # Without ground truth nothing is scored by class: the consistency figures still come.
    assert main(["bag", "eval", str(bag), "--classes", "car,bus"]) == 0


def test_ground_truth_objects_of_unknown_classes_are_reported(tmp_path, capsys):
    # A ground-truth topic naming a class the model does not have: those objects cannot be
    # scored and are left out, as VOC files' unknown classes are, but not silently.
    frames = [Frame(i, labels=["person", "pedestrian"]) for i in range(3)]
    bag = _write_recording(tmp_path / "bag", frames)
    metrics, said = _eval(bag, "--gt-topic", "/cam/ground_truth", tmp_path=tmp_path, capsys=capsys)
    assert metrics["raw"]["voc"]["num_gt"]["person"] == 3
    assert "3 objects of classes ['pedestrian']" in said


def test_frames_are_paired_by_camera_stamp_and_count_empty_ones(tmp_path):
    """What was right already: kept here so that it stays right.

    Empty arrays are frames with no detections (false negatives, not dropped frames); two
    cameras with the same stamps are scored apart; track ids play no part in AP; detections of
    frames without ground truth are not scored; numeric class ids (``class_id_as_index``) read as
    the class of that index.
    """
    typestore = create_typestore()
    path = tmp_path / "two"
    with BagWriter(path, typestore=typestore) as writer:
        for index in range(4):
            stamp = START_NS + index * PERIOD_NS
            for camera, names in (("/front", NAMES), ("/rear", ())):  # rear: class ids as index
                header = make_header(typestore, stamp, camera[1:])
                box = np.array([_box(index if camera == "/front" else 3 - index)])
                found = box if index != 1 else np.zeros((0, 4))
                n = len(found)
                message = detections_to_message(
                    typestore, header, found, [0.9] * n, [0] * n, names, np.array([index] * n)
                )
                writer.write(f"{camera}/detections", DETECTION2D_ARRAY, stamp, message)
                if index < 3:
                    truth = detections_to_message(typestore, header, box, [1.0], [0], NAMES)
                    writer.write(f"{camera}/ground_truth", DETECTION2D_ARRAY, stamp, truth)
    loaded = load_bag_detections(path, NAMES, ["/front/ground_truth", "/rear/ground_truth"])
    for camera in ("/front", "/rear"):
        result = evaluate_camera(loaded.cameras[camera], NAMES, loaded.ground_truth[camera])
        smoothed = result["smoothed"]
        assert smoothed["frames"] == 4
        assert smoothed["voc"]["num_gt"]["person"] == 3
        assert smoothed["frames_without_detections_message"] == 0
        assert smoothed["voc"]["mAP"] == pytest.approx(2 / 3)  # frame 1 empty: missed


def test_eval_reads_what_bag_run_writes_for_a_relative_camera_topic(tmp_path):
    # `bag run` gives a relative input ("image") relative outputs ("detections"), as the node
    # does; `bag eval` looked only for "<ns>/detections" and refused that bag.
    from togethernet_ros.bag.bag_run import BagRunOptions, run_bag

    typestore = create_typestore()
    source = tmp_path / "in"
    with BagWriter(source, typestore=typestore) as writer:
        for index in range(3):
            stamp = START_NS + index * PERIOD_NS
            image = encode_image_message(
                typestore, scene(index), make_header(typestore, stamp, "c")
            )
            writer.write("image", IMAGE_TYPE, stamp, image)
    run_bag(source, tmp_path / "out", BlobDetector(), BagRunOptions(dehazed=False))
    loaded = load_bag_detections(tmp_path / "out", None)
    assert list(loaded.cameras) == [""]
    assert len(loaded.cameras[""].raw) == len(loaded.cameras[""].smoothed) == 3


def test_classes_are_read_as_eval_reads_them(tmp_path, capsys):
    # "person, car" (a space after the comma) made the second class " car", and a classes file
    # was taken as one class name: the bag's person detections then could not be scored.
    bag = _write_recording(tmp_path / "bag", [Frame(i) for i in range(3)])
    voc = _voc_files(tmp_path / "voc", range(3))
    listed = ", ".join(NAMES)
    metrics, _ = _eval(
        bag, "--voc-dir", str(voc), "--classes", listed, tmp_path=tmp_path, capsys=capsys
    )
    assert list(metrics["raw"]["voc"]["ap"]) == list(NAMES)
    assert metrics["raw"]["voc"]["mAP"] == pytest.approx(1.0)
    names_file = tmp_path / "classes.txt"
    names_file.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    by_file, _ = _eval(
        bag, "--voc-dir", str(voc), "--classes", str(names_file), tmp_path=tmp_path, capsys=capsys
    )
    assert by_file["raw"]["voc"] == metrics["raw"]["voc"]
    assert main(["bag", "eval", str(bag), "--classes", "person,person"]) == 2
    assert "--classes" in capsys.readouterr().err
