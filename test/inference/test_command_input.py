"""`export` and `bench` given bad options: one line naming the option, before any long work."""

from __future__ import annotations

import pytest

from togethernet_ros.cli import main

# Should a check regress, bench would measure for real (minutes at its defaults): keep it short.
QUICK_BENCH = [
    *("--input-sizes", "128", "--backends", "torch", "--restore", "off", "--no-baseline"),
    *("--rounds", "1", "--iterations", "1", "--warmup", "0", "--matmul-size", "64", "--no-rss"),
]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-sizes", "0", "argument --batch-sizes: must be >= 1, got 0"),
        ("--batch-sizes", "1,x", "argument --batch-sizes: expected a whole number, got 'x'"),
        ("--backends", "tensorrt", "unknown backend 'tensorrt'; use torch and/or onnxruntime"),
        ("--backends", ",", "argument --backends: expected a comma-separated list"),
        ("--rounds", "0", "argument --rounds: must be >= 1, got 0"),
        ("--iterations", "0", "argument --iterations: must be >= 1, got 0"),
        ("--warmup", "-1", "argument --warmup: must be >= 0, got -1"),
        ("--threads", "0", "argument --threads: must be >= 1, got 0"),
        ("--matmul-size", "0", "argument --matmul-size: must be >= 1, got 0"),
    ],
)
def test_bench_refuses_bad_numbers_and_backends(checkpoint_path, capsys, option, value, message):
    # Before: batch size 0 failed inside the detector naming max_batch_size, an empty backend
    # list benchmarked nothing, and a matmul size of 0 divided by zero after the benchmark.
    with pytest.raises(SystemExit) as info:
        main(["bench", "--weights", str(checkpoint_path), *QUICK_BENCH, option, value])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_refuses_an_unwritable_json_path_before_measuring(tmp_path, checkpoint_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    common = ["bench", "--weights", str(checkpoint_path), *QUICK_BENCH]
    assert main([*common, "--json", str(blocker / "report.json")]) == 2
    captured = capsys.readouterr()  # once: a second read would only see output since the first
    assert f"--json {blocker / 'report.json'}: {blocker} is a file, not a folder" in captured.err
    assert captured.out == "", captured.out  # no table: nothing was measured
    assert main([*common, "--json", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err


def test_export_checks_int8_calibration_footage_before_exporting(tmp_path, checkpoint_path, capsys):
    empty = tmp_path / "footage"
    empty.mkdir()
    output = tmp_path / "model.onnx"
    common = ["export", "--weights", str(checkpoint_path), "--output", str(output)]
    assert main([*common, "--input-size", "128", "--int8-calibration", str(empty)]) == 2
    assert "no images" in capsys.readouterr().err
    missing = tmp_path / "nope.mp4"
    assert main([*common, "--input-size", "128", "--int8-calibration", str(missing)]) == 2
    assert f"source not found: {missing}" in capsys.readouterr().err
    (empty / "frame.png").write_bytes(b"")  # present, so the fog list is what is refused
    assert main([*common, "--int8-calibration", str(empty), "--int8-fog", "0,thick"]) == 2
    assert "--int8-fog: 'thick' is not a number" in capsys.readouterr().err
    # Nothing exported: the float32 files used to be written before the footage was read.
    assert list(tmp_path.glob("*.onnx")) == []


def test_export_refuses_an_output_under_a_file(tmp_path, checkpoint_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    target = blocker / "model.onnx"
    assert main(["export", "--weights", str(checkpoint_path), "--output", str(target)]) == 2
    assert f"--output {target}: {blocker} is a file, not a folder" in capsys.readouterr().err
