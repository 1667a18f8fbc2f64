"""`togethernet eval` from saved detection files: JSON report, PR plots, per-class table."""

import json

import numpy as np
import pytest
from support.cli_refusal import refused
from support.oversized_jpeg import jpeg_claiming_size

from togethernet_ros.cli import build_parser, main
from togethernet_ros.evaluation.detection_files import load_detections, save_detections
from togethernet_ros.evaluation.records import ImageDetections
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

CLASSES = ("person", "bicycle", "car")


def test_eval_from_detection_file(tmp_path, capsys):
    scenes = SyntheticFogDataset(5, 96, 128, num_classes=3, seed=4)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES, image_set="test")
    # Perfect detections for every image, plus one confident false positive in the first.
    detections = {
        s.image_id: ImageDetections(s.boxes, np.linspace(0.9, 0.5, len(s.boxes)), s.labels)
        for s in scenes.samples
    }
    first = scenes.samples[0]
    wrong_class = (int(first.labels[0]) + 1) % 3
    detections[first.image_id] = ImageDetections(
        np.concatenate([first.boxes, first.boxes[:1]]),
        np.concatenate([np.linspace(0.9, 0.5, len(first.boxes)), [0.95]]),
        np.concatenate([first.labels, [wrong_class]]),
    )
    path = tmp_path / "dets.json"
    save_detections(path, detections, CLASSES)
    loaded, names, left_out = load_detections(path)
    assert left_out == ()
    assert names == CLASSES and np.allclose(
        loaded[first.image_id].boxes, detections[first.image_id].boxes, atol=1e-3
    )

    out = tmp_path / "report"
    assert (
        main(["eval", "--voc-root", str(root), "--detections", str(path), "--out-dir", str(out)])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    aps = metrics["voc"]["ap"]
    present = [name for name in CLASSES if metrics["voc"]["num_gt"][name] > 0]
    # Every object is found; the only false positive ranks first in its class. Worked out by
    # hand for this seed: it lands in "person", which has 4 objects, so the ranked list reads
    # FP, TP, TP, TP, TP -> precision 1/2, 2/3, 3/4, 4/5 at recall 1/4 .. 1; the VOC
    # all-point AP takes the running maximum from the right: 0.8 at every recall level.
    assert CLASSES[wrong_class] == "person" and metrics["voc"]["num_gt"]["person"] == 4
    assert present == list(CLASSES)
    assert aps == {
        "person": pytest.approx(0.8),
        "bicycle": pytest.approx(1.0),
        "car": pytest.approx(1.0),
    }
    assert metrics["voc"]["mAP"] == pytest.approx(2.8 / 3)
    # COCO's 101-point interpolation reads the same 0.8 plateau for person at IoU 0.5.
    assert metrics["coco"]["AP50"] == pytest.approx(2.8 / 3, abs=2e-3)
    assert sorted(metrics["pr_curves"]) == sorted(f"pr_{name}.png" for name in present)
    assert all(
        (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in metrics["pr_curves"]
    )
    table = capsys.readouterr().out
    assert "mAP" in table and all(name in table for name in CLASSES)


def test_eval_rejects_bad_detection_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a detections file"):
        load_detections(bad)


def test_eval_model_options_take_rectangular_sizes_and_default_to_any_gpu(capsys):
    parser = build_parser(["eval"])
    args = parser.parse_args(["eval", "--weights", "w.pt", "--input-size", "384x640"])
    assert args.input_size == (384, 640)
    assert args.device == "auto" and args.precision == "fp32"
    # No size: the detector takes the checkpoint's recorded training size (else 640).
    assert parser.parse_args(["eval", "--weights", "w.pt"]).input_size is None
    assert parser.parse_args(["eval", "--input-size", "512"]).input_size == (512, 512)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--input-size", "500"])
    assert "multiple" in capsys.readouterr().err


def test_eval_leaves_out_unreadable_images_and_refuses_a_class_count_mismatch(tmp_path, capsys):
    names = ("person", "bicycle", "car", "motorbike", "bus")  # the untrained model's classes
    scenes = SyntheticFogDataset(4, 128, 128, num_classes=5, seed=2)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, names, image_set="test")
    unreadable, oversized = sorted((root / "FOG").iterdir())[1:3]
    unreadable.write_bytes(b"not an image")
    oversized.write_bytes(jpeg_claiming_size(60000, 60000))  # OpenCV raises on this one
    run = ["eval", "--voc-root", str(root), "--weights", "", "--allow-untrained"]
    run += ["--input-size", "128", "--device", "cpu", "--no-plots", "--no-coco"]
    out = tmp_path / "report"
    assert main([*run, "--classes", ",".join(names), "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images_left_out"] == [unreadable.stem, oversized.stem]
    assert metrics["num_images"] == 2
    assert "2 unreadable images left out" in capsys.readouterr().out
    # A saved file scores as the run that saved it: the unreadable images are no misses.
    saved, rescored = tmp_path / "dets.json", tmp_path / "rescored"
    run_saving = [*run, "--classes", ",".join(names), "--out-dir", str(out)]
    assert main([*run_saving, "--save-detections", str(saved)]) == 0
    assert load_detections(saved).images_left_out == (unreadable.stem, oversized.stem)
    scoring = ["eval", "--voc-root", str(root), "--detections", str(saved), "--no-plots"]
    assert main([*scoring, "--no-coco", "--out-dir", str(rescored)]) == 0
    again = json.loads((rescored / "metrics.json").read_text())
    assert (again["voc"], again["num_images"], again["images_left_out"]) == (
        json.loads((out / "metrics.json").read_text())["voc"],
        2,
        [unreadable.stem, oversized.stem],
    )
    assert "2 images left out, as by the run that saved" in capsys.readouterr().out
    # --strict stops at the bad file instead.
    refused(
        capsys,
        [*run, "--classes", ",".join(names), "--strict", "--out-dir", str(out)],
        "unreadable image",
    )
    # A dataset read with other classes than the model's: said before any inference.
    refused(
        capsys,
        [*run, "--classes", "person,bicycle,car", "--out-dir", str(out)],
        "the model has 5 classes",
    )


def _detections_file(path, images, class_names=("person", "bicycle", "car")):
    payload = {"format": "togethernet_ros.detections/1"}
    if images is not None:
        payload["images"] = images
    if class_names is not None:
        payload["class_names"] = list(class_names)
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("images", "class_names", "expected"),
    [
        (None, CLASSES, "'images' must map image ids to detections"),
        ({}, None, "'class_names' must be a non-empty list"),
        ({"00000": [1, 2]}, CLASSES, "image '00000': expected {boxes, scores, class_ids}"),
        (
            {"00000": {"boxes": [[1, 2, 3, 4]], "scores": [0.5]}},
            CLASSES,
            "missing field(s) class_ids",
        ),
        (
            {"00000": {"boxes": [[1, 2, 3, 4]], "scores": [0.5], "class_ids": [7]}},
            CLASSES,
            "class ids [7] outside the file's 3 classes",
        ),
        (
            {"00000": {"boxes": [[1, 2, 3, 4]], "scores": [0.5], "class_ids": [0.5]}},
            CLASSES,
            "class ids must be integers",
        ),
        (
            {"00000": {"boxes": [[1, 2, 3]], "scores": [0.5], "class_ids": [0]}},
            CLASSES,
            "boxes must be [x1, y1, x2, y2] lists",
        ),
        (
            {"00000": {"boxes": [[1, 2, 3, None]], "scores": [0.5], "class_ids": [0]}},
            CLASSES,
            "non-finite box coordinates or scores",
        ),
    ],
)
def test_eval_names_what_is_wrong_in_a_detections_file(
    tmp_path, capsys, images, class_names, expected
):
    scenes = SyntheticFogDataset(2, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES, image_set="test")
    path = _detections_file(tmp_path / "dets.json", images, class_names)
    args = ["eval", "--voc-root", str(root), "--detections", str(path), "--no-plots"]
    message = refused(capsys, [*args, "--out-dir", str(tmp_path / "report")])
    # One line, naming the file (and image) and the problem.
    assert message.startswith(f"eval: {path}: ") and expected in message and "\n" not in message
    assert not (tmp_path / "report").exists()


def test_eval_refuses_an_empty_image_set_and_bad_options(tmp_path, capsys):
    scenes = SyntheticFogDataset(2, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES, image_set="test")
    (root / "ImageSets" / "Main" / "test.txt").write_text("")
    dets = _detections_file(tmp_path / "dets.json", {})
    args = ["eval", "--voc-root", str(root), "--detections", str(dets), "--no-plots"]
    out = tmp_path / "report"
    refused(
        capsys,
        [*args, "--out-dir", str(out)],
        r"no images to evaluate in .*voc \(image set 'test'\)",
    )
    assert not (out / "metrics.json").exists()
    refused(capsys, [*args, "--classes", "car,car"], r"duplicate class names \['car'\]")
    refused(capsys, [*args, "--batch-size", "0"], "--batch-size: must be >= 1")
    # --strict: a listed image missing on disk stops the run in one line naming it.
    (root / "ImageSets" / "Main" / "test.txt").write_text("00000\n00001\n")
    (root / "FOG" / "00001.png").unlink()
    refused(
        capsys,
        [*args, "--strict", "--out-dir", str(out)],
        r"FOG/00001: foggy image missing \(strict data mode",
    )


def test_eval_without_ground_truth_objects_reports_undefined_not_numbers(tmp_path, capsys):
    scenes = SyntheticFogDataset(3, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES, image_set="test")
    for xml in (root / "Annotations").iterdir():
        xml.write_text(
            "<annotation><size><width>128</width><height>96</height></size></annotation>"
        )
    box = {"boxes": [[5, 5, 30, 30]], "scores": [0.9], "class_ids": [2]}
    dets = _detections_file(tmp_path / "dets.json", {"00000": box})
    out = tmp_path / "report"
    args = ["eval", "--voc-root", str(root), "--detections", str(dets), "--no-plots"]
    assert main([*args, "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # pycocotools' -1 ("nothing to score") must not reach the report as a number.
    assert metrics["voc"]["mAP"] is None and metrics["coco"]["AP"] is None
    assert all(value is None or value >= 0 for value in metrics["coco"].values())
    assert "no (non-difficult) ground-truth objects" in capsys.readouterr().out


def test_eval_detects_on_the_pixels_its_ground_truth_refers_to(tmp_path, monkeypatch, capsys):
    # EXIF-tagged photos: the ground truth is on the stored grid (<size> 80x40), so the
    # detector must be given that grid too, not the photo turned for display.
    from support.exif_jpeg import BLOCK_BOX, white_block_photo
    from support.stand_in_detectors import BrightBlockDetector

    import togethernet_ros.inference as inference
    from togethernet_ros.training.voc_xml import write_voc_xml

    root = tmp_path / "voc"
    for folder in ("JPEGImages", "FOG", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    ids = []
    for orientation in (3, 6, 8):
        image_id = f"photo{orientation}"
        data, _ = white_block_photo(orientation)
        for folder in ("JPEGImages", "FOG"):
            (root / folder / f"{image_id}.jpg").write_bytes(data)
        write_voc_xml(
            root / "Annotations" / f"{image_id}.xml",
            f"{image_id}.jpg",
            80,
            40,
            [BLOCK_BOX],
            [0],
            CLASSES,
        )
        ids.append(image_id)
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    made = []

    def block_detector(weights, **options):
        made.append(BrightBlockDetector(CLASSES, options["color_order"]))
        return made[-1]

    monkeypatch.setattr(inference, "create_detector", block_detector)
    out = tmp_path / "report"
    run = ["eval", "--voc-root", str(root), "--image-set", "test", "--weights", "w.pt"]
    assert main([*run, "--classes", ",".join(CLASSES), "--out-dir", str(out), "--no-plots"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert made[0].seen_shapes == [(40, 80, 3)] * 3
    assert metrics["voc"]["ap"]["person"] == pytest.approx(1.0)
    capsys.readouterr()


def test_a_foggy_only_dataset_is_scored_without_clean_originals(tmp_path, capsys):
    """RTTS-like: FOG and Annotations only. eval reads no clean image, so none is needed, and
    one missing must not drop its foggy image from the score."""
    import shutil

    scenes = SyntheticFogDataset(4, 96, 128, num_classes=3, seed=5)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES, image_set="test")
    shutil.rmtree(root / "JPEGImages")
    detections = {
        s.image_id: ImageDetections(s.boxes, np.linspace(0.9, 0.5, len(s.boxes)), s.labels)
        for s in scenes.samples
    }
    path = tmp_path / "dets.json"
    save_detections(path, detections, CLASSES)
    out = tmp_path / "report"
    arguments = ["eval", "--voc-root", str(root), "--image-set", "test"]
    assert main([*arguments, "--detections", str(path), "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 4
    assert metrics["voc"]["mAP"] == pytest.approx(1.0)


def test_saved_detections_keep_full_precision(tmp_path):
    """A box edge at 12.9996 truncates to 12 in eval; stored rounded it would read 13."""
    boxes = np.array([[12.9996, 20.25, 40.4999996, 61.0]], np.float64)
    scores = np.array([0.1234567891])
    path = tmp_path / "dets.json"
    save_detections(path, {"a": ImageDetections(boxes, scores, np.array([0]))}, CLASSES)
    loaded = load_detections(path).detections
    assert loaded["a"].boxes.tolist() == boxes.tolist()
    assert loaded["a"].scores.tolist() == scores.tolist()
