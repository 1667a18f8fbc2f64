"""Datasets in the wild: messy VOC/YOLO files are read right or reported, never lost silently."""

import os
import shutil
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from togethernet_ros.cli import main
from togethernet_ros.training.data_issues import DataIssues
from togethernet_ros.training.paired_dataset import VocFogDataset, YoloFogDataset, read_rgb
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset
from togethernet_ros.training.voc_xml import parse_voc_xml
from togethernet_ros.training.yolo_labels import read_yolo_labels

CLASSES = ("person", "bicycle", "car")
CLASS_OPTION = ["--classes", ",".join(CLASSES)]


@pytest.fixture
def voc_root(tmp_path):
    scenes = SyntheticFogDataset(6, 96, 128, num_classes=3, seed=4)
    return write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES), scenes


def _object(name, box):
    x1, y1, x2, y2 = box
    return (
        f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
    )


def _truncated_jpeg(path, image):
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = encoded.tobytes()
    path.write_bytes(data[: len(data) // 2])  # a copy that stopped half-way


def test_namespaced_voc_xml_keeps_its_objects(tmp_path):
    # Exporters that put the annotation in an XML namespace gave an image without objects
    # and without a size, and not one word about it.
    path = tmp_path / "ns.xml"
    path.write_bytes(
        b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>"
        b'<annotation xmlns="http://example.org/voc"><size><width>100</width>'
        b"<height>80</height></size>"
        + _object("car", (10.5, 20, 60, 70.25)).encode()
        + _object("person", (1, 2, 30, 40)).encode()
        + b"</annotation>"
    )
    annotation = parse_voc_xml(path, CLASSES, DataIssues(strict=True))
    assert annotation.labels.tolist() == [2, 0]
    assert annotation.boxes.tolist() == [[10.5, 20, 60, 70.25], [1, 2, 30, 40]]
    assert (annotation.width, annotation.height) == (100, 80)


def test_an_xml_file_that_is_not_a_voc_annotation_is_reported(tmp_path):
    # A CVAT export dropped into Annotations/ read as an image without objects: its boxes,
    # all of them, gone without a word, and the image trained on as background.
    path = tmp_path / "cvat.xml"
    path.write_text(
        '<annotations><image id="0" name="a.jpg" width="100" height="80">'
        '<box label="car" xtl="1" ytl="2" xbr="30" ybr="40"/></image></annotations>'
    )
    issues = DataIssues()
    assert parse_voc_xml(path, CLASSES, issues) is None
    assert issues.counts() == {"sample skipped": 1}
    assert "root element is <annotations>" in issues.summary()


def test_an_infinite_size_or_difficult_flag_is_reported_not_raised(tmp_path):
    # int(float("inf")) raises OverflowError, which the readers' ValueError handlers missed:
    # one such file stopped train, eval and voc2yolo with a traceback.
    size = tmp_path / "size.xml"
    size.write_text(
        "<annotation><size><width>inf</width><height>80</height></size>"
        + _object("car", (1, 2, 30, 40))
        + "</annotation>"
    )
    issues = DataIssues()
    assert parse_voc_xml(size, CLASSES, issues) is None
    assert "bad <size>: 'inf' is not a finite number" in issues.summary()
    flag = tmp_path / "difficult.xml"
    flag.write_text(
        "<annotation><size><width>100</width><height>80</height></size>"
        + _object("car", (1, 2, 30, 40)).replace(
            "</object>", "<difficult>1e400</difficult></object>"
        )
        + _object("person", (5, 5, 50, 50))
        + "</annotation>"
    )
    issues = DataIssues()
    annotation = parse_voc_xml(flag, CLASSES, issues)
    assert annotation.labels.tolist() == [0]
    assert "object #1: bad <difficult> '1e400'" in issues.summary()


def test_a_class_name_in_other_letter_case_is_named_with_a_hint(tmp_path):
    path = tmp_path / "case.xml"
    path.write_text(
        "<annotation><size><width>100</width><height>80</height></size>"
        + _object("Car ", (1, 2, 30, 40))
        + _object("car", (5, 5, 50, 50))
        + "</annotation>"
    )
    issues = DataIssues()
    annotation = parse_voc_xml(path, CLASSES, issues)
    assert annotation.labels.tolist() == [2]
    assert "unknown class 'Car' (did you mean 'car'?" in issues.summary()


def test_yolo_labels_from_a_windows_editor_keep_every_line(tmp_path):
    # Notepad's byte-order mark stuck to the first class id: the first box of every such file
    # was dropped as a "malformed line".
    path = tmp_path / "img.txt"
    path.write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.4  \r\n\r\n2 0.25 0.5 0.1 0.2\r\n")
    annotation = read_yolo_labels(path, 200, 100, 3, DataIssues(strict=True))
    assert annotation.labels.tolist() == [0, 2]
    assert np.allclose(annotation.boxes, [[80, 30, 120, 70], [40, 40, 60, 60]])


def test_truncated_jpegs_are_reported_never_trained_on_or_fogged(voc_root, capsys):
    # OpenCV decodes a JPEG cut short without an error, its missing rows grey: the trainer
    # learnt from half images, eval scored them, and `data fog` fogged them as if whole.
    root, scenes = voc_root
    (root / "FOG" / "00001.png").unlink()
    _truncated_jpeg(root / "FOG" / "00001.jpg", scenes.samples[1].hazy[:, :, ::-1])
    assert read_rgb(root / "FOG" / "00001.jpg") is None
    dataset = VocFogDataset(root, "train", CLASSES)
    dataset.verify_images(dataset.issues)
    assert [record.image_id for record in dataset.records] == [
        "00000",
        "00002",
        "00003",
        "00004",
        "00005",
    ]
    assert "00001.jpg: truncated JPEG" in dataset.issues.summary()

    # YOLO folders decode every image up front: the truncated one is reported right there.
    images = root / "yolo_images"
    images.mkdir()
    shutil.copy(root / "FOG" / "00000.png", images / "00000.png")
    shutil.copy(root / "FOG" / "00001.jpg", images / "00001.jpg")
    labels = root / "yolo_labels"
    labels.mkdir()
    for stem in ("00000", "00001"):
        (labels / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    yolo = YoloFogDataset(images, labels, CLASSES)
    assert [record.image_id for record in yolo.records] == ["00000"]
    assert "00001.jpg: truncated JPEG" in yolo.issues.summary()

    (root / "JPEGImages" / "00002.png").unlink()
    _truncated_jpeg(root / "JPEGImages" / "00002.jpg", scenes.samples[2].clean[:, :, ::-1])
    assert main(["data", "fog", "--voc-root", str(root), "--out-dir", "F2"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 5 foggy images" in printed and "00002.jpg: clean image truncated JPEG" in printed
    assert not (root / "F2" / "00002.jpg").exists()


def test_whole_jpegs_with_trailers_are_read_and_a_thumbnail_hides_no_cut(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    data = encoded.tobytes()
    # A phone's motion photo: the JPEG, then a video after its end marker. Whole, and read.
    motion = tmp_path / "MVIMG_0001.jpg"
    motion.write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    image = read_rgb(motion)
    assert image is not None and image.shape == (48, 64, 3)
    # A thumbnail in a header segment ends with its own end marker; the photo cut short after
    # it is still cut short.
    ok, thumbnail = cv2.imencode(".jpg", pixels[::8, ::8])
    assert ok
    payload = thumbnail.tobytes()
    segment = b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload
    cut = tmp_path / "thumb.jpg"
    with_thumbnail = data[:2] + segment + data[2:]
    cut.write_bytes(with_thumbnail[: len(segment) + len(data) // 2])
    assert read_rgb(cut) is None
    cut.write_bytes(with_thumbnail)
    assert read_rgb(cut) is not None


def test_entries_named_like_images_that_are_no_files_or_share_an_id_are_reported(voc_root):
    # A folder named 00001.png became a sample (every load of it failed later), and of
    # 00002.jpg and 00002.png one was taken without a word about the other.
    root, _ = voc_root
    (root / "FOG" / "00001.png").unlink()
    (root / "FOG" / "00001.png").mkdir()
    shutil.copy(root / "JPEGImages" / "00002.png", root / "JPEGImages" / "00002.jpg")
    (root / "FOG" / "00003.png").unlink()
    (root / "FOG" / "00003.png").symlink_to(root / "FOG" / "gone.png")
    # Files of ids outside the image set are not this dataset's business.
    shutil.copy(root / "JPEGImages" / "00000.png", root / "JPEGImages" / "99999.png")
    shutil.copy(root / "JPEGImages" / "00000.png", root / "JPEGImages" / "99999.jpg")
    dataset = VocFogDataset(root, "train", CLASSES)
    assert all(record.hazy_path.is_file() for record in dataset.records)
    assert [record.image_id for record in dataset.records] == ["00000", "00002", "00004", "00005"]
    summary = dataset.issues.summary()
    assert "00001.png: named like an image but a directory" in summary
    assert "00003.png: named like an image but a broken link" in summary
    assert "image id '00002' has two files, 00002.jpg and 00002.png; 00002.png is used" in summary
    assert "99999" not in summary

    images = root / "yolo"
    images.mkdir()
    shutil.copy(root / "FOG" / "00000.png", images / "a.png")
    shutil.copy(root / "FOG" / "00000.png", images / "a.JPG")
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    yolo = YoloFogDataset(images, root / "labels", CLASSES)
    assert len(yolo) == 1
    assert "image id 'a' has two files, a.JPG and a.png" in yolo.issues.summary()


def _label_files(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("0"))


def test_voc2yolo_rerun_removes_the_labels_it_no_longer_writes(voc_root, capsys):
    # Labels of an annotation since deleted or broken stayed in the folder, and training read
    # them as that image's boxes.
    root, _ = voc_root
    out = root / "labels"
    convert = ["data", "voc2yolo", "--voc-root", str(root), "--out", str(out), *CLASS_OPTION]
    assert main(convert) == 0
    assert _label_files(out) == [f"0000{index}.txt" for index in range(6)]
    (out / "mine.txt").write_text("my notes")
    (root / "Annotations" / "00001.xml").unlink()
    (root / "Annotations" / "00002.xml").write_text("<annotation><object>")
    assert main(convert) == 0
    assert _label_files(out) == ["00000.txt", "00003.txt", "00004.txt", "00005.txt"]
    assert "removed 2 label files of an earlier run" in capsys.readouterr().out
    assert (out / "mine.txt").read_text() == "my notes"
    assert (out / "classes.txt").read_text() == "person\nbicycle\ncar\n"

    # Image sets converted one after the other into one folder keep each other's labels.
    sets = root / "ImageSets" / "Main"
    (sets / "a.txt").write_text("00000\n00003\n")
    (sets / "b.txt").write_text("00004\n00005\n")
    per_set = root / "per_set"
    into_per_set = [*convert[:4], "--out", str(per_set), *CLASS_OPTION, "--image-set"]
    for name in ("a", "b"):
        assert main([*into_per_set, name]) == 0
    assert _label_files(per_set) == ["00000.txt", "00003.txt", "00004.txt", "00005.txt"]
    (sets / "a.txt").write_text("00000\n")
    assert main([*into_per_set, "a"]) == 0
    assert _label_files(per_set) == ["00000.txt", "00004.txt", "00005.txt"]


SPLIT_UNDER_A_FILE_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, sys
    from togethernet_ros.cli import main
    import togethernet_ros.training.data_command  # imported before the limit: no cache writes
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(sys.argv[2:]))
    """
)


def test_split_leaves_the_old_lists_whole_when_it_cannot_write_the_new_ones(tmp_path):
    # The three lists were written one after another: a full disk (or a kill) midway left a
    # torn train.txt next to the previous split's val.txt and test.txt, which overlap it.
    scenes = SyntheticFogDataset(1, 96, 128, num_classes=3, seed=0)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    for index in range(1, 400):
        shutil.copy(root / "Annotations" / "00000.xml", root / "Annotations" / f"{index:05d}.xml")
    assert main(["data", "split", "--voc-root", str(root), "--seed", "1"]) == 0
    lists = root / "ImageSets" / "Main"
    before = {name: (lists / f"{name}.txt").read_text() for name in ("train", "val", "test")}
    # train.txt is 320 lines of 6 bytes: over the 1000-byte limit, val and test are under it.
    command = [sys.executable, "-c", SPLIT_UNDER_A_FILE_SIZE_LIMIT, "1000"]
    command += ["data", "split", "--voc-root", str(root), "--seed", "2"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot write the image-set lists" in result.stderr
    after = {name: (lists / f"{name}.txt").read_text() for name in ("train", "val", "test")}
    assert after == before
    assert sorted(path.name for path in lists.iterdir()) == ["test.txt", "train.txt", "val.txt"]
