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
from togethernet_ros.vision.fog import add_fog

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


def _iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of (N, 4) xyxy boxes, written out in plain numpy."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def test_iou_helper_of_this_file():
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(_iou_xyxy(box, others), [50 / 150, 1.0, 0.0])


def test_int8_detector_finds_the_float32_detections_again(int8_pair):
    """Independent of compare_int8: the public detector on both files over the calibration scenes.

    At least 80% of the float32 detections (all of them, near-threshold ones included) must have
    an int8 detection of the same class with IoU >= 0.5, the IoU computed here in plain numpy.
    """
    folder, written, _ = int8_pair
    frames = [scene(300, 500, seed=seed) for seed in range(4)]  # the fixture's calibration set
    images = frames + [add_fog(frame, 0.1) for frame in frames]
    results = []
    for path, backend in (
        (folder / "model.onnx", "onnxruntime-CPUExecutionProvider"),
        (written["model.onnx"], "onnxruntime-CPUExecutionProvider-int8"),
    ):
        detector = OnnxRuntimeDetector(path, conf_threshold=0.3, nms_threshold=0.45, num_threads=2)
        assert detector.backend == backend  # really the float32 file, then really the int8 one
        results.append(detector.detect(images))
    total = found = 0
    for wanted, got in zip(*results, strict=True):
        wanted, got = wanted.detections, got.detections
        for box, class_id in zip(wanted.boxes, wanted.class_ids, strict=True):
            same = got.boxes[got.class_ids == class_id]
            total += 1
            found += int(len(same) > 0 and _iou_xyxy(box, same).max() >= 0.5)
    assert total >= 20, "too few float32 detections for the comparison to mean anything"
    assert found >= 0.8 * total, f"int8 found only {found} of {total} float32 detections"


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


def test_an_interrupted_quantization_leaves_no_int8_file(tmp_path, monkeypatch):
    import onnxruntime.quantization

    from .test_onnx_gpu_providers import tiny_detect_file

    source = tiny_detect_file(tmp_path)
    target = tmp_path / "tiny.int8.detect.onnx"

    def torn_quantize_static(model_input, model_output, *args, **kwargs):
        # Stopped (Ctrl-C, SIGTERM, a full disk) while the quantizer writes its output.
        with open(model_output, "wb") as handle:
            handle.write(source.read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", torn_quantize_static)
    with pytest.raises(KeyboardInterrupt):
        quantize_int8(source, target, [np.zeros((1, 3, 32, 32), np.float32)])
    # Was: a torn tiny.int8.detect.onnx, which a later run reads as an export.
    assert sorted(path.name for path in tmp_path.iterdir()) == [source.name]

    def copying_quantize_static(model_input, model_output, *args, **kwargs):
        shutil.copy(model_input, model_output)

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", copying_quantize_static)
    assert quantize_int8(source, target, [np.zeros((1, 3, 32, 32), np.float32)]) == target
    assert read_onnx_info(target).metadata["precision"] == "int8"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([source.name, target.name])
