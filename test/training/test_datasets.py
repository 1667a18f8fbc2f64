"""VOC-FOG / YOLO readers, the bad-data policy and the `togethernet data` commands."""

import csv
import tracemalloc

import cv2
import numpy as np
import pytest
from support.cli_refusal import refused

from togethernet_ros.cli import main
from togethernet_ros.training.data_issues import DataError, DataIssues
from togethernet_ros.training.paired_dataset import VocFogDataset, YoloFogDataset
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset
from togethernet_ros.training.voc_xml import parse_voc_xml
from togethernet_ros.training.yolo_labels import read_yolo_labels
from togethernet_ros.vision import fog

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
    # An empty file is an image without objects (YOLO convention), even in strict mode.
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    annotation = read_yolo_labels(empty, 10, 10, 3, DataIssues(strict=True))
    assert annotation is not None and len(annotation.labels) == 0


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


def _cli_error(capsys, args):
    """Run the CLI expecting a one-line error exit (status 2); returns the message."""
    return refused(capsys, args)


def test_voc2yolo_bad_options_and_strict_errors_exit_in_one_line(voc_root, capsys):
    root, _ = voc_root
    out = str(root / "labels")
    message = _cli_error(
        capsys, ["data", "voc2yolo", "--voc-root", str(root), "--out", out, "--classes", "a,a"]
    )
    assert "duplicate class names ['a']" in message
    # A class file that is not there used to be read as one class named after its path:
    # every object then dropped as an unknown class, and exit 0.
    for value, problem in [
        (str(root / "classes.txt"), "does not exist"),
        ("/nonexistent/names", "does not exist"),
        (str(root), "is not a file"),
    ]:
        command = ["data", "voc2yolo", "--voc-root", str(root), "--out", out, "--classes", value]
        assert f"class names file {value} {problem}" in _cli_error(capsys, command)
    # (The scenes are 128x96: a <size> that disagrees would be the first strict error.)
    _xml(root / "Annotations" / "00002.xml", _object("dog", (1, 1, 9, 9)), 128, 96)
    args = ["data", "voc2yolo", "--voc-root", str(root), "--out", out]
    message = _cli_error(capsys, [*args, "--classes", ",".join(CLASSES), "--strict"])
    assert "00002.xml: object #1: unknown class 'dog'" in message
    # A missing dataset is an error, not "wrote 0 label files".
    missing = root.parent / "nowhere"
    assert main(["data", "voc2yolo", "--voc-root", str(missing), "--out", out]) == 2
    assert f"annotation directory not found: {missing / 'Annotations'}" in capsys.readouterr().err


def test_voc2yolo_takes_a_missing_size_from_the_image(voc_root, capsys):
    root, scenes = voc_root
    # Some tools write no <size> (or 0): YOLO labels need it, the image on disk has it.
    sample = scenes.samples[1]
    x1, y1, x2, y2 = (int(v) for v in sample.boxes[0])
    (root / "Annotations" / "00001.xml").write_text(
        f"<annotation>{_object(CLASSES[int(sample.labels[0])], (x1, y1, x2 + 500, y2))}"
        "</annotation>"
    )
    (root / "Annotations" / "00002.xml").write_text(
        f"<annotation><size><width>0</width><height>0</height></size>"
        f"{_object('car', (1, 1, 9, 9))}</annotation>"
    )
    (root / "JPEGImages" / "00002.png").unlink()
    labels = root / "labels"
    args = ["data", "voc2yolo", "--voc-root", str(root), "--out", str(labels)]
    assert main([*args, "--classes", ",".join(CLASSES)]) == 0
    report = capsys.readouterr().out
    assert "wrote 5 label files" in report
    assert "00002.xml: no image size" in report and "box clipped" in report
    cls, cx, cy, w, h = (float(v) for v in (labels / "00001.txt").read_text().split()[:5])
    # 128×96 from the PNG; the box reaching past the right edge is clipped to it.
    assert cls == sample.labels[0]
    assert (cx + w / 2) == pytest.approx(1.0) and (cy - h / 2) * 96 == pytest.approx(y1, abs=0.01)


