"""`togethernet train` on a VOC-FOG folder, then `togethernet eval --weights` on its checkpoint."""

import csv
import json

import pytest

from togethernet_ros.cli import main
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset


def test_train_command_rejects_unknown_keys(capsys):
    with pytest.raises(SystemExit, match=r"unknown config key\(s\) model\.widht"):
        main(["train", "--set", "model.widht=0.25"])


@pytest.mark.slow
def test_train_then_eval_from_weights_agree(tmp_path):
    classes = "person,bicycle,car"
    scenes = SyntheticFogDataset(4, 128, 128, num_classes=3, seed=5)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, classes.split(","))
    out = tmp_path / "run"
    settings = [
        f"data.root={root}",
        "data.val_set=train",
        f"data.class_names=[{classes}]",
        "data.workers=1",
        "model.input_size=128",
        "model.width=0.125",
        "train.batch_size=2",
        "train.epochs=1",
        "eval.interval=1",
        f"output.dir={out}",
        "output.tensorboard=false",
    ]
    assert main(["train", *[arg for s in settings for arg in ("--set", s)]]) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0
    report = tmp_path / "eval"
    args = ["eval", "--voc-root", str(root), "--image-set", "train", "--classes", classes]
    args += ["--weights", str(out / "last.pt"), "--input-size", "128", "--out-dir", str(report)]
    assert main(args) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    # Same weights, same pre/post-processing and protocol: the trainer's validation mAP and
    # the eval command's agree.
    assert metrics["voc"]["mAP"] == pytest.approx(float(rows[0]["val_mAP"]), abs=1e-5)
