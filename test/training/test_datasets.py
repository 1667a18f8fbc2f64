"""VOC-FOG / YOLO readers, the bad-data policy and the `togethernet data` commands."""

import csv

import cv2
import numpy as np
import pytest

from togethernet_ros.cli import main
from togethernet_ros.training.data_issues import DataError, DataIssues
from togethernet_ros.training.paired_dataset import VocFogDataset, YoloFogDataset
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset
from togethernet_ros.training.voc_xml import parse_voc_xml
from togethernet_ros.training.yolo_labels import read_yolo_labels

CLASSES = ("person", "bicycle", "car")


@pytest.fixture
def voc_root(tmp_path):
    scenes = SyntheticFogDataset(6, 96, 128, num_classes=3, seed=1)
    return write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES), scenes


def test_voc_fog_pairs_foggy_with_clean_by_name(voc_root):
    root, scenes = voc_root
    dataset = VocFogDataset(root, "train", CLASSES, hazy_dir="FOG")
    assert len(dataset) == 6 and not dataset.issues.issues
    sample = dataset[2]
    assert sample.image_id == scenes.samples[2].image_id
    assert np.array_equal(sample.hazy, scenes.samples[2].hazy)
    assert np.array_equal(sample.clean, scenes.samples[2].clean)
    assert np.allclose(sample.boxes, scenes.samples[2].boxes)
    assert np.array_equal(sample.labels, scenes.samples[2].labels)


def test_beta_suffixed_foggy_versions_each_become_samples(voc_root):
    root, _ = voc_root
    image = cv2.imread(str(root / "FOG" / "00000.png"))
    (root / "FOG" / "00000.png").unlink()
    for beta in ("0.05", "0.09"):
        cv2.imwrite(str(root / "FOG" / f"00000_{beta}.png"), image)
    dataset = VocFogDataset(root, "train", CLASSES)
    names = sorted(r.hazy_path.name for r in dataset.records if r.image_id == "00000")
    assert names == ["00000_0.05.png", "00000_0.09.png"]
    assert len(dataset) == 7


def _xml(path, body, width=100, height=80):
    path.write_text(
        f"<annotation><size><width>{width}</width><height>{height}</height></size>{body}</annotation>"
    )


def _object(name, box, difficult=0):
    x1, y1, x2, y2 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
        f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
    )


def test_voc_xml_lenient_clips_drops_and_counts(tmp_path):
    path = tmp_path / "a.xml"
    body = (
        _object("person", (10, 10, 50, 50), 1)
        + _object("car", (-5, 20, 120, 70))  # outside: clipped
        + _object("dog", (1, 1, 9, 9))  # unknown class: dropped
        + _object("bicycle", (30, 30, 30, 60))  # degenerate: dropped
    )
    _xml(path, body)
    issues = DataIssues()
    annotation = parse_voc_xml(path, CLASSES, issues)
    assert annotation.labels.tolist() == [0, 2]
    assert annotation.difficult.tolist() == [True, False]
    assert annotation.boxes[1].tolist() == [0, 20, 100, 70]
    assert issues.counts() == {"box clipped": 1, "object dropped": 1, "box dropped": 1}
    assert "a.xml" in issues.summary() and "unknown class 'dog'" in issues.summary()


def test_voc_xml_strict_names_the_file(tmp_path):
    path = tmp_path / "b.xml"
    _xml(path, _object("dog", (1, 1, 9, 9)))
    with pytest.raises(DataError, match=r"b\.xml.*unknown class 'dog'"):
        parse_voc_xml(path, CLASSES, DataIssues(strict=True))
    corrupt = tmp_path / "c.xml"
    corrupt.write_text("<annotation>\n<size>\n</annotation>")
    with pytest.raises(DataError, match=r"c\.xml:3: corrupt XML"):
        parse_voc_xml(corrupt, CLASSES, DataIssues(strict=True))


def test_yolo_labels_bad_lines_reported_with_line_numbers(tmp_path):
    path = tmp_path / "img.txt"
    path.write_text("0 0.5 0.5 0.2 0.4\n7 0.5 0.5 0.1 0.1\nbad line\n1 0.95 0.5 0.2 0.2\n")
    issues = DataIssues()
    annotation = read_yolo_labels(path, 200, 100, 3, issues)
    assert annotation.labels.tolist() == [0, 1]
    assert np.allclose(annotation.boxes[0], [80, 30, 120, 70])
    assert np.allclose(annotation.boxes[1], [170, 40, 200, 60])  # clipped at the right edge
    lines = sorted(issue.line for issue in issues.issues)
    assert lines == [2, 3, 4]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.txt: empty label file"):
        read_yolo_labels(empty, 10, 10, 3, DataIssues(strict=True))


def test_missing_and_unreadable_images(voc_root):
    root, _ = voc_root
    (root / "FOG" / "00001.png").unlink()
    (root / "JPEGImages" / "00003.png").write_bytes(b"not an image")
    dataset = VocFogDataset(root, "train", CLASSES)
    assert len(dataset) == 5
    assert any("foggy image missing" in issue.problem for issue in dataset.issues.issues)
    with pytest.raises(DataError, match="00001"):
        VocFogDataset(root, "train", CLASSES, strict=True)
    dataset.verify_images(dataset.issues)
    assert len(dataset) == 4 and dataset.issues.counts()["sample skipped"] == 2


def test_data_cli_voc2yolo_split_fog_round_trip(voc_root, capsys):
    root, scenes = voc_root
    assert (
        main(["data", "split", "--voc-root", str(root), "--ratios", "4", "1", "1", "--seed", "3"])
        == 0
    )
    sets = {
        name: (root / "ImageSets" / "Main" / f"{name}.txt").read_text().split()
        for name in ("train", "val", "test")
    }
    assert [len(ids) for ids in sets.values()] == [4, 1, 1]
    assert sorted(i for ids in sets.values() for i in ids) == [f"{i:05d}" for i in range(6)]
    labels = root / "labels"
    assert (
        main(
            [
                "data",
                "voc2yolo",
                "--voc-root",
                str(root),
                "--classes",
                ",".join(CLASSES),
                "--out",
                str(labels),
            ]
        )
        == 0
    )
    assert (labels / "classes.txt").read_text().split() == list(CLASSES)
    yolo = YoloFogDataset(root / "JPEGImages", labels, CLASSES, clean_dir=root / "JPEGImages")
    sample = next(s for s in (yolo[i] for i in range(len(yolo))) if s.image_id == "00004")
    assert np.allclose(sample.boxes, scenes.samples[4].boxes, atol=0.01)
    # Fog a clean copy: seeded, β from the recipe list, pairing readable by the dataset.
    args = ["data", "fog", "--voc-root", str(root), "--out-dir", "FOG2", "--seed", "5"]
    assert main(args) == 0
    params = list(csv.DictReader((root / "FOG2" / "fog_params.csv").open()))
    assert len(params) == 6
    assert all(0.05 <= float(row["beta"]) <= 0.14 for row in params)
    first = (root / "FOG2" / "00000.jpg").read_bytes()
    assert main(args) == 0
    assert (root / "FOG2" / "00000.jpg").read_bytes() == first  # same seed, same fog
    fogged = VocFogDataset(root, "train", CLASSES, hazy_dir="FOG2")
    sample = fogged[0]
    assert sample.hazy.mean() > sample.clean.mean() - 5  # fog brightens towards A = 0.5
    assert sample.hazy.std() < sample.clean.std()
