"""voc2yolo reruns delete only label files that voc2yolo itself wrote (review of today's changes)."""

from __future__ import annotations

import pytest

from togethernet_ros.cli import main
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

CLASSES = ("person", "bicycle", "car")


@pytest.fixture
def voc_root(tmp_path):
    scenes = SyntheticFogDataset(3, 96, 128, num_classes=3, seed=4)
    return write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES)


def test_a_broken_annotation_does_not_delete_a_label_file_voc2yolo_never_wrote(voc_root, capsys):
    # The user's own labels folder, converted into for the first time: no earlier run's list.
    out = voc_root / "labels"
    out.mkdir()
    (out / "00001.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # hand-made, not from voc2yolo
    (voc_root / "Annotations" / "00001.xml").write_text("<annotation><object>")
    command = ["data", "voc2yolo", "--voc-root", str(voc_root), "--out", str(out)]
    assert main([*command, "--classes", ",".join(CLASSES)]) == 0
    # Was: deleted as "a label file of an earlier run", although no run had written it.
    assert (out / "00001.txt").read_text() == "0 0.5 0.5 0.2 0.2\n"
    assert "removed" not in capsys.readouterr().out


def test_a_label_an_earlier_run_wrote_goes_when_its_annotation_breaks(voc_root, capsys):
    out = voc_root / "labels"
    command = ["data", "voc2yolo", "--voc-root", str(voc_root), "--out", str(out)]
    command += ["--classes", ",".join(CLASSES)]
    assert main(command) == 0
    assert (out / "00001.txt").is_file()
    (voc_root / "Annotations" / "00001.xml").write_text("<annotation><object>")
    assert main(command) == 0
    assert not (out / "00001.txt").exists()
    assert "removed 1 label files of an earlier run" in capsys.readouterr().out
