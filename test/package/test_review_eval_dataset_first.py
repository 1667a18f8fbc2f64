"""`eval --weights` names a missing dataset before it loads the model (review of today's changes).

Since eval reads the dataset with the model's own classes, the model is opened first; a run
without a dataset, or with a dataset folder that is not there, then spent the model load (and on
a GPU a TensorRT engine build) before saying so, or reported the weights instead.
"""

from __future__ import annotations

import pytest

from togethernet_ros.cli import main


@pytest.fixture
def unloadable_weights(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"not a checkpoint")
    return path


def test_eval_without_a_dataset_says_so_before_opening_the_weights(
    unloadable_weights, tmp_path, capsys
):
    status = main(["eval", "--weights", str(unloadable_weights), "--out-dir", str(tmp_path / "o")])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error == "eval: give --voc-root, or --yolo-images with --yolo-labels"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--voc-root", "{missing}"], "--voc-root"),
        (["--yolo-images", "{missing}", "--yolo-labels", "{here}"], "--yolo-images"),
        (["--yolo-images", "{here}", "--yolo-labels", "{missing}"], "--yolo-labels"),
    ],
)
def test_eval_names_a_missing_dataset_folder_before_opening_the_weights(
    unloadable_weights, tmp_path, capsys, options, named
):
    missing, here = tmp_path / "missing", tmp_path
    given = [option.format(missing=missing, here=here) for option in options]
    status = main(
        ["eval", "--weights", str(unloadable_weights), "--out-dir", str(tmp_path / "o"), *given]
    )
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error == f"eval: {named} {missing} is not a folder"
