"""DevicePipeline: detect()'s staged path equals the plain one, slot reuse, graph bookkeeping.

CUDA graphs need a GPU; here the graph-mode bookkeeping (one upload buffer per camera
resolution, letterbox and model calls keyed and reused, least recently used resolutions
dropped, fallback to eager when capture fails) runs with a stand-in for `CapturedCall` that
records captures and runs the function eagerly, which is what a replay computes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from togethernet_ros.inference import device_pipeline
from togethernet_ros.inference.device_pipeline import DevicePipeline
from togethernet_ros.inference.torch_detector import TorchDetector
from togethernet_ros.model import DEFAULT_CLASS_NAMES
from togethernet_ros.vision import postprocess as postprocess_module
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.dehazed import dehazed_to_images
from togethernet_ros.vision.postprocess import postprocess, postprocess_scored
from togethernet_ros.vision.preprocess import preprocess_batch

from .conftest import INPUT_SIZE

CONF, NMS = 0.3, 0.45
DEMO_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "togethernet_vtest_384.pt"


@pytest.fixture(scope="module")
def detector(informative_model):
    return TorchDetector(
        informative_model,
        DEFAULT_CLASS_NAMES,
        input_size=INPUT_SIZE,
        conf_threshold=CONF,
        nms_threshold=NMS,
        max_batch_size=4,
    )


def plain_detect(detector: TorchDetector, images: list[np.ndarray]):
    """The unstaged reference: preprocess_batch → forward → decode → postprocess."""
    batch, infos = preprocess_batch(images, INPUT_SIZE, "bgr")
    maps, dehazed = detector._forward(batch, restore=True)
    decoded = decode_outputs(maps, (8, 16, 32), INPUT_SIZE)
    found = postprocess(decoded, infos, CONF, NMS, max_detections=detector.max_detections)
    return found, dehazed_to_images(dehazed, infos, "bgr")


def assert_same_results(results, detections, dehazed) -> None:
    assert len(results) == len(detections)
    for result, expected, expected_image in zip(results, detections, dehazed, strict=True):
        np.testing.assert_array_equal(result.detections.boxes, expected.boxes)
        np.testing.assert_array_equal(result.detections.scores, expected.scores)
        np.testing.assert_array_equal(result.detections.class_ids, expected.class_ids)
        np.testing.assert_array_equal(result.dehazed, expected_image)


def test_staged_detect_equals_the_plain_path_on_mixed_sizes(detector, images):
    detections, dehazed = plain_detect(detector, images)
    assert sum(len(found) for found in detections) > 0
    assert_same_results(detector.detect(images, restore=True), detections, dehazed)


def test_a_reused_slot_is_padded_again(detector, images):
    # A square frame fills slot 0 edge to edge; a tall narrow one afterwards must not see its
    # leftovers in the padding.
    detector.detect([images[1]])
    narrow = images[2]
    detections, dehazed = plain_detect(detector, [narrow])
    assert_same_results(detector.detect([narrow], restore=True), detections, dehazed)


class RecordingCapture:
    """Stands in for CapturedCall: counts captures, runs the function eagerly on every call."""

    captures: ClassVar[list[str]] = []
    fail_when: ClassVar[str] = ""  # a pipeline function name: captures that call it fail
    failure: ClassVar[type[Exception]] = RuntimeError

    def __init__(self, function, device, capture, pool=None) -> None:
        self.function = function
        self.graph = None
        if capture:
            calls = stage_methods(function)
            if RecordingCapture.fail_when in calls:
                raise RecordingCapture.failure("operation not permitted when stream is capturing")
            RecordingCapture.captures.extend(calls)
            self.graph = "captured"

    def __call__(self):
        with torch.inference_mode():
            return self.function()


def stage_methods(function) -> list[str]:
    """Which DevicePipeline stage a captured lambda runs (the names its code calls)."""
    return [name for name in function.__code__.co_names if name in STAGE_METHODS]


STAGE_METHODS = ("_letterbox_padded", "_run_model")


@pytest.fixture
def graph_mode(monkeypatch):
    RecordingCapture.captures = []
    RecordingCapture.fail_when = ""
    RecordingCapture.failure = RuntimeError
    monkeypatch.setattr(device_pipeline, "CapturedCall", RecordingCapture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: (0, 0))
    return RecordingCapture


def graphed_pipeline(
    detector: TorchDetector, max_source_shapes: int = 2, **options: object
) -> DevicePipeline:
    return DevicePipeline(
        detector.model,
        input_size=INPUT_SIZE,
        dtype=torch.float32,
        memory_format=torch.channels_last,
        device=torch.device("cpu"),
        max_batch_size=4,
        cuda_graphs=True,
        max_source_shapes=max_source_shapes,
        **options,
    )


def test_graph_mode_uploads_into_per_resolution_buffers_and_reuses_captures(
    detector, images, graph_mode, caplog
):
    pipeline = graphed_pipeline(detector)
    first, second, third = images
    detector_results = detector.detect([first, first, second], restore=False)
    for _ in range(2):
        infos = pipeline.letterbox([first, first, second])
        scored, dehazed = pipeline.infer(3, False, "bgr")
    # One letterbox graph per resolution, captured on its second frame (a folder of photos
    # would capture one per image): the first resolution at slot 1, the second in round two.
    # One model graph for batch 3. Each is captured once and replayed afterwards.
    assert graph_mode.captures == ["_letterbox_padded", "_run_model", "_letterbox_padded"]
    assert list(pipeline._uploads) == [first.shape[:2], second.shape[:2]]
    assert dehazed is None and [info.source_size for info in infos] == [
        first.shape[:2],
        first.shape[:2],
        second.shape[:2],
    ]
    for found, expected in zip(
        postprocess_scored(scored, infos, CONF, NMS), detector_results, strict=True
    ):
        np.testing.assert_array_equal(found.boxes, expected.detections.boxes)
        np.testing.assert_array_equal(found.scores, expected.detections.scores)
    # A third resolution, on its second frame, evicts the least recently used one with its
    # letterbox graph.
    pipeline.letterbox([third])
    assert list(pipeline._uploads) == [first.shape[:2], second.shape[:2]]
    with caplog.at_level(logging.DEBUG, logger="togethernet_ros"):
        pipeline.letterbox([third])
    assert "dropped the letterbox graph of 500x300" in caplog.text
    assert list(pipeline._uploads) == [second.shape[:2], third.shape[:2]]
    assert list(pipeline._letterbox_calls) == [second.shape[:2], third.shape[:2]]


@pytest.mark.parametrize("failing_stage", ["letterbox", "model"])
def test_a_capture_failure_makes_only_that_stage_eager(
    detector, images, graph_mode, caplog, failing_stage
):
    graph_mode.fail_when = "_letterbox_padded" if failing_stage == "letterbox" else "_run_model"
    pipeline = graphed_pipeline(detector)
    with caplog.at_level(logging.WARNING, logger="togethernet_ros"):
        for _ in range(2):
            infos = pipeline.letterbox(images[:2])
            scored, _ = pipeline.infer(2, False, "bgr")
    assert f"CUDA graph capture of the {failing_stage} stage failed" in caplog.text
    assert caplog.text.count("capture of the") == 1  # tried once, not on every frame
    other = "model" if failing_stage == "letterbox" else "letterbox"
    assert pipeline.graphed_stages == {failing_stage: False, other: True}
    assert bool(pipeline._letterbox_calls) == (failing_stage == "model")
    expected = detector.detect(images[:2])
    for found, result in zip(postprocess_scored(scored, infos, CONF, NMS), expected, strict=True):
        np.testing.assert_array_equal(found.boxes, result.detections.boxes)


def test_graphs_captured_before_a_failure_keep_running(detector, images, graph_mode):
    pipeline = graphed_pipeline(detector)
    pipeline.letterbox(images[:2])
    pipeline.infer(2, False, "bgr")
    graph_mode.fail_when = "_run_model"
    pipeline.letterbox(images[:1])
    pipeline.infer(1, False, "bgr")  # this capture fails: batch 1 runs eagerly
    assert pipeline._model_calls[(1, False, "bgr")].graph is None
    assert pipeline._model_calls[(2, False, "bgr")].graph == "captured"
    assert pipeline.graphed_stages["letterbox"]


def test_out_of_memory_during_capture_is_raised_not_taken_for_a_capture_failure(
    detector, images, graph_mode
):
    graph_mode.fail_when = "_run_model"
    graph_mode.failure = torch.cuda.OutOfMemoryError
    pipeline = graphed_pipeline(detector)
    pipeline.letterbox(images[:1])
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pipeline.infer(1, False, "bgr")
    assert pipeline.graphed_stages == {"letterbox": True, "model": True}


def test_batches_larger_than_the_canvas_are_refused(detector, images):
    pipeline = detector._pipeline
    with pytest.raises(ValueError, match="exceeds the pipeline's 4 slots"):
        pipeline.letterbox(images * 2)


def test_closed_detector_refuses_to_run(informative_model, images):
    closed = TorchDetector(informative_model, DEFAULT_CLASS_NAMES, input_size=INPUT_SIZE)
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.detect(images[:1])


def test_frames_prepared_ahead_give_the_same_results_as_plain_detect(detector, images):
    # Two cameras prepared while they "waited", the third letterboxed inside detect.
    detections, dehazed = plain_detect(detector, images)
    detector.detect(images[::-1])  # the slots must not already hold the right pixels
    assert detector.prepare_ahead("front", images[0]) is True
    assert detector.prepare_ahead("rear", images[1]) is True
    pipeline = detector._pipeline
    prepared_buffers = [entry.letterboxed for entry in pipeline._prepared.values()]
    assert_same_results(detector.detect(images, restore=True), detections, dehazed)
    # Used up: the images are forgotten, the per-camera buffers kept for the next frames.
    assert [entry.image for entry in pipeline._prepared.values()] == [None, None]
    assert [entry.letterboxed for entry in pipeline._prepared.values()] == prepared_buffers


def test_a_prepared_frame_is_matched_by_identity_not_by_camera(detector, images):
    # The camera's newer frame (another array) arrives after preparation: detect must
    # letterbox the frame it is given, not reuse the prepared pixels of the older one.
    detector.prepare_ahead("front", images[0])
    newer = np.ascontiguousarray(images[0][::-1])
    detections, dehazed = plain_detect(detector, [newer])
    assert_same_results(detector.detect([newer], restore=True), detections, dehazed)
    assert detector._pipeline._prepared["front"].image is images[0]  # still waiting for use


def test_preparing_again_replaces_the_cameras_frame_and_size(detector, images):
    detector.prepare_ahead("front", images[0])
    detector.prepare_ahead("front", images[2])  # another resolution for the same camera
    prepared = detector._pipeline._prepared["front"]
    assert prepared.image is images[2] and prepared.info.source_size == images[2].shape[:2]
    detections, dehazed = plain_detect(detector, [images[0], images[2]])
    assert_same_results(detector.detect([images[0], images[2]], restore=True), detections, dehazed)


def test_prepared_frames_are_bounded_least_recent_first(informative_model, images):
    small = TorchDetector(
        informative_model, DEFAULT_CLASS_NAMES, input_size=INPUT_SIZE, max_batch_size=2
    )
    small._pipeline.max_prepared = 2
    for camera in ("a", "b", "c"):
        small.prepare_ahead(camera, images[0])
    assert list(small._pipeline._prepared) == ["b", "c"]
    small.close()
    assert small._pipeline is None


def test_preparing_an_invalid_frame_names_the_camera(detector):
    with pytest.raises(ValueError, match="frame of 'front' must have shape HxWx3"):
        detector.prepare_ahead("front", np.zeros((4, 4), np.uint8))


def test_graph_mode_prepares_ahead_through_the_resolutions_letterbox_graph(
    detector, images, graph_mode
):
    pipeline = graphed_pipeline(detector)
    pipeline.letterbox([images[0], images[1]])  # their resolutions' first frames: eager
    pipeline.prepare_ahead("front", images[0])
    infos = pipeline.letterbox([images[1], images[0]])
    scored, _ = pipeline.infer(2, False, "bgr")
    assert graph_mode.captures == ["_letterbox_padded", "_letterbox_padded", "_run_model"]
    expected = detector.detect([images[1], images[0]])
    for found, result in zip(postprocess_scored(scored, infos, CONF, NMS), expected, strict=True):
        np.testing.assert_array_equal(found.boxes, result.detections.boxes)
        np.testing.assert_array_equal(found.scores, result.detections.scores)


@pytest.fixture(scope="module")
def demo_frames_and_model():
    """Four 720p vtest frames and the demo weights: real crowds of overlapping candidates."""
    import cv2
    from support.sample_video_frames import sample_video, video_frame

    from togethernet_ros.model import load_checkpoint

    video = sample_video()
    frames = [cv2.resize(video_frame(video, index), (1280, 720)) for index in (0, 150, 300, 450)]
    return frames, load_checkpoint(DEMO_WEIGHTS)


def test_device_nms_keeps_exactly_the_hosts_detections_on_real_frames(
    demo_frames_and_model, monkeypatch
):
    frames, loaded = demo_frames_and_model
    detectors = {
        where: TorchDetector(
            loaded.model,
            loaded.class_names,
            input_size=(384, 640),
            conf_threshold=0.1,  # the tracker's low stage: ~200-260 candidates per frame
            nms_threshold=0.45,
            max_batch_size=4,
            device_nms=where == "device",
        )
        for where in ("host", "device")
    }
    assert detectors["device"]._pipeline.device_nms
    assert not detectors["host"]._pipeline.device_nms
    for conf, nms in ((0.1, 0.45), (0.3, 0.65)):  # and a change at run time
        results = {}
        for where, detector in detectors.items():
            detector.conf_threshold, detector.nms_threshold = conf, nms
            with monkeypatch.context() as patch:
                if where == "device":  # proves the device decided: the host's NMS must not run
                    patch.setattr(postprocess_module, "_greedy_nms", refuse_host_nms)
                results[where] = detector.detect(frames)
        assert sum(len(result.detections) for result in results["host"]) > 20
        for host, device in zip(results["host"], results["device"], strict=True):
            np.testing.assert_array_equal(device.detections.boxes, host.detections.boxes)
            np.testing.assert_array_equal(device.detections.scores, host.detections.scores)
            np.testing.assert_array_equal(device.detections.class_ids, host.detections.class_ids)


def refuse_host_nms(*args, **kwargs):
    raise AssertionError("the host ran NMS although the device had decided it")


def test_graph_mode_device_nms_follows_threshold_changes_without_a_new_capture(
    detector, images, graph_mode
):
    pipeline = graphed_pipeline(detector, device_nms=True)
    infos = pipeline.letterbox(images)
    for conf, nms in ((CONF, NMS), (0.6, 0.2), (CONF, NMS)):
        scored, _ = pipeline.infer(3, False, "bgr", thresholds=(conf, nms))
        assert scored.suppression.conf_threshold == conf
        assert scored.suppression.nms_threshold == nms
        expected = postprocess_scored(scored._replace(suppression=None), infos, conf, nms)
        for found, wanted in zip(
            postprocess_scored(scored, infos, conf, nms), expected, strict=True
        ):
            np.testing.assert_array_equal(found.boxes, wanted.boxes)
            np.testing.assert_array_equal(found.scores, wanted.scores)
    assert graph_mode.captures.count("_run_model") == 1
    with pytest.raises(ValueError, match="needs the thresholds"):
        pipeline.infer(3, False, "bgr")


def test_device_nms_refuses_more_packed_anchors_than_it_can_pair(detector):
    with pytest.raises(ValueError, match="at most 2048 packed anchors"):
        graphed_pipeline(detector, device_nms=True, host_candidates=8400)
