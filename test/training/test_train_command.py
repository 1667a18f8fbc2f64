"""`togethernet train` on a VOC-FOG folder, then `togethernet eval --weights` on its checkpoint."""

import csv
import json

import pytest
from support.cli_refusal import refused
from support.train_configs import tiny_train_command

from togethernet_ros.cli import main
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset


def test_train_command_rejects_unknown_keys(capsys):
    refused(capsys, ["train", "--set", "model.widht=0.25"], r"unknown config key\(s\) model\.widht")


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


def test_train_setup_errors_exit_in_one_line_naming_the_problem(tmp_path, capsys):
    classes = ["person", "bicycle", "car"]
    scenes = SyntheticFogDataset(2, 128, 128, num_classes=3, seed=5)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, classes)
    classes_set = f"data.class_names=[{','.join(classes)}]"
    run = tiny_train_command(root, tmp_path / "run", classes_set, "data.val_set=null")
    message = refused(capsys, [*run, "--set", "train.batch_size=4"])
    assert message.splitlines()[-1] == (
        "train: training set has 2 samples: fewer than one batch of 4 per process "
        "(world size 1); lower train.batch_size"
    )
    (root / "ImageSets" / "Main" / "empty.txt").write_text("")
    refused(
        capsys, [*run, "--set", "data.train_set=empty"], r"(?m)^train: the training set is empty"
    )
    (root / "FOG" / "00001.png").unlink()
    refused(
        capsys,
        [*run, "--set", "data.strict=true"],
        r"(?m)^train: .*FOG/00001: foggy image missing \(strict",
    )


def test_empty_validation_set_and_resume_with_other_classes(tmp_path, capsys):
    classes = ["person", "bicycle", "car"]
    scenes = SyntheticFogDataset(2, 128, 128, num_classes=3, seed=5)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, classes)
    (root / "ImageSets" / "Main" / "val.txt").write_text("")
    out = tmp_path / "run"
    run = tiny_train_command(root, out, f"data.class_names=[{','.join(classes)}]")
    assert main(run) == 0
    printed = capsys.readouterr().out
    # An empty validation set scores NaN: no validation and no "best" checkpoint from it.
    assert "validation set has no usable samples" in printed
    assert (out / "last.pt").is_file() and not (out / "best.pt").exists()
    other = tiny_train_command(root, tmp_path / "run2", "data.class_names=[person,car]")
    resume = [*other, "--set", f"resume={out / 'last.pt'}", "--set", "train.epochs=2"]
    message = refused(capsys, resume).splitlines()[-1]
    assert message.startswith(f"train: {out / 'last.pt'} was trained with 3 classes")
    assert "this run has 2: ['person', 'car']" in message and "\n" not in message


def test_a_diverged_run_exits_1_not_the_usage_error_2(monkeypatch, capsys):
    """Divergence is a bad result of a run that started, not a refused input."""
    from togethernet_ros.training import train_command, trainer

    def diverge(*_args, **_kwargs):
        raise FloatingPointError("loss became nan in epoch 1 (step 0)")

    monkeypatch.setattr(train_command, "build_datasets", lambda data: (None, None))
    monkeypatch.setattr(trainer, "train", diverge)
    assert main(["train", "--set", "output.tensorboard=false"]) == 1
    assert "train: loss became nan in epoch 1" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["data.val_images", "data.val_labels"])
def test_a_half_given_yolo_validation_set_is_refused_not_dropped(tmp_path, capsys, given):
    # Validation needs both folders; with one of them the run used to train without any
    # validation (and without best.pt), saying nothing about the key it was given.
    run = ["train", "--set", "data.format=yolo", "--set", f"data.train_images={tmp_path}"]
    run += ["--set", f"data.train_labels={tmp_path}", "--set", f"{given}={tmp_path}"]
    message = refused(capsys, run)
    assert "set data.val_images and data.val_labels together" in message


def test_validation_keeps_foggy_images_whose_clean_original_is_missing(tmp_path, capsys):
    # As eval scores a foggy set: validation never reads the clean originals, so a missing one
    # (RTTS has none) must not take its foggy image out of the validation score.
    from togethernet_ros.training.train_command import build_datasets
    from togethernet_ros.training.train_config import DataConfig

    classes = ("person", "bicycle", "car")
    scenes = SyntheticFogDataset(3, 128, 128, num_classes=3, seed=5)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, classes)
    missing = sorted((root / "JPEGImages").iterdir())[0]
    missing.unlink()
    config = DataConfig(root=str(root), val_set="train", class_names=classes)
    train_set, val_set = build_datasets(config)
    capsys.readouterr()
    assert len(train_set) == 2  # training needs the clean original as its target
    assert len(val_set) == 3
    assert missing.stem in {record.hazy_path.stem for record in val_set.records}