def test_voc_xml_bad_difficult_flag_is_named(tmp_path):
    path = tmp_path / "d.xml"
    _xml(path, _object("car", (10, 10, 50, 50), "yes"))
    issues = DataIssues()
    annotation = parse_voc_xml(path, CLASSES, issues)
    assert len(annotation.labels) == 0
    assert "bad <difficult> 'yes'" in issues.summary()


def test_image_set_that_is_not_utf8_is_named_with_its_line(voc_root, capsys):
    root, _ = voc_root
    (root / "ImageSets" / "Main" / "test.txt").write_bytes(b"00000\n\xe9t\xe9\n")
    with pytest.raises(DataError, match=r"test\.txt:2: not UTF-8"):
        VocFogDataset(root, "test", CLASSES)
    message = _cli_error(capsys, ["data", "fog", "--voc-root", str(root), "--image-set", "test"])
    assert "test.txt:2: not UTF-8" in message


def test_split_refuses_bad_ratios_in_one_line(voc_root, capsys):
    root, _ = voc_root
    for ratios in (["0", "0", "0"], ["1", "-1", "1"], ["1", "nan", "1"]):
        message = _cli_error(
            capsys, ["data", "split", "--voc-root", str(root), "--ratios", *ratios]
        )
        assert "--ratios: split ratios must be finite, non-negative" in message
    assert not (root / "ImageSets" / "Main" / "val.txt").exists()


def test_fog_refuses_out_of_range_settings(voc_root, capsys):
    root, _ = voc_root
    base = ["data", "fog", "--voc-root", str(root), "--out-dir", "F"]
    cases = {
        ("--beta-min", "-0.1"): "need 0 <= beta-min <= beta-max",
        ("--beta-min", "0.3", "--beta-max", "0.1"): "need 0 <= beta-min <= beta-max",
        ("--airlight", "1.5"): "--airlight must be in [0, 1]",
        ("--airlight-jitter", "-1"): "--airlight-jitter must be in [0, 1]",
        ("--versions-per-image", "0"): "--versions-per-image must be >= 1",
        ("--jpeg-quality", "101"): "--jpeg-quality must be in 0..100",
        ("--beta-step", "nan"): "--beta-step must be >= 0",
    }
    for options, expected in cases.items():
        assert expected in _cli_error(capsys, [*base, *options])
    assert not (root / "F").exists()


def test_fog_never_overwrites_the_clean_images(tmp_path, capsys):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    image = np.full((40, 60, 3), 90, np.uint8)
    cv2.imwrite(str(root / "JPEGImages" / "a.jpg"), image)
    before = (root / "JPEGImages" / "a.jpg").read_bytes()
    for out_dir in ("JPEGImages", "JPEGImages/", "./JPEGImages"):
        message = _cli_error(capsys, ["data", "fog", "--voc-root", str(root), "--out-dir", out_dir])
        assert "would overwrite the clean originals" in message
    assert (root / "JPEGImages" / "a.jpg").read_bytes() == before
    (root / "JPEGImages" / "a.jpg").unlink()
    message = _cli_error(capsys, ["data", "fog", "--voc-root", str(root)])
    assert "no images to fog" in message


def test_fog_on_large_images_never_darkens_the_corners(tmp_path, capsys):
    # The recipe's depth goes negative towards the corners of images much larger than VOC's;
    # t = exp(−β·d) > 1 there would push pixels away from the airlight instead of towards it.
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    cv2.imwrite(str(root / "JPEGImages" / "big.png"), np.full((300, 400, 3), 40, np.uint8))
    args = ["data", "fog", "--voc-root", str(root), "--depth-slope", "0.2", "--jpeg-quality", "100"]
    assert main([*args, "--airlight", "0.9"]) == 0
    assert "reaches 0 towards the corners" in capsys.readouterr().out
    foggy = cv2.imread(str(root / "FOG" / "big.jpg")).astype(int)
    assert foggy.min() >= 40 - 2  # fog only ever moves a pixel towards A = 0.9·255
    assert foggy[150, 200].mean() > 100  # and the centre is foggy


