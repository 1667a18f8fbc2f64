"""A model trained on the user's own classes, followed through train, export, predict and eval.

Class names are what users really have: spaces ("traffic light"), non-ASCII ("Fußgänger") and
characters that are not file names ("car/van").
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
from support.train_configs import tiny_train_command

from togethernet_ros.cli import main
from togethernet_ros.evaluation.detection_files import save_detections
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.draw import draw_detections

CLASSES = ["traffic light", "Fußgänger", "car/van"]


def _train_args(root, out, classes):
    """`togethernet train` on ``root`` with a tiny CPU model (seconds per epoch)."""
    return tiny_train_command(
        root, out, "data.val_set=train", f"data.class_names={json.dumps(classes)}"
    )


def _dataset(tmp_path, classes, count=4):
    scenes = SyntheticFogDataset(count, 128, 128, num_classes=len(classes), seed=5)
    return write_voc_fog_dataset(tmp_path / "voc", scenes, classes), scenes


def test_own_classes_survive_train_export_predict_and_eval(tmp_path, capsys):
    root, _ = _dataset(tmp_path, CLASSES)
    run = tmp_path / "run"
    assert main(_train_args(root, run, CLASSES)) == 0
    weights = run / "last.pt"
    stored = torch.load(weights, weights_only=True)
    assert stored["class_names"] == CLASSES

    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(weights), "--output", str(onnx_path)]) == 0
    for path in (onnx_path, tmp_path / "model.detect.onnx"):
        properties = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(properties["togethernet.class_names"]) == CLASSES

    predicted = tmp_path / "predicted"
    args = ["predict", "--backend", "onnxruntime", "--onnx", str(onnx_path)]
    args += ["--source", str(root / "FOG"), "--output", str(predicted), "--conf", "0.01"]
    assert main(args) == 0
    report = json.loads((predicted / "detections.json").read_text(encoding="utf-8"))
    assert report["class_names"] == CLASSES
    found = {d["class_name"] for image in report["images"] for d in image["detections"]}
    assert found and found <= set(CLASSES)
    assert len(list((predicted / "annotated").iterdir())) == 4

    # A classes file with one name per line, as voc2yolo writes it (and Windows adds a BOM).
    names_file = tmp_path / "classes.txt"
    names_file.write_text("\ufeff" + "\n".join(CLASSES) + "\n", encoding="utf-8")
    out = tmp_path / "eval"
    args = ["eval", "--voc-root", str(root), "--image-set", "train", "--classes", str(names_file)]
    args += ["--weights", str(weights), "--input-size", "128", "--out-dir", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert list(metrics["voc"]["ap"]) == CLASSES
    # Every plot lies in the output folder, under a name the class name cannot escape from.
    plots = {path.name for path in out.iterdir() if path.suffix == ".png"}
    assert set(metrics["pr_curves"]) == plots and "pr_car_van.png" in plots

    # Without --classes the dataset is read with the model's classes, as with --detections.
    # Was: read with the five default VOC names, every object dropped as "unknown class".
    out = tmp_path / "eval_model_classes"
    args = ["eval", "--voc-root", str(root), "--image-set", "train", "--no-plots"]
    args += ["--weights", str(weights), "--input-size", "128", "--out-dir", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    by_model = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert by_model["voc"]["num_gt"] == metrics["voc"]["num_gt"]
    assert sum(by_model["voc"]["num_gt"].values()) > 0
    assert by_model["voc"]["ap"] == metrics["voc"]["ap"]


@pytest.mark.parametrize(
    ("classes", "problem"),
    [
        (["car", "truck", "car"], r"data\.class_names repeats class name\(s\) \['car'\]"),
        ([], r"data\.class_names is empty"),
        (["car", " "], r"data\.class_names\[1\] is ' '"),
    ],
)
def test_a_class_list_no_checkpoint_can_hold_is_refused_before_training(
    tmp_path, capsys, classes, problem
):
    # Used to train a whole epoch and then fail saving the first checkpoint, with nothing
    # written (repeated or blank names), or crash with a traceback (no names).
    root, _ = _dataset(tmp_path, ["car", "truck"], count=2)
    capsys.readouterr()
    status = main(_train_args(root, tmp_path / "run", classes))
    printed = capsys.readouterr()
    assert status == 2
    assert "training" not in printed.out
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train: ")
    assert re.search(problem, lines[0]), lines[0]


def test_voc2yolo_reads_a_classes_file_one_name_per_line(tmp_path):
    # "traffic light" was split into two classes: every later id shifted by one and the
    # traffic lights were dropped as an unknown class.
    root, scenes = _dataset(tmp_path, CLASSES)
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    labels = tmp_path / "labels"
    args = ["data", "voc2yolo", "--voc-root", str(root), "--classes", str(names_file)]
    assert main([*args, "--out", str(labels)]) == 0
    assert (labels / "classes.txt").read_text(encoding="utf-8").splitlines() == CLASSES
    for sample in scenes.samples:
        rows = (labels / f"{sample.image_id}.txt").read_text().splitlines()
        assert [int(row.split()[0]) for row in rows] == sample.labels.tolist()


def test_eval_writes_every_class_plot_even_for_names_that_are_not_file_names(tmp_path):
    # "car/van" ended `eval` with "No such file or directory" after all the scoring, with no
    # metrics.json; "Car" and "car" are one file on a case-insensitive disk.
    classes = ["car/van", "Car", "car", ".."]
    scenes = SyntheticFogDataset(6, 128, 128, num_classes=len(classes), seed=3)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, classes)
    detections = {
        sample.image_id: Detections(sample.boxes, np.ones(len(sample.labels)), sample.labels)
        for sample in scenes.samples
    }
    saved = tmp_path / "detections.json"
    save_detections(saved, detections, classes)
    out = tmp_path / "eval"
    args = ["eval", "--voc-root", str(root), "--image-set", "train", "--classes", ",".join(classes)]
    assert main([*args, "--detections", str(saved), "--out-dir", str(out), "--no-coco"]) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    with_truth = [name for name in classes if metrics["voc"]["num_gt"][name]]
    assert len(with_truth) == len(classes), "every class should have ground truth"
    assert metrics["voc"]["mAP"] == pytest.approx(1.0)
    plots = sorted(path.name for path in out.iterdir() if path.suffix == ".png")
    assert plots == sorted(metrics["pr_curves"]) and len(plots) == len(classes)
    assert len({name.casefold() for name in plots}) == len(classes)


def test_curve_file_names_are_safe_unique_and_keep_readable_names():
    from togethernet_ros.evaluation.pr_curves import curve_file_name

    taken: set[str] = set()
    names = ["traffic light", "Fußgänger", "a/b", "a_b", "A_B", "..", "x" * 400]
    files = [curve_file_name(name, taken) for name in names]
    assert files[:6] == [
        "pr_traffic light.png",
        "pr_Fußgänger.png",
        "pr_a_b.png",
        "pr_a_b_2.png",
        "pr_A_B_3.png",
        "pr___.png",
    ]
    assert len(files[6].encode()) <= 255


def _drawn(names, class_id=0):
    image = np.full((120, 320, 3), 90, np.uint8)
    found = Detections([[20, 60, 200, 110]], [0.9], [class_id])
    return draw_detections(image, found, names)


def test_non_ascii_class_names_are_drawn_readably_not_as_question_marks():
    # OpenCV's fonts draw each UTF-8 byte of "ß" or "ä" as "?": "Fu??g??nger".
    drawn = _drawn(["Fußgänger"])
    np.testing.assert_array_equal(drawn, _drawn(["Fussganger"]))
    assert not np.array_equal(drawn, _drawn(["Fu??g??nger"]))
    # No ASCII spelling at all: the class number, not a row of question marks.
    np.testing.assert_array_equal(_drawn(["行人", "bus"], 0), _drawn(["class 0", "bus"], 0))
    # Plain names are drawn as they are.
    assert not np.array_equal(_drawn(["traffic light"]), _drawn(["class 0"]))
