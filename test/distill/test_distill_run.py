"""`togethernet distill` end to end on the real footage and teacher: export, train, report, ship."""

from __future__ import annotations

import json

import pytest
import torch
from support.cli_refusal import refused
from support.sample_video_frames import sample_video

from togethernet_ros.cli import main
from togethernet_ros.distill.model_card import sha256_of
from togethernet_ros.distill.pseudo_labels import load_pseudo_labels
from togethernet_ros.model import load_checkpoint

from .real_inputs import real_teacher


@pytest.mark.slow
def test_export_then_train_from_the_export_writes_report_and_fp16_weights(tmp_path):
    real_teacher()  # skips with the reason when npm cannot fetch the teacher
    video = sample_video()
    exported = tmp_path / "export"
    assert (
        main(["distill", str(video), "--max-frames", "10", "--export-dataset", str(exported)]) == 0
    )
    label_set = load_pseudo_labels(exported)
    assert len(label_set.frames) == 10 and len(label_set.split(heldout=True)) == 2
    assert label_set.label_counts()["person"] >= 30  # ~6-8 people per vtest frame
    assert (exported / "teacher.onnx").is_file()  # a GPU machine needs no npm
    assert not (tmp_path / "run").exists()

    run_dir, weights = tmp_path / "run", tmp_path / "models" / "demo.pt"
    argv = ["distill", "--dataset", str(exported), "--output", str(run_dir)]
    argv += ["--input-size", "128", "--epochs", "1", "--batch-size", "4", "--workers", "0"]
    argv += ["--fog-variants", "1", "--eval-betas", "0,0.1", "--eval-max-frames", "2"]
    argv += ["--train-override", "output.progress_bar=false", "--weights-out", str(weights)]
    assert main(argv) == 0

    report = json.loads((run_dir / "heldout_report.json").read_text())
    assert report["heldout_frames"] == 2 and [row["beta"] for row in report["rows"]] == [0.0, 0.1]
    clear, foggy = report["rows"]
    assert clear["teacher_map"] >= 0.9  # the teacher against its own clear-frame labels
    assert foggy["teacher_map"] is not None and 0.0 <= foggy["student_map"] <= 1.0
    assert clear["hazy_psnr"] is None and clear["hazy_ssim"] == pytest.approx(1.0)
    assert foggy["hazy_psnr"] < 25 and foggy["dehazed_psnr"] > 0
    assert (run_dir / "heldout_report.png").stat().st_size > 10_000

    loaded = load_checkpoint(weights)
    assert loaded.class_names == ("person", "bicycle", "car", "motorbike", "bus")
    assert loaded.metadata["distilled"] and loaded.metadata["input_size"] == 128
    raw = torch.load(weights, weights_only=True)
    assert {v.dtype for v in raw["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    assert weights.stat().st_size < 40e6
    card = weights.with_suffix(".md").read_text()
    assert sha256_of(weights) in card and "Apache-2.0" in card and "| 0.100 |" in card


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be >= 1"),
        (["--input-size", "100"], "model.input_size must be a multiple of 128"),
        (["--train-override", "train.lr=abc"], "config key train.lr must be float"),
        (["--beta-min", "0.5", "--beta-max", "0.1"], "need 0 <= beta_min <= beta_max"),
        (["--weights-out", "."], "--weights-out . is a folder"),
        (
            ["--init", "start.pt", "--weights-out", "./start.pt"],
            "--weights-out ./start.pt is the --init checkpoint",
        ),
    ],
)
def test_bad_training_options_stop_the_run_before_any_labelling(tmp_path, capsys, options, message):
    frames = tmp_path / "frames"
    frames.mkdir()
    output = tmp_path / "out"
    refused(capsys, ["distill", str(frames), "--output", str(output), *options], message)
    assert not output.exists()  # the teacher never ran, nothing was written
