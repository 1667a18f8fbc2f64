"""`togethernet eval` refuses option values outside their meaning, naming the option."""

from __future__ import annotations

import pytest
from support.cli_refusal import refused


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("abc", r"argument --iou: expected a number in \(0, 1\], got 'abc'"),
        ("0", r"argument --iou: must be in \(0, 1\], got 0"),
        ("nan", r"argument --iou: must be in \(0, 1\], got nan"),
    ],
)
def test_iou_threshold_outside_0_to_1_is_refused(capsys, tmp_path, value, pattern):
    refused(capsys, ["eval", "--detections", str(tmp_path / "d.json"), "--iou", value], pattern)


def test_batch_size_that_is_not_a_number_is_refused(capsys, tmp_path):
    refused(
        capsys,
        ["eval", "--detections", str(tmp_path / "d.json"), "--batch-size", "two"],
        r"argument --batch-size: expected a whole number, got 'two'",
    )


def test_batch_size_is_the_model_batch(tmp_path, monkeypatch):
    # --batch-size sets how many images go through the model at once, also above the
    # detector's default cap of 16.
    from togethernet_ros.cli import main
    from togethernet_ros.inference.torch_detector import TorchDetector
    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

    names = ("person", "bicycle", "car", "motorbike", "bus")
    scenes = SyntheticFogDataset(18, 96, 96, num_classes=5, seed=1)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, names, image_set="test")
    batches = []
    infer = TorchDetector._infer

    def counting(self, prepared, restore):
        batches.append(prepared)
        return infer(self, prepared, restore)

    monkeypatch.setattr(TorchDetector, "_infer", counting)
    run = ["eval", "--voc-root", str(root), "--weights", "", "--allow-untrained"]
    run += ["--input-size", "128", "--device", "cpu", "--no-plots", "--no-coco"]
    assert main([*run, "--batch-size", "18", "--out-dir", str(tmp_path / "out")]) == 0
    assert batches == [18]
