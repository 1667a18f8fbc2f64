"""int8 copies of an export: naming, calibration, metadata, accuracy against float32, CLI."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from togethernet_ros.inference.export import read_onnx_info
from togethernet_ros.inference.int8_quantization import (
    calibration_frames,
    calibration_inputs,
    compare_int8,
    int8_path,
    quantize_int8,
)
from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector

from .conftest import INPUT_SIZE, run_export_command, scene


def test_int8_files_keep_the_pair_naming(tmp_path):
    assert int8_path(tmp_path / "m.onnx") == tmp_path / "m.int8.onnx"
    assert int8_path(tmp_path / "m.detect.onnx") == tmp_path / "m.int8.detect.onnx"
    with pytest.raises(ValueError, match=r"must end with \.onnx"):
        int8_path(tmp_path / "m.pt")


def test_calibration_frames_are_spread_over_the_source(tmp_path):
    for index in range(10):
        cv2.imwrite(str(tmp_path / f"f{index:02d}.png"), np.full((8, 8, 3), index, np.uint8))
    frames = calibration_frames(tmp_path, 3)
    assert [int(frame[0, 0, 0]) for frame in frames] == [0, 4, 8]
    inputs = calibration_inputs(frames[:1], INPUT_SIZE, fog_betas=(0.0, 0.1))
    assert len(inputs) == 2 and inputs[0].shape == (1, 3, *INPUT_SIZE)
    assert not np.array_equal(inputs[0], inputs[1])  # the second copy is fogged
    with pytest.raises(ValueError, match=">= 1"):
        calibration_frames(tmp_path, 0)


@pytest.fixture(scope="module")
def int8_pair(onnx_pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    inputs = calibration_inputs(
        [scene(300, 500, seed=seed) for seed in range(4)], INPUT_SIZE, (0.0, 0.1)
    )
    written = {}
    for source in (onnx_pair, onnx_pair.with_name("model.detect.onnx")):
        copy = folder / source.name
        shutil.copy(source, copy)
        written[source.name] = quantize_int8(copy, int8_path(copy), inputs)
    return folder, written, inputs


def test_int8_copy_is_self_describing_smaller_and_close_to_float32(int8_pair):
    folder, written, inputs = int8_pair
    for name, path in written.items():
        source = read_onnx_info(folder / name)
        info = read_onnx_info(path)
        assert info.metadata["precision"] == "int8"
        assert info.metadata["int8_calibration_inputs"] == str(len(inputs))
        assert (info.input_size, info.class_names, info.restore) == (
            source.input_size,
            source.class_names,
            source.restore,
        )
        assert path.stat().st_size < 0.6 * (folder / name).stat().st_size
    check = compare_int8(folder / "model.detect.onnx", written["model.detect.onnx"], inputs)
    assert check["detections_compared"] > 0
    assert check["detections_found_again"] >= 0.8
    assert 0 < check["score_error_p50"] <= check["score_error_p99"] < 0.5


def test_detector_runs_the_int8_pair_and_names_it(int8_pair):
    _, written, _ = int8_pair
    detector = OnnxRuntimeDetector(written["model.onnx"], conf_threshold=0.3, nms_threshold=0.45)
    assert detector.backend == "onnxruntime-CPUExecutionProvider-int8"
    (result,) = detector.detect([scene(300, 500, seed=9)], restore=True)
    assert result.dehazed.shape == (300, 500, 3)


def test_untrained_exports_are_not_calibrated(tmp_path, onnx_pair):
    import onnx

    proto = onnx.load(str(onnx_pair))
    for entry in proto.metadata_props:
        if entry.key == "togethernet.untrained":
            entry.value = "1"
    untrained = tmp_path / "u.onnx"
    onnx.save(proto, str(untrained))
    with pytest.raises(ValueError, match="UNTRAINED"):
        quantize_int8(untrained, tmp_path / "u.int8.onnx", [np.zeros((1, 3, 8, 8), np.float32)])


def test_export_command_writes_and_checks_int8_copies(checkpoint_path, tmp_path):
    for seed in range(3):
        cv2.imwrite(str(tmp_path / f"cal{seed}.png"), scene(240, 320, seed=seed))
    text = run_export_command(
        checkpoint_path,
        tmp_path / "out" / "m.onnx",
        "--variant",
        "detect",
        "--no-verify",
        "--int8-calibration",
        str(tmp_path),
        "--int8-frames",
        "3",
        "--int8-fog",
        "0,0.1",
    )
    assert (tmp_path / "out" / "m.int8.detect.onnx").is_file()
    assert "3 frames × 2 fog densities" in text and "detections found again" in text
