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
