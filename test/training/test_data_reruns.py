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
