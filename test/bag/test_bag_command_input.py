"""The bag commands given unusual input: refused in one line before anything is lost."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from togethernet_ros.bag.bag_eval import load_bag_detections
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message
from togethernet_ros.bag.image_codec import make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.cli import main

from .bag_samples import START_NS
from .blob_detector import BlobDetector

NAMES = BlobDetector.class_names


def _fingerprint(path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_run_never_writes_over_or_into_its_input(camera_bag, tmp_path):
    source = camera_bag(frames=3)
    before = _fingerprint(source)
    [storage_file] = [p for p in source.iterdir() if p.suffix == ".mcap"]
    # --overwrite removes the output path first: the input folder, a folder holding it, or
    # the bag given by its .mcap file would all be deleted before they are read.
    for given, output in (
        (source, source),
        (storage_file, source),
        (source, tmp_path),
        (source, source / "out"),
    ):
        with pytest.raises(BagError, match="input bag"):
            run_bag(given, output, BlobDetector(), BagRunOptions(overwrite=True))
    assert _fingerprint(source) == before


def test_run_command_refuses_output_equal_to_input(camera_bag, capsys):
    source = camera_bag(frames=2)
    before = _fingerprint(source)
    code = main(
        [
            "bag",
            "run",
            str(source),
            "--output",
            str(source),
            "--overwrite",
            "--allow-untrained-weights",
            "--input-size",
            "128",
        ]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert f"--output {source} would replace the input bag" in error
    assert "Traceback" not in error
    assert _fingerprint(source) == before


def test_run_command_refuses_bad_counts_in_one_line(camera_bag, tmp_path, capsys):
    source = camera_bag(frames=2)
    output = str(tmp_path / "out")
    common = ["bag", "run", str(source), "--output", output, "--allow-untrained-weights"]
    assert main([*common, "--input-size", "128", "--max-batch-size", "0"]) == 2
    assert "parameter 'max_batch_size' must be >= 1, got 0" in capsys.readouterr().err
    # A params file's values get the node's checks too, named with the file.
    params = tmp_path / "params.yaml"
    for line, message in [
        ("weights: 5", "parameter 'weights' must be a string, got 5"),
        ("max_batch_size: x", "parameter 'max_batch_size' must be an integer, got 'x'"),
        ("max_batch_wait_ms: x", "parameter 'max_batch_wait_ms' must be a finite number"),
    ]:
        params.write_text(f"detector:\n  ros__parameters:\n    {line}\n")
        assert main([*common, "--input-size", "128", "--params-file", str(params)]) == 2
        assert f"params file {params}: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--max-frames", "0"])
    assert "argument --max-frames: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_replay_refuses_record_paths_that_lose_data(camera_bag, tmp_path, capsys):
    source = camera_bag(frames=2)
    earlier = camera_bag("earlier_recording", frames=1)
    before = _fingerprint(source), _fingerprint(earlier)
    # Refused before any node starts: the recorder replaces what is at --record.
    assert main(["bag", "replay", str(source), "--record", str(source)]) == 2
    assert "would replace the input bag" in capsys.readouterr().err
    assert main(["bag", "replay", str(source), "--record", str(earlier)]) == 2
    assert "exists already (use --overwrite)" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["bag", "replay", str(source), "--record", str(blocker / "rec")]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err
    assert main(["bag", "replay", str(source), "--report-dir", str(blocker)]) == 2
    assert f"--report-dir {blocker} is a file, not a folder" in capsys.readouterr().err
    assert (_fingerprint(source), _fingerprint(earlier)) == before
    # A params file the node could not read failed only after the replay had started.
    broken = tmp_path / "broken.yaml"
    broken.write_text("detector: [\n")
    for params, problem in [
        (tmp_path / "missing.yaml", "does not exist"),
        (tmp_path, "is a folder"),
        (broken, str(broken)),
    ]:
        assert main(["bag", "replay", str(source), "--params-file", str(params)]) == 2
        error = capsys.readouterr().err
        assert problem in error and "Traceback" not in error, error
    for option, value in (("--rate", "-1"), ("--max-frames", "0"), ("--startup-timeout", "0")):
        with pytest.raises(SystemExit):
            main(["bag", "replay", str(source), option, value])
        assert f"argument {option}" in capsys.readouterr().err


def _detections_bag(path, truth_topic: str, truth_offset_ns: int = 0, frames: int = 6):
    """/cam/detections plus a ground-truth topic with the same boxes (stamps shifted)."""
    typestore = create_typestore()
    with BagWriter(path, typestore=typestore) as writer:
        for index in range(frames):
            stamp = START_NS + index * 100_000_000
            boxes = np.array([[10.0 + index, 10.0, 50.0 + index, 60.0]])
            found = detections_to_message(
                typestore, make_header(typestore, stamp, "cam"), boxes, [0.9], [0], NAMES
            )
            writer.write("/cam/detections_raw", DETECTION2D_ARRAY, stamp, found)
            truth = detections_to_message(
                typestore,
                make_header(typestore, stamp + truth_offset_ns, "cam"),
                boxes,
                [1.0],
                [0],
                NAMES,
            )
            writer.write(truth_topic, DETECTION2D_ARRAY, stamp, truth)
    return path


def test_eval_refuses_ground_truth_of_no_camera(tmp_path, capsys):
    bag = _detections_bag(tmp_path / "bag", "/labels/boxes")
    with pytest.raises(BagError, match=r"ground-truth topic /labels/boxes .*\['/cam'\]"):
        load_bag_detections(bag, NAMES, ["/labels/boxes"])
    assert main(["bag", "eval", str(bag), "--gt-topic", "/labels/boxes"]) == 1
    assert "namespace /labels, which has no detections" in capsys.readouterr().err


def test_eval_warns_when_ground_truth_stamps_match_no_frame(tmp_path, capsys):
    matching = _detections_bag(tmp_path / "same", "/cam/ground_truth")
    assert main(["bag", "eval", str(matching), "--gt-topic", "/cam/ground_truth"]) == 0
    assert "warning" not in capsys.readouterr().err
    shifted = _detections_bag(tmp_path / "shifted", "/cam/ground_truth", truth_offset_ns=1000)
    assert main(["bag", "eval", str(shifted), "--gt-topic", "/cam/ground_truth"]) == 0
    error = capsys.readouterr().err
    assert "ground truth of /cam: 6 of 6 frames have no detections message" in error


def _truncate(path, keep_fraction: float) -> None:
    [storage_file] = [p for p in path.iterdir() if p.suffix == ".mcap"]
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: int(len(data) * keep_fraction)])


@pytest.mark.parametrize("damage", ["no_metadata", "truncated"])
def test_eval_reads_a_recording_that_was_not_closed(tmp_path, capsys, damage):
    # What a recorder killed mid-write leaves; `bag run` reads such bags, so must `bag eval`.
    bag = _detections_bag(tmp_path / "bag", "/cam/ground_truth", frames=60)
    if damage == "no_metadata":
        (bag / "metadata.yaml").unlink()
    else:
        _truncate(bag, 0.6)
    loaded = load_bag_detections(bag, None, ["/cam/ground_truth"])
    frames = len(loaded.cameras["/cam"].raw)
    assert (frames == 60) if damage == "no_metadata" else (10 <= frames < 60)
    assert loaded.problems
    assert main(["bag", "eval", str(bag), "--gt-topic", "/cam/ground_truth"]) == 0
    captured = capsys.readouterr()
    assert "/cam" in captured.out
    assert ("no metadata.yaml" if damage == "no_metadata" else "ends early") in captured.err


def test_run_without_a_single_good_frame_fails(tmp_path, capsys):
    from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message

    typestore = create_typestore()
    source = tmp_path / "all_bad"
    with BagWriter(source, storage="mcap", typestore=typestore) as writer:
        for index in range(3):
            header = make_header(typestore, START_NS + index, "cam")
            message = encode_image_message(typestore, np.zeros((8, 8, 3), np.uint8), header, "bgr8")
            message.encoding = "32FC1"  # a depth camera's encoding: no frame can be used
            writer.write("/cam/image_raw", IMAGE_TYPE, START_NS + index, message)
    command = ["bag", "run", str(source), "--output", str(tmp_path / "out")]
    assert main([*command, "--allow-untrained-weights", "--input-size", "128"]) == 1
    error = capsys.readouterr().err
    assert "no frame of /cam/image_raw could be processed" in error
    assert "32FC1" in error  # the problems list says why


def test_eval_refuses_an_iou_outside_0_to_1(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bag", "eval", str(tmp_path), "--iou", "2"])
    assert "argument --iou: must be in (0, 1], got 2.0" in capsys.readouterr().err
    # 0 as `togethernet eval` refuses it: any box would match any object. It was accepted,
    # and the stability figures then stopped the command with a traceback.
    bag = _detections_bag(tmp_path / "bag", "/cam/ground_truth")
    with pytest.raises(SystemExit):
        main(["bag", "eval", str(bag), "--gt-topic", "/cam/ground_truth", "--iou", "0"])
    assert "argument --iou: must be in (0, 1], got 0.0" in capsys.readouterr().err
