"""Detector backends: same results from PyTorch and ONNX Runtime, batching, options, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from togethernet_ros.inference import Detections, Detector, ImageResult, create_detector
from togethernet_ros.inference.export import export_onnx, onnx_variant_paths
from togethernet_ros.inference.factory import resolve_auto_device, resolve_auto_precision
from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector
from togethernet_ros.inference.torch_detector import TorchDetector
from togethernet_ros.model import (
    DEFAULT_CLASS_NAMES,
    UntrainedWeightsError,
    build_model,
    save_checkpoint,
)

from .conftest import INPUT_SIZE

CONF, NMS = 0.3, 0.45


def assert_same_detections(first: Detections, second: Detections, atol: float = 0.05) -> None:
    """One-to-one match by class, box and score (near-equal scores may swap places)."""
    assert len(first) == len(second)
    unused = np.ones(len(second), dtype=bool)
    for box, score, class_id in zip(first.boxes, first.scores, first.class_ids, strict=True):
        candidates = (
            unused
            & (second.class_ids == class_id)
            & (np.abs(second.scores - score) <= 5e-5)
            & (np.abs(second.boxes - box).max(axis=1) <= atol)
        )
        assert candidates.any(), f"no match for class {class_id} score {score} box {box}"
        unused[np.flatnonzero(candidates)[0]] = False
    assert np.all(np.diff(first.scores) <= 0) and np.all(np.diff(second.scores) <= 0)


@pytest.fixture(scope="module")
def torch_detector(checkpoint_path):
    return create_detector(
        str(checkpoint_path), input_size=INPUT_SIZE, conf_threshold=CONF, nms_threshold=NMS
    )


@pytest.fixture(scope="module")
def onnx_detector(onnx_pair):
    return create_detector(
        None,
        backend="onnxruntime",
        onnx_path=str(onnx_pair),
        input_size=None,
        conf_threshold=CONF,
        nms_threshold=NMS,
        num_threads=2,
    )


def test_torch_and_onnxruntime_agree_with_and_without_restoration(
    torch_detector, onnx_detector, images
):
    assert isinstance(torch_detector, Detector) and isinstance(onnx_detector, Detector)
    assert torch_detector.backend == "torch-cpu-fp32"
    assert onnx_detector.backend == "onnxruntime-CPUExecutionProvider"
    assert onnx_detector.input_size == INPUT_SIZE
    assert torch_detector.class_names == onnx_detector.class_names == DEFAULT_CLASS_NAMES
    from_torch = torch_detector.detect(images, restore=True)
    from_onnx = onnx_detector.detect(images, restore=True)
    assert all(isinstance(result, ImageResult) for result in from_torch)
    assert sum(len(result.detections) for result in from_torch) > 3  # informative weights
    for image, mine, theirs in zip(images, from_torch, from_onnx, strict=True):
        assert_same_detections(mine.detections, theirs.detections)
        assert mine.dehazed.shape == theirs.dehazed.shape == image.shape
        assert mine.dehazed.dtype == np.uint8
        assert np.abs(mine.dehazed.astype(int) - theirs.dehazed.astype(int)).max() <= 1
        boxes = mine.detections.boxes
        assert (boxes[:, [0, 2]] <= image.shape[1]).all() and (
            boxes[:, [1, 3]] <= image.shape[0]
        ).all()
        assert (boxes >= 0).all()
    # Restoration does not change detections, and restore=False returns no image.
    for backend, with_restoration in ((torch_detector, from_torch), (onnx_detector, from_onnx)):
        without = backend.detect(images, restore=False)
        for plain, restored in zip(without, with_restoration, strict=True):
            assert plain.dehazed is None
            assert_same_detections(plain.detections, restored.detections, atol=1e-3)


def test_prepare_ahead_is_done_by_torch_and_declined_by_onnxruntime(
    torch_detector, onnx_detector, images
):
    # ONNX Runtime letterboxes on the host inside detect(): nothing to prepare.
    assert onnx_detector.prepare_ahead("front", images[0]) is False
    fresh = torch_detector.detect([images[0].copy()])[0].detections
    assert torch_detector.prepare_ahead("front", images[0]) is True
    prepared = torch_detector._pipeline._prepared["front"]
    assert prepared.image is images[0]
    # The prepared pixels are used (and consumed) by the batch holding that very array, and
    # give exactly what preparing inside detect() gives.
    ahead = torch_detector.detect(images[:1])[0].detections
    assert torch_detector._pipeline._prepared["front"].image is None
    np.testing.assert_array_equal(ahead.boxes, fresh.boxes)
    np.testing.assert_array_equal(ahead.scores, fresh.scores)
    np.testing.assert_array_equal(ahead.class_ids, fresh.class_ids)
    assert_same_detections(ahead, onnx_detector.detect([images[0].copy()])[0].detections)


def test_batched_equals_one_by_one_and_batches_are_split(torch_detector, images, monkeypatch):
    images = images[::2]
    assert len(images) == 2
    batch_sizes = []
    real_infer = torch_detector._infer

    def recording_infer(prepared: object, restore: bool) -> object:
        batch_sizes.append(prepared)  # the pipeline's batch size
        return real_infer(prepared, restore)

    monkeypatch.setattr(torch_detector, "_infer", recording_infer)
    together = torch_detector.detect(images)
    torch_detector.max_batch_size = 1
    try:
        one_by_one = torch_detector.detect(images)
    finally:
        torch_detector.max_batch_size = 16
    assert batch_sizes == [2, 1, 1]
    for first, second in zip(together, one_by_one, strict=True):
        assert_same_detections(first.detections, second.detections, atol=1e-3)
    assert torch_detector.detect([]) == []


def test_warm_up_runs_every_batch_size_in_each_mode(checkpoint_path, monkeypatch):
    detector = create_detector(
        str(checkpoint_path), input_size=INPUT_SIZE, conf_threshold=CONF, nms_threshold=NMS,
        max_batch_size=3,
    )  # fmt: skip
    calls = []
    real_detect = detector.detect

    def recording_detect(images, restore=False):
        calls.append((len(images), restore, images[0].shape))
        return real_detect(images, restore=restore)

    monkeypatch.setattr(detector, "detect", recording_detect)
    seconds = detector.warm_up()
    shape = (*INPUT_SIZE, 3)
    assert calls == [(n, restore, shape) for restore in (False, True) for n in (1, 2, 3)]
    assert seconds > 0


def test_rgb_input_gives_the_same_result_as_bgr(torch_detector, images):
    bgr = torch_detector.detect(images[:1], restore=True)[0]
    torch_detector.color_order = "rgb"
    try:
        rgb = torch_detector.detect([np.ascontiguousarray(images[0][..., ::-1])], restore=True)[0]
    finally:
        torch_detector.color_order = "bgr"
    assert_same_detections(bgr.detections, rgb.detections, atol=1e-3)
    np.testing.assert_array_equal(rgb.dehazed, bgr.dehazed[..., ::-1])
    # And the colour order matters: feeding BGR as if it were RGB changes the result.
    swapped = torch_detector.detect([np.ascontiguousarray(images[0][..., ::-1])])[0]
    assert len(swapped.detections) != len(bgr.detections) or not np.allclose(
        swapped.detections.scores, bgr.detections.scores
    )


def test_thresholds_are_settable_at_run_time(torch_detector, images):
    torch_detector.conf_threshold = 1.0
    try:
        assert all(len(r.detections) == 0 for r in torch_detector.detect(images[:1]))
        with pytest.raises(ValueError, match="conf_threshold"):
            torch_detector.conf_threshold = 1.5
        with pytest.raises(ValueError, match="nms_threshold"):
            torch_detector.nms_threshold = -0.1
    finally:
        torch_detector.conf_threshold = CONF
    loose = torch_detector.detect(images[:1])[0]
    torch_detector.nms_threshold = 0.9
    try:
        looser = torch_detector.detect(images[:1])[0]
    finally:
        torch_detector.nms_threshold = NMS
    assert len(looser.detections) > len(loose.detections)


def test_refuses_to_run_without_weights(tmp_path, caplog):
    with pytest.raises(UntrainedWeightsError, match="--allow-untrained"):
        create_detector(None)
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        detector = create_detector(None, allow_untrained=True, input_size=INPUT_SIZE)
    assert "UNTRAINED" in caplog.text and detector.untrained
    # An ONNX file exported from untrained weights is refused the same way.
    path = export_onnx(
        build_model(),
        tmp_path / "u.detect.onnx",
        INPUT_SIZE,
        restore=False,
        class_names=DEFAULT_CLASS_NAMES,
        metadata={"untrained": "1"},
    )
    with pytest.raises(UntrainedWeightsError, match="UNTRAINED"):
        OnnxRuntimeDetector(path)
    allowed = OnnxRuntimeDetector(path, allow_untrained=True)
    assert allowed.untrained
    # Only the detection-only file exists: restoration cannot be served, and warm-up knows it.
    assert not allowed.supports_restoration
    with pytest.raises(ValueError, match="dehazed output needs the with-restoration model"):
        allowed.detect([np.zeros((64, 64, 3), np.uint8)], restore=True)
    allowed.max_batch_size = 2
    assert allowed.warm_up() > 0  # restore=False only: no error
    with pytest.raises(ValueError, match="exported for"):
        OnnxRuntimeDetector(path, allow_untrained=True, input_size=(384, 640))


def test_restore_false_falls_back_to_the_full_graph_with_a_warning(tmp_path, onnx_pair, caplog):
    full, _ = onnx_variant_paths(onnx_pair)
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(full.read_bytes())
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        detector = OnnxRuntimeDetector(lonely, conf_threshold=CONF, nms_threshold=NMS)
    assert "no detection-only ONNX" in caplog.text
    result = detector.detect([np.zeros((64, 64, 3), np.uint8)], restore=False)[0]
    assert result.dehazed is None


def test_auto_device_and_precision(checkpoint_path, monkeypatch):
    assert resolve_auto_precision("auto", "cuda") == "fp16"
    assert resolve_auto_precision("auto", "cuda:1") == "fp16"
    assert resolve_auto_precision("auto", "cpu") == "fp32"
    assert resolve_auto_precision("fp32", "cuda") == "fp32"  # an explicit choice stands
    assert resolve_auto_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_auto_device("auto") == "cpu"
    detector = create_detector(
        str(checkpoint_path), device="auto", precision="auto", input_size=INPUT_SIZE
    )
    assert detector.backend == "torch-cpu-fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_auto_device("auto") == "cuda"


def test_onnxruntime_auto_precision_is_fp16_only_under_tensorrt(onnx_pair, caplog):
    # On the CPU provider "auto" is plain fp32, without the warning an explicit fp16 earns.
    caplog.set_level(logging.WARNING, logger="togethernet_ros")
    detector = OnnxRuntimeDetector(onnx_pair, precision="auto")
    detector.detect([np.zeros((64, 96, 3), np.uint8)])
    assert detector.backend == "onnxruntime-CPUExecutionProvider"
    assert "fp16" not in caplog.text
    with pytest.raises(ValueError, match="precision must be 'auto', 'fp32' or 'fp16'"):
        OnnxRuntimeDetector(onnx_pair, precision="bf16")


def test_bad_options_are_rejected(checkpoint_path, tmp_path):
    with pytest.raises(ValueError, match="backend"):
        create_detector(str(checkpoint_path), backend="tensorflow")
    with pytest.raises(ValueError, match="device"):
        create_detector(str(checkpoint_path), device="tpu")
    with pytest.raises(ValueError, match="fp16"):
        create_detector(str(checkpoint_path), precision="fp16", input_size=INPUT_SIZE)
    with pytest.raises(ValueError, match="multiples of 128"):
        create_detector(str(checkpoint_path), input_size=(300, 300))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            create_detector(str(checkpoint_path), device="cuda", input_size=INPUT_SIZE)
    with pytest.raises(FileNotFoundError, match="togethernet export"):
        create_detector(None, backend="onnxruntime", onnx_path=str(tmp_path / "none.onnx"))
    detector = TorchDetector(build_model(), DEFAULT_CLASS_NAMES, input_size=INPUT_SIZE)
    with pytest.raises(ValueError, match="sequence of images"):
        detector.detect(np.zeros((64, 64, 3), np.uint8))
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        detector.detect([np.zeros((64, 64, 3), np.uint8)])


def test_no_input_size_means_the_size_the_checkpoint_was_trained_at(tmp_path, informative_model):
    recorded = save_checkpoint(
        tmp_path / "recorded.pt", informative_model, DEFAULT_CLASS_NAMES, {"input_size": [256, 384]}
    )
    silent = save_checkpoint(tmp_path / "silent.pt", informative_model, DEFAULT_CLASS_NAMES, {})
    assert create_detector(recorded, input_size=None).input_size == (256, 384)
    assert create_detector(silent, input_size=None).input_size == (640, 640)
    assert create_detector(recorded, input_size=128).input_size == (128, 128)  # asked for wins
    cache = tmp_path / "cache"
    exported = create_detector(recorded, backend="onnxruntime", input_size=None, cache_dir=cache)
    assert exported.input_size == (256, 384)
    exports = list((cache / "onnx").glob("*.onnx"))
    assert exports and all("256x384" in path.name for path in exports)


def test_onnx_backend_finds_relative_weights_like_the_torch_backend(tmp_path, monkeypatch):
    # The node's default `weights: models/togethernet_vtest_384.pt` must work from any working
    # directory (e.g. under `ros2 launch`) with backend onnxruntime too.
    monkeypatch.chdir(tmp_path)
    relative = "models/togethernet_vtest_384.pt"
    options = {"input_size": 128, "cache_dir": tmp_path / "cache"}
    detector = create_detector(relative, backend="onnxruntime", **options)
    assert detector.class_names == ("person", "bicycle", "car", "motorbike", "bus")
    assert list((tmp_path / "cache" / "onnx").glob("togethernet_vtest_384-*_128x128.onnx"))
    with pytest.raises(FileNotFoundError, match=r"checkpoint file not found: .*nowhere\.pt"):
        create_detector("models/nowhere.pt", backend="onnxruntime", **options)