def test_fog_keeps_a_bounded_number_of_depth_maps(tmp_path, monkeypatch):
    # One depth map per image size, kept for the whole run, grew without bound on datasets of
    # many sizes (VOC has hundreds; 12 MP photos take 48 MB a map).
    monkeypatch.setattr(fog, "DEPTH_CACHE_BYTES", 2**20)
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    for index in range(60):
        image = np.full((400 + index, 500, 3), 90, np.uint8)
        cv2.imwrite(str(root / "JPEGImages" / f"{index:03d}.png"), image)
    tracemalloc.start()
    try:
        assert main(["data", "fog", "--voc-root", str(root)]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(list((root / "FOG").glob("*.jpg"))) == 60
    # A map per size: 60 × 0.8 MB = 52 MB.
    assert peak < 16 * 2**20, f"data fog held {peak / 2**20:.0f} MiB"


def test_depth_cache_keeps_the_latest_sizes_within_its_bound():
    cache = fog.DepthCache(max_bytes=3 * 100 * 100 * 4)
    first = cache.get(100, 100)
    assert cache.get(100, 100) is first  # computed once
    np.testing.assert_array_equal(first, fog.depth_proxy(100, 100))
    for height in (101, 102, 103):
        cache.get(height, 100)
    assert cache.get(100, 100) is not first  # evicted, the least recently used
    assert cache.get(2000, 2000).shape == (2000, 2000)  # over the bound alone: still given
    assert not first.flags.writeable  # shared between images: nobody may change it


def test_voc2yolo_round_trip_keeps_images_without_objects(voc_root):
    root, _ = voc_root
    _xml(root / "Annotations" / "00003.xml", "", width=128, height=96)
    labels = root / "labels"
    args = ["data", "voc2yolo", "--voc-root", str(root), "--out", str(labels)]
    assert main([*args, "--classes", ",".join(CLASSES)]) == 0
    assert (labels / "00003.txt").read_text() == ""
    dataset = YoloFogDataset(root / "FOG", labels, CLASSES, strict=True)
    assert len(dataset) == 6
    record = next(r for r in dataset.records if r.image_id == "00003")
    assert len(record.annotation.labels) == 0


def test_validation_scores_every_foggy_version_of_an_image(voc_root):
    import torch

    from togethernet_ros.model import TogetherNetConfig, build_model
    from togethernet_ros.training.validation import predict_dataset

    root, _ = voc_root
    image = cv2.imread(str(root / "FOG" / "00000.png"))
    (root / "FOG" / "00000.png").unlink()
    for beta in ("0.05", "0.09"):
        cv2.imwrite(str(root / "FOG" / f"00000_{beta}.png"), image)
    dataset = VocFogDataset(root, "train", CLASSES)
    model = build_model(config=TogetherNetConfig(num_classes=3, width=0.125))
    detections, truth = predict_dataset(model, dataset, (128, 128), torch.device("cpu"))
    # Seven samples, seven evaluated images (the eval command keys them by file; the second
    # version of 00000 used to replace the first).
    assert len(dataset) == 7 and len(truth) == len(detections) == 7


def test_split_warns_when_a_wanted_subset_rounds_down_to_nothing(voc_root, capsys):
    root, _scenes = voc_root
    assert main(["data", "split", "--voc-root", str(root), "--ratios", "9", "1", "0"]) == 0
    printed = capsys.readouterr().out
    # 6 images at 9:1:0 give 5 + 1 + 0; the empty test set was asked for with ratio 0.
    assert "warning" not in printed
    assert main(["data", "split", "--voc-root", str(root), "--ratios", "0.9", "0.05", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "warning: empty although its ratio is above 0" in printed
    empty = [
        name
        for name in ("val", "test")
        if not (root / "ImageSets" / "Main" / f"{name}.txt").read_text()
    ]
    assert empty and all(f"{name}: 0 images (warning" in printed for name in empty)


def test_fog_versions_per_image_writes_that_many_distinct_versions(voc_root, capsys):
    # Versions are named <id>_<beta>: two versions drawing the same β used to write one file
    # over the other (and list both in fog_params.csv), so fewer versions than asked existed.
    root, scenes = voc_root
    base = ["data", "fog", "--voc-root", str(root), "--out-dir", "V", "--beta-min", "0.05"]
    base += ["--beta-max", "0.06", "--beta-step", "0.01"]  # two β values to draw from
    assert main([*base, "--versions-per-image", "2"]) == 0
    params = list(csv.DictReader((root / "V" / "fog_params.csv").open()))
    files = [row["file"] for row in params]
    assert len(files) == len(set(files)) == 2 * len(scenes.samples)
    assert all((root / "V" / name).is_file() for name in files)
    assert len(VocFogDataset(root, "train", CLASSES, hazy_dir="V")) == 2 * len(scenes.samples)
    # More versions than distinct β values cannot all be distinct: refused, not overwritten.
    message = _cli_error(capsys, [*base, "--versions-per-image", "3"])
    assert "--versions-per-image 3" in message and "2 fog densities" in message
    continuous = ["--beta-min", "0.1", "--beta-max", "0.1", "--beta-step", "0"]
    args = ["data", "fog", "--voc-root", str(root), "--out-dir", "W", *continuous]
    message = _cli_error(capsys, [*args, "--versions-per-image", "2"])
    assert "--versions-per-image 2" in message and "1 fog densities" in message
    assert not (root / "W").exists()


def test_fog_versions_of_a_faint_fog_are_named_so_that_they_pair(voc_root):
    # β 5e-05 written as "<id>_5e-05" matched no <id>_<beta> pattern: every such version was
    # left without its clean original and annotation.
    root, scenes = voc_root
    fog = ["data", "fog", "--voc-root", str(root), "--out-dir", "F", "--beta-step", "0"]
    assert (
        main([*fog, "--beta-min", "0.00001", "--beta-max", "0.00009", "--versions-per-image", "2"])
        == 0
    )
    names = sorted(path.stem for path in (root / "F").glob("*.jpg"))
    assert len(names) == 2 * len(scenes.samples)
    assert all("e" not in name.split("_", 1)[1] for name in names), names
    assert len(VocFogDataset(root, "train", CLASSES, hazy_dir="F")) == 2 * len(scenes.samples)


def test_fog_versions_share_the_label_file_voc2yolo_wrote_for_their_image(voc_root):
    # voc2yolo writes <id>.txt, fog versions are <id>_<beta>.jpg: every sample was skipped as
    # "label file missing", and training stopped on an empty set.
    root, scenes = voc_root
    fog = ["data", "fog", "--voc-root", str(root), "--out-dir", "V", "--beta-min", "0.05"]
    assert (
        main([*fog, "--beta-max", "0.06", "--beta-step", "0.01", "--versions-per-image", "2"]) == 0
    )
    labels = root / "labels"
    assert main(["data", "voc2yolo", "--voc-root", str(root), "--out", str(labels)]) == 0
    issues = DataIssues()
    yolo = YoloFogDataset(root / "V", labels, CLASSES, issues=issues)
    assert len(yolo) == 2 * len(scenes.samples) and issues.counts() == {}
    by_id = {sample.image_id: sample for sample in scenes.samples}
    for record in yolo.records:
        clean_id = record.image_id.rsplit("_", 1)[0]
        assert record.image_id != clean_id  # a foggy version, labelled by its image's file
        np.testing.assert_allclose(record.annotation.boxes, by_id[clean_id].boxes, atol=0.01)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_tagged_photos_keep_their_boxes_on_the_object(tmp_path, capsys, orientation):
    # A phone photo stored 80 wide x 40 high with an EXIF tag saying "turn it for display";
    # its box was drawn on the stored grid (<size> 80x40), as upstream's PIL reader and
    # LabelImg see it. Every reader must hand out that grid: fog synthesis, the VOC and YOLO
    # datasets (pixels and label size alike) and voc2yolo.
    from support.exif_jpeg import BLOCK_BOX, white_block_photo

    from togethernet_ros.training.voc_xml import write_voc_xml

    root = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    data, _ = white_block_photo(orientation)
    (root / "JPEGImages" / "IMG_0001.JPG").write_bytes(data)
    write_voc_xml(
        root / "Annotations" / "IMG_0001.xml", "IMG_0001.JPG", 80, 40, [BLOCK_BOX], [0], CLASSES
    )
    (root / "ImageSets" / "Main" / "train.txt").write_text("IMG_0001\n")
    assert main(["data", "fog", "--voc-root", str(root), "--beta-max", "0.05"]) == 0
    assert cv2.imread(str(root / "FOG" / "IMG_0001.jpg")).shape == (40, 80, 3)

    def on_the_block(sample):
        x1, y1, x2, y2 = (int(v) for v in sample.boxes[0])
        assert sample.hazy.shape == sample.clean.shape == (40, 80, 3)
        inside, outside = sample.clean[y1:y2, x1:x2], sample.clean[:, x2 + 4 :]
        assert inside.mean() > 240 and outside.mean() < 15
        assert sample.hazy[y1:y2, x1:x2].mean() > sample.hazy[:, x2 + 4 :].mean() + 100
        return [x1, y1, x2, y2]

    voc = VocFogDataset(root, "train", CLASSES)
    assert on_the_block(voc[0]) == [0, 0, 20, 40] and not voc.issues.issues
    labels = tmp_path / "labels"
    assert main(["data", "voc2yolo", "--voc-root", str(root), "--out", str(labels)]) == 0
    yolo = YoloFogDataset(root / "FOG", labels, CLASSES, clean_dir=root / "JPEGImages")
    assert on_the_block(yolo[0]) == [0, 0, 20, 40] and not yolo.issues.issues
    # YOLO labels normalised by a size taken from the pixels, not from the XML.
    (root / "Annotations" / "IMG_0001.xml").write_text(
        (root / "Annotations" / "IMG_0001.xml").read_text().replace("<width>80", "<width>0")
    )
    assert main(["data", "voc2yolo", "--voc-root", str(root), "--out", str(labels)]) == 0
    written = (labels / "IMG_0001.txt").read_text().split()
    assert written == ["0", "0.125000", "0.500000", "0.250000", "1.000000"]
    capsys.readouterr()


def test_a_voc_size_that_disagrees_with_the_image_is_reported_and_the_image_wins(tmp_path, capsys):
    # The image is 100x80 with an object at x 60..95. One XML carries a template <size>
    # (500x375), one a turned one (80x100): clipping to it, or normalising YOLO labels by it,
    # put the boxes somewhere else without a word. Upstream reads boxes as image pixels.
    from togethernet_ros.evaluation.dataset_truth import record_ground_truth
    from togethernet_ros.training.voc_xml import write_voc_xml

    root = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    image = np.zeros((80, 100, 3), np.uint8)
    image[10:70, 60:95] = 255
    box = [60.0, 10.0, 95.0, 70.0]
    for image_id, size in {"template": (500, 375), "turned": (80, 100), "right": (100, 80)}.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.png"), image)
        xml = root / "Annotations" / f"{image_id}.xml"
        write_voc_xml(xml, f"{image_id}.png", *size, [box], [0], CLASSES)
    (root / "ImageSets" / "Main" / "train.txt").write_text("template\nturned\nright\n")

    dataset = VocFogDataset(root, "train", CLASSES, hazy_dir=None)
    assert [dataset[i].boxes.tolist() for i in range(3)] == [[box]] * 3
    truth = record_ground_truth(dataset)
    assert all(gt.boxes.tolist() == [box] for gt in truth.values())
    assert {(gt.width, gt.height) for gt in truth.values()} == {(100, 80)}
    problems = sorted(issue.describe() for issue in dataset.issues.issues)
    assert len(problems) == 2 and dataset.issues.counts() == {"image size used": 2}
    assert "template.xml: <size> 500x375 disagrees with the image file's 100x80" in problems[0]
    assert "turned.xml: <size> 80x100 disagrees" in problems[1] and "EXIF" in problems[1]

    labels = tmp_path / "labels"
    assert main(["data", "voc2yolo", "--voc-root", str(root), "--out", str(labels)]) == 0
    assert "2 × image size used" in capsys.readouterr().out
    for image_id in ("template", "turned", "right"):
        written = (labels / f"{image_id}.txt").read_text().split()
        assert written == ["0", "0.775000", "0.500000", "0.350000", "0.750000"], image_id
    yolo = YoloFogDataset(root / "JPEGImages", labels, CLASSES)
    assert all(np.allclose(yolo[i].boxes, [box]) for i in range(3))


def test_fog_writes_a_panorama_too_wide_for_jpeg_as_png(tmp_path, capsys):
    # cv2.imwrite returns False for a JPEG wider than 65500 px: the foggy file was never
    # written, yet listed in fog_params.csv and counted as written.
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    panorama = np.full((2, 65600, 3), 200, np.uint8)
    cv2.imwrite(str(root / "JPEGImages" / "pano.png"), panorama)
    cv2.imwrite(str(root / "JPEGImages" / "small.png"), panorama[:, :300])
    assert main(["data", "fog", "--voc-root", str(root), "--depth-slope", "0"]) == 0
    assert "wrote 2 foggy images" in capsys.readouterr().out
    with (root / "FOG" / "fog_params.csv").open() as handle:
        files = [row["file"] for row in csv.DictReader(handle)]
    assert files == ["pano.png", "small.jpg"]
    assert cv2.imread(str(root / "FOG" / "pano.png")).shape == (2, 65600, 3)


def test_every_reader_takes_the_image_suffixes_predict_takes(tmp_path):
    # A .ppm (or .PPM) image that predict reads was silently left out of a YOLO dataset, a
    # VOC-FOG pairing and a distill frame folder.
    from togethernet_ros.distill.frame_sources import iter_source_frames
    from togethernet_ros.inference.media import MediaSource

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    picture = np.full((30, 40, 3), 90, np.uint8)
    for name in ("a.jpg", "b.ppm", "c.PPM", "d.TIFF", "e.WebP"):
        cv2.imwrite(str(images / name.lower()), picture)
        (images / name.lower()).rename(images / name)
        (labels / f"{name.split('.')[0]}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    read_by_predict = MediaSource(images).files
    dataset = YoloFogDataset(images, labels, CLASSES)
    assert sorted(r.hazy_path for r in dataset.records) == read_by_predict
    assert len(read_by_predict) == 5 and not dataset.issues.issues
    assert len(list(iter_source_frames(images, holdout_fraction=0.2))) == 5


def test_voc2yolo_leaves_difficult_objects_out_unless_asked(voc_root):
    # YOLO labels have no difficult flag: written, they were trained on (upstream leaves them
    # out) and scored as objects to find by validation, where VOC ignores them.
    root, _ = voc_root
    (root / "Annotations" / "00001.xml").write_text(
        "<annotation><size><width>128</width><height>96</height></size>"
        f"{_object('car', (10, 10, 50, 40))}{_object('person', (60, 20, 90, 80), difficult=1)}"
        "</annotation>"
    )
    args = ["data", "voc2yolo", "--voc-root", str(root), "--classes", ",".join(CLASSES)]
    assert main([*args, "--out", str(root / "plain")]) == 0
    assert [
        line.split()[0] for line in (root / "plain" / "00001.txt").read_text().splitlines()
    ] == [str(CLASSES.index("car"))]
    assert main([*args, "--out", str(root / "all"), "--keep-difficult"]) == 0
    kept = [line.split()[0] for line in (root / "all" / "00001.txt").read_text().splitlines()]
    assert kept == [str(CLASSES.index("car")), str(CLASSES.index("person"))]


def test_a_class_named_like_a_folder_here_is_a_class(tmp_path, monkeypatch):
    from togethernet_ros.training.class_list import parse_class_names

    monkeypatch.chdir(tmp_path)
    (tmp_path / "car").mkdir()  # a folder that happens to share the class's name
    assert parse_class_names("car") == ("car",)
    with pytest.raises(ValueError, match=r"class names file car is not a file"):
        parse_class_names("./car")
