"""`togethernet data fog` run again on its own output folder."""

import csv

from togethernet_ros.cli import main
from togethernet_ros.training.paired_dataset import VocFogDataset
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

CLASSES = ("person", "bicycle", "car")


def test_fogging_again_with_other_versions_replaces_the_earlier_files(tmp_path, capsys):
    # A second run with --versions-per-image 2 wrote <id>_<beta> files next to the first run's
    # <id>.jpg; the trainer pairs the exact name first, so it went on training on the old
    # single version and never saw the new ones (fog_params.csv listed only the new files).
    scenes = SyntheticFogDataset(4, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    base = ["data", "fog", "--voc-root", str(root), "--out-dir", "V", "--beta-min", "0.05"]
    base += ["--beta-max", "0.06", "--beta-step", "0.01"]
    assert main(base) == 0
    assert main([*base, "--versions-per-image", "2"]) == 0
    with (root / "V" / "fog_params.csv").open() as handle:
        listed = sorted(row["file"] for row in csv.DictReader(handle))
    on_disk = sorted(path.name for path in (root / "V").iterdir() if path.suffix == ".jpg")
    assert on_disk == listed and len(listed) == 2 * len(scenes.samples)
    dataset = VocFogDataset(root, "train", CLASSES, hazy_dir="V")
    assert sorted(record.hazy_path.name for record in dataset.records) == listed
    # Files data fog did not write stay where they are.
    (root / "V" / "mine.txt").write_text("notes")
    assert main(base) == 0
    assert (root / "V" / "mine.txt").read_text() == "notes"
    assert sorted(path.name for path in (root / "V").iterdir() if path.suffix == ".jpg") == [
        f"{sample.image_id}.jpg" for sample in scenes.samples
    ]


def _foggy_files(folder):
    return sorted(path.name for path in folder.iterdir() if path.suffix in (".jpg", ".png"))


def _listed(folder):
    with (folder / "fog_params.csv").open(encoding="utf-8") as handle:
        return sorted(row["file"] for row in csv.DictReader(handle))


def test_a_fog_run_that_stopped_midway_leaves_nothing_the_next_run_keeps(tmp_path, capsys):
    # The stopped run's <id>.jpg files were listed nowhere: the next run kept them, and the
    # trainer took them (exact names first) instead of the new <id>_<beta> versions.
    scenes = SyntheticFogDataset(4, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    ids = [sample.image_id for sample in scenes.samples]
    base = ["data", "fog", "--voc-root", str(root), "--out-dir", "V", "--beta-min", "0.05"]
    base += ["--beta-max", "0.08", "--beta-step", "0.01"]
    blocker = root / "V" / f"{ids[2]}.jpg"
    blocker.mkdir(parents=True)  # cv2.imwrite fails on the third image, as on a full disk
    assert main(base) != 0
    assert "cannot write" in capsys.readouterr().err
    assert _foggy_files(root / "V") == [f"{ids[0]}.jpg", f"{ids[1]}.jpg", blocker.name]
    blocker.rmdir()
    assert main([*base, "--versions-per-image", "3"]) == 0
    assert _foggy_files(root / "V") == _listed(root / "V")
    assert len(_listed(root / "V")) == 3 * len(ids)
    assert not (root / "V" / "fog_params.csv.part").exists()


def test_fogging_one_image_set_keeps_the_others(tmp_path, capsys):
    scenes = SyntheticFogDataset(6, 96, 128, num_classes=3, seed=2)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    assert main(["data", "split", "--voc-root", str(root), "--ratios", "0.5", "0.5", "0"]) == 0
    sets = root / "ImageSets" / "Main"
    train, val = ((sets / f"{name}.txt").read_text().split() for name in ("train", "val"))
    base = ["data", "fog", "--voc-root", str(root), "--out-dir", "V"]
    assert main([*base, "--image-set", "train"]) == 0
    assert main([*base, "--image-set", "val", "--versions-per-image", "2"]) == 0
    files = _foggy_files(root / "V")
    assert files == _listed(root / "V")
    assert [name for name in files if name[:-4] in train] == [f"{i}.jpg" for i in sorted(train)]
    assert len([name for name in files if name.split("_")[0] in val]) == 2 * len(val)
    assert "(the 3 of other images kept)" in capsys.readouterr().out


def test_a_beta_range_with_fewer_file_names_than_versions_is_refused_up_front(tmp_path, capsys):
    # 0.1 .. 0.10004 in steps of 1e-5 are five densities but only two names (0.1, 0.1001):
    # the run deleted the earlier files, wrote one version and only then refused.
    scenes = SyntheticFogDataset(2, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    base = ["data", "fog", "--voc-root", str(root), "--out-dir", "V"]
    assert main(base) == 0
    before = _foggy_files(root / "V")
    narrow = ["--beta-min", "0.1", "--beta-max", "0.10004", "--versions-per-image", "3"]
    for step in ("0.00001", "0"):
        assert main([*base, *narrow, "--beta-step", step]) == 2
        assert "needs as many distinct fog densities" in capsys.readouterr().err
        assert _foggy_files(root / "V") == before == _listed(root / "V")


def test_split_counts_add_up_and_a_zero_ratio_gets_no_image():
    from togethernet_ros.training.data_command import split_ids

    ids = [f"{index:03d}" for index in range(5)]
    # Rounded one by one these were 4/0/1 and 2/2/1: an image in a split asked to be empty.
    for ratios, counts in [
        ((0.9, 0.1, 0.0), (4, 1, 0)),
        ((0.5, 0.5, 0.0), (3, 2, 0)),
        ((0.8, 0.1, 0.1), (4, 1, 0)),
        ((1, 1, 1), (2, 2, 1)),
    ]:
        subsets = split_ids(ids, ratios, seed=0)
        assert tuple(len(subsets[name]) for name in ("train", "val", "test")) == counts, ratios
        assert sorted(image for subset in subsets.values() for image in subset) == ids


def test_voc2yolo_refuses_other_classes_than_the_labels_it_keeps_are_numbered_by(tmp_path, capsys):
    scenes = SyntheticFogDataset(6, 96, 128, num_classes=3, seed=2)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    assert main(["data", "split", "--voc-root", str(root), "--ratios", "0.5", "0.5", "0"]) == 0
    base = ["data", "voc2yolo", "--voc-root", str(root), "--out", str(root / "labels")]
    assert main([*base, "--image-set", "train", "--classes", ",".join(CLASSES)]) == 0
    before = (root / "labels" / "classes.txt").read_text()
    reordered = ",".join(reversed(CLASSES))
    assert main([*base, "--image-set", "val", "--classes", reordered]) == 2
    assert "would renumber them" in capsys.readouterr().err
    assert (root / "labels" / "classes.txt").read_text() == before
    # The same image set again may change them: its own labels are all rewritten.
    assert main([*base, "--image-set", "train", "--classes", reordered]) == 0


def test_togethernet_fog_is_data_fog(tmp_path, capsys):
    from support.cli_refusal import refused

    # DESIGN.md names `fog` a command of its own; it is the same tool as `data fog`.
    scenes = SyntheticFogDataset(2, 96, 128, num_classes=3, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)
    assert main(["fog", "--voc-root", str(root), "--out-dir", "A", "--seed", "3"]) == 0
    assert main(["data", "fog", "--voc-root", str(root), "--out-dir", "B", "--seed", "3"]) == 0
    assert _foggy_files(root / "A") == _foggy_files(root / "B") != []
    for name in _foggy_files(root / "A"):
        assert (root / "A" / name).read_bytes() == (root / "B" / name).read_bytes()
    refused(
        capsys, ["fog", "--voc-root", str(root), "--airlight", "2"], "togethernet fog: .*--airlight"
    )
