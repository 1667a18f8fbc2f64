"""Decode and post-processing against the upstream reference outputs and known geometry."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.postprocess import (
    postprocess,
    postprocess_scored,
    score_anchors,
    select_anchors,
    select_scored,
    select_top_on_host,
    unletterbox_boxes,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "forward_small_256.npz"
SHARED_REFERENCE = (
    Path(__file__).resolve().parents[3] / "shared" / "reference" / "togethernet" / "forward_ref.npz"
)
MAP_NAMES = ("out_s8", "out_s16", "out_s32")


def normalised(decoded: torch.Tensor, size: int) -> np.ndarray:
    """Our decode is in input pixels; upstream's `decoded` divides the box by the input size."""
    result = decoded.clone()
    result[..., :4] /= size
    return result.numpy()


def test_decode_matches_small_reference():
    reference = np.load(FIXTURE)
    decoded = decode_outputs([reference[name] for name in MAP_NAMES], (8, 16, 32), (256, 256))
    assert decoded.shape == (1, 1344, 10)
    np.testing.assert_allclose(normalised(decoded, 256), reference["decoded"], rtol=1e-4, atol=1e-5)


def test_decode_rejects_maps_that_do_not_fit_the_input_size():
    reference = np.load(FIXTURE)
    with pytest.raises(ValueError, match="do not match input size"):
        decode_outputs([reference[name] for name in MAP_NAMES], (8, 16, 32), (256, 384))
    with pytest.raises(ValueError, match="strides"):
        decode_outputs([reference["out_s8"]], (8, 16, 32))


@pytest.mark.skipif(not SHARED_REFERENCE.exists(), reason="640x640 reference not present")
def test_postprocess_matches_upstream_get_map_detections():
    reference = np.load(SHARED_REFERENCE)
    decoded = decode_outputs([reference[name] for name in MAP_NAMES], (8, 16, 32), (640, 640))
    np.testing.assert_allclose(normalised(decoded, 640), reference["decoded"], rtol=1e-4, atol=1e-5)
    info = LetterboxInfo.compute((480, 640), (640, 640))
    selected = select_anchors(decoded, conf_threshold=0.001, nms_threshold=0.65)
    for image in range(2):
        rows = selected.image_index == image
        expected = reference[f"dets_map_img{image}"]
        position = {int(a): k for k, a in enumerate(reference[f"dets_map_anchor_img{image}"])}
        anchors = selected.anchor_index[rows].numpy()
        assert sorted(anchors.tolist()) == sorted(position)
        matched = expected[[position[int(a)] for a in anchors]]
        boxes = unletterbox_boxes(selected.boxes[rows].numpy(), info, clip=False)
        # Upstream rows are [top, left, bottom, right, obj, cls, class]; ours are xyxy.
        np.testing.assert_allclose(boxes, matched[:, [1, 0, 3, 2]], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(
            selected.scores[rows].numpy(), matched[:, 4] * matched[:, 5], rtol=1e-4, atol=1e-6
        )
        np.testing.assert_array_equal(selected.class_ids[rows].numpy(), matched[:, 6])
        assert np.all(np.diff(selected.scores[rows].numpy()) <= 0)
    at_predict_settings = postprocess(decoded, [info, info], conf_threshold=0.5, nms_threshold=0.3)
    assert [len(d) for d in at_predict_settings] == [0, 0]


@pytest.mark.parametrize("top_k", [1344, 64, 8])
def test_host_selection_among_the_top_anchors_equals_selection_among_all(top_k):
    reference = np.load(FIXTURE)
    decoded = decode_outputs([reference[name] for name in MAP_NAMES], (8, 16, 32), (256, 256))
    batch = torch.cat((decoded, decoded.flip(1)))  # a second image: the same anchors reversed
    plain, packed = score_anchors(batch), score_anchors(batch, top_k=top_k)
    assert packed.top.shape == (2, min(top_k, 1344), 7)
    info = LetterboxInfo.compute((200, 300), (256, 256))
    # Thresholds that let ~40 anchors per image through: more than 8, fewer than 64.
    for quantile in (0.97, 0.99):
        conf = float(plain.scores.quantile(quantile))
        passing = int((plain.scores[0] >= conf).sum())
        assert 8 < passing < 64
        host = select_top_on_host(packed, conf, 0.45)
        # With 8 candidates more anchors may pass than were copied: back to the device path.
        assert (host is None) == (top_k == 8)
        expected = select_scored(plain, conf, 0.45)
        if host is not None:
            for field in expected._fields:
                np.testing.assert_array_equal(getattr(host, field), getattr(expected, field))
        for found, wanted in zip(
            postprocess_scored(packed, [info, info], conf, 0.45),
            postprocess_scored(plain, [info, info], conf, 0.45),
            strict=True,
        ):
            assert len(wanted) > 0
            np.testing.assert_array_equal(found.boxes, wanted.boxes)
            np.testing.assert_array_equal(found.scores, wanted.scores)
            np.testing.assert_array_equal(found.class_ids, wanted.class_ids)


def two_anchor_batch(first_score: float, second_score: float) -> torch.Tensor:
    """1 x 1000 x 6 decoded anchors: two overlapping same-class boxes (anchors 10 and 900)."""
    decoded = torch.zeros(1, 1000, 6)
    decoded[0, :, :4] = torch.tensor([500.0, 500.0, 4.0, 4.0])  # far away, score 0
    decoded[0, 10] = torch.tensor([100.0, 100.0, 40.0, 40.0, first_score, 1.0])
    decoded[0, 900] = torch.tensor([102.0, 101.0, 40.0, 40.0, second_score, 1.0])
    return decoded


def test_host_selection_resolves_equal_scores_like_selection_among_all():
    # Equal scores are common with fp16 logits; greedy NMS keeps the first of the two, and
    # both paths must agree on which one is first.
    decoded = two_anchor_batch(0.8, 0.8)
    expected = select_scored(score_anchors(decoded), 0.3, 0.45)
    assert expected.anchor_index.tolist() == [10]
    for top_k in (16, 1000):
        found = select_top_on_host(score_anchors(decoded, top_k=top_k), 0.3, 0.45)
        assert found is not None and found.anchor_index.tolist() == [10]
    # With K = 2 the 2nd best still passes: more might, so the caller must use every anchor.
    assert select_top_on_host(score_anchors(decoded, top_k=2), 0.3, 0.45) is None


def test_nan_scores_do_not_push_real_candidates_out_of_the_top_anchors():
    decoded = two_anchor_batch(0.8, 0.0)
    decoded[0, 20:60, 4] = float("nan")  # 40 NaN scores, more than K = 16
    found = select_top_on_host(score_anchors(decoded, top_k=16), 0.3, 0.45)
    assert found is not None and found.anchor_index.tolist() == [10]


def planted_maps(objects, input_size=(256, 384), num_classes=5):
    """Raw head maps that are background everywhere except at the given anchors.

    objects: (level, row, col, class_id, t_w, t_h, logit) entries.
    """
    maps = []
    for stride in (8, 16, 32):
        height, width = input_size[0] // stride, input_size[1] // stride
        head = torch.zeros(1, 5 + num_classes, height, width)
        head[:, 4:] = -8.0
        maps.append(head)
    for level, row, col, class_id, t_w, t_h, logit in objects:
        maps[level][0, 2, row, col] = t_w
        maps[level][0, 3, row, col] = t_h
        maps[level][0, 4, row, col] = logit
        maps[level][0, 5 + class_id, row, col] = logit
    return maps


def test_planted_object_comes_back_in_source_pixels():
    # Stride 16, cell (row 5, col 10), t_xy = 0: centre (160, 80) in input pixels, size 32x64.
    maps = planted_maps([(1, 5, 10, 2, np.log(2.0), np.log(4.0), 6.0)])
    decoded = decode_outputs(maps, (8, 16, 32), (256, 384))
    info = LetterboxInfo.compute((480, 640), (256, 384))  # resized to 256 x 341
    (detections,) = postprocess(decoded, [info], conf_threshold=0.5, nms_threshold=0.3)
    assert len(detections) == 1
    # The letterbox put the 341 resized columns 21 columns in ((384 - 341) // 2).
    gain_x, gain_y = 640 / 341, 480 / 256
    centre_x, centre_y = (160 - 21) * gain_x, 80 * gain_y
    expected = [
        centre_x - 16 * gain_x,
        centre_y - 32 * gain_y,
        centre_x + 16 * gain_x,
        centre_y + 32 * gain_y,
    ]
    np.testing.assert_allclose(detections.boxes[0], expected, rtol=1e-5)
    assert detections.class_ids.tolist() == [2]
    expected_score = 1 / (1 + np.exp(-6.0))
    np.testing.assert_allclose(detections.scores, [expected_score**2], rtol=1e-5)


def test_overlapping_same_class_is_suppressed_but_other_class_and_image_are_not():
    objects = [
        (0, 10, 10, 0, np.log(4.0), np.log(4.0), 6.0),
        (0, 10, 11, 0, np.log(4.0), np.log(4.0), 5.0),  # IoU 0.6 with the first: suppressed
        (0, 10, 12, 1, np.log(4.0), np.log(4.0), 4.0),  # other class: kept
    ]
    first = planted_maps(objects)
    second = planted_maps(objects[1:2])
    maps = [torch.cat(pair) for pair in zip(first, second, strict=True)]
    decoded = decode_outputs(maps, (8, 16, 32), (256, 384))
    info = LetterboxInfo.compute((256, 384), (256, 384))
    detections = postprocess(decoded, [info, info], conf_threshold=0.5, nms_threshold=0.3)
    assert detections[0].class_ids.tolist() == [0, 1]
    assert np.all(np.diff(detections[0].scores) < 0)
    assert detections[1].class_ids.tolist() == [0]
    loose = postprocess(decoded, [info, info], conf_threshold=0.5, nms_threshold=0.7)
    assert len(loose[0]) == 3


def test_boxes_are_clipped_to_the_source_image_unless_asked_not_to():
    maps = planted_maps([(2, 0, 0, 4, np.log(6.0), np.log(6.0), 6.0)])
    decoded = decode_outputs(maps, (8, 16, 32), (256, 384))
    info = LetterboxInfo.compute((256, 384), (256, 384))
    (clipped,) = postprocess(decoded, [info], 0.5, 0.3)
    (raw,) = postprocess(decoded, [info], 0.5, 0.3, clip=False)
    assert raw.boxes[0, 0] < 0 and raw.boxes[0, 1] < 0
    np.testing.assert_allclose(clipped.boxes[0, :2], [0, 0])
    np.testing.assert_allclose(clipped.boxes[0, 2:], raw.boxes[0, 2:])


def test_a_box_wholly_in_the_letterbox_padding_is_dropped_when_clipped():
    # 480x640 into 256x384: the image spans x 21.5..362.5. Stride 8, cell (row 10, col 1) and
    # size 8x8 put a box at x 4..12, inside the left padding; one at col 20 is in the image.
    maps = planted_maps([(0, 10, 1, 0, 0.0, 0.0, 6.0), (0, 10, 20, 0, 0.0, 0.0, 5.0)])
    decoded = decode_outputs(maps, (8, 16, 32), (256, 384))
    info = LetterboxInfo.compute((480, 640), (256, 384))
    (clipped,) = postprocess(decoded, [info], 0.5, 0.3)
    (raw,) = postprocess(decoded, [info], 0.5, 0.3, clip=False)
    assert len(raw) == 2 and raw.boxes[0, 2] < 0  # the padding box ends left of the image
    assert len(clipped) == 1
    np.testing.assert_allclose(clipped.boxes[0], raw.boxes[1], rtol=1e-6)


def test_unletterbox_uses_upstream_rounded_shape():
    # 333 * (256/500) = 170.50 -> the resize used int() = 170, upstream's correction rounds to 170
    # while 335 * 0.512 = 171.52 -> int 171, round 172: the correction must use 172.
    info = LetterboxInfo.compute((500, 335), (256, 256))
    assert info.resized_size == (256, 171)
    box = np.array([[100.0, 50.0, 150.0, 90.0]])
    new_w = np.round(335 * 256 / 500)
    assert new_w == 172
    gain = 335 / new_w
    expected_x = [(100 - (256 - new_w) / 2) * gain, (150 - (256 - new_w) / 2) * gain]
    result = unletterbox_boxes(box, info, clip=False, upstream_rounding=True)
    np.testing.assert_allclose(result[0, [0, 2]], expected_x, rtol=1e-6)
    np.testing.assert_allclose(result[0, [1, 3]], [50 * 500 / 256, 90 * 500 / 256], rtol=1e-6)


def upstream_correct_boxes(boxes: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Upstream `yolo_correct_boxes` step by step, (y, x) order and all, without clipping."""
    input_shape = np.array(info.input_size, dtype=np.float64)
    image_shape = np.array(info.source_size, dtype=np.float64)
    new_shape = np.round(image_shape * np.min(input_shape / image_shape))
    offset = (input_shape - new_shape) / 2.0 / input_shape
    scale = input_shape / new_shape
    box_yx = (boxes[:, [1, 0]] + boxes[:, [3, 2]]) / 2.0 / input_shape
    box_hw = (boxes[:, [3, 2]] - boxes[:, [1, 0]]) / input_shape
    box_yx = (box_yx - offset) * scale
    box_hw *= scale
    mins, maxes = box_yx - box_hw / 2.0, box_yx + box_hw / 2.0
    corrected = np.concatenate([mins[:, 0:1], mins[:, 1:2], maxes[:, 0:1], maxes[:, 1:2]], axis=-1)
    corrected *= np.concatenate([image_shape, image_shape], axis=-1)
    return corrected[:, [1, 0, 3, 2]]


@pytest.mark.parametrize(
    ("source", "input_size"),
    [((720, 1280), (384, 640)), ((576, 768), (640, 640)), ((500, 335), (256, 256))],
)
def test_unletterbox_equals_upstream_correction(source, input_size):
    info = LetterboxInfo.compute(source, input_size)
    rng = np.random.default_rng(7)
    corners = rng.random((200, 2), dtype=np.float32) * np.array(input_size[::-1], np.float32)
    boxes = np.concatenate((corners, corners + rng.random((200, 2), dtype=np.float32) * 90), axis=1)
    found = unletterbox_boxes(boxes, info, clip=False, upstream_rounding=True)
    # Upstream works in normalised units, we in input pixels: equal up to float64 rounding.
    np.testing.assert_allclose(
        found, upstream_correct_boxes(boxes.astype(np.float64), info), rtol=1e-6, atol=1e-3
    )
    clipped = unletterbox_boxes(boxes, info, upstream_rounding=True)
    height, width = source
    assert (
        clipped.min() >= 0
        and clipped[:, [0, 2]].max() <= width
        and clipped[:, [1, 3]].max() <= height
    )
    inside = (found >= 0).all(axis=1) & (found[:, 2] <= width) & (found[:, 3] <= height)
    np.testing.assert_array_equal(clipped[inside], found[inside])


@pytest.mark.parametrize(
    ("source", "input_size"),
    [((2048, 2448), (384, 640)), ((500, 335), (256, 256)), ((1080, 1920), (640, 640))],
)
def test_unletterbox_inverts_the_letterbox_as_applied(source, input_size):
    """A box placed in the network input exactly where the letterbox put its source pixels maps
    back to those pixels, also for frame sizes where get_map.py's rounding does not."""
    info = LetterboxInfo.compute(source, input_size)
    height, width = source
    rng = np.random.default_rng(3)
    corners = rng.random((100, 2)) * np.array([width, height]) * 0.8
    truth = np.concatenate((corners, corners + rng.random((100, 2)) * 0.2 * width), axis=1)
    # Forward through the letterbox: resized by resized/source per axis, shifted by the offset.
    scale = np.array(info.resized_size[::-1]) / np.array([width, height])
    shift = np.array(info.offset[::-1])
    in_input = np.concatenate((truth[:, :2] * scale + shift, truth[:, 2:] * scale + shift), axis=1)
    exact = unletterbox_boxes(in_input.astype(np.float32), info, clip=False)
    np.testing.assert_allclose(exact, truth, atol=2e-3 * max(source))
    upstream = unletterbox_boxes(
        in_input.astype(np.float32), info, clip=False, upstream_rounding=True
    )
    error = np.abs(upstream - truth).max()
    if source == (2048, 2448):
        # 2048 rows into 384: 459 columns wide, centred 90 columns in; upstream centres
        # by 90.5, half a column off, which is ~2.7 source pixels.
        assert np.abs(exact - truth).max() < 0.05 < 1.0 < error
    if source == (1080, 1920):
        assert error < 0.05  # a 16:9 frame: the two agree


@pytest.fixture(scope="module")
def untrained_detector():
    from togethernet_ros.inference.factory import create_detector

    detector = create_detector(
        None, allow_untrained=True, input_size=128, conf_threshold=0.01, max_batch_size=1
    )
    detector.clip_boxes = False  # compare the mappings alone
    yield detector
    detector.close()


@pytest.mark.parametrize(("height", "width", "moves"), [(335, 500, True), (360, 640, False)])
def test_detect_maps_boxes_back_exactly_unless_asked_for_get_maps_rounding(
    untrained_detector, height, width, moves
):
    """detect() (node, predict, bag run) inverts the letterbox as applied; `eval` sets
    upstream_box_rounding to score get_map.py's boxes. They differ only for unusual sizes."""
    image = np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert untrained_detector.upstream_box_rounding is False
    exact = untrained_detector.detect([image])[0].detections
    untrained_detector.upstream_box_rounding = True
    try:
        upstream = untrained_detector.detect([image])[0].detections
    finally:
        untrained_detector.upstream_box_rounding = False
    assert len(exact) == len(upstream) > 0
    np.testing.assert_array_equal(exact.scores, upstream.scores)
    difference = np.abs(exact.boxes - upstream.boxes).max()
    assert (difference > 0.3) if moves else (difference < 1e-3)


def test_threshold_validation():
    decoded = torch.zeros(1, 10, 10)
    with pytest.raises(ValueError, match="conf_threshold"):
        select_anchors(decoded, 1.5, 0.3)
    with pytest.raises(ValueError, match="nms_threshold"):
        select_anchors(decoded, 0.5, -0.1)
    with pytest.raises(ValueError, match="letterbox infos"):
        postprocess(decoded, [], 0.5, 0.3)


@pytest.mark.parametrize("seed", range(6))
def test_host_nms_equals_nms_among_all_anchors_on_crowded_random_boxes(seed):
    # Many overlapping boxes of 3 classes in 2 images, some images with nothing above the
    # threshold: the numpy NMS of the host path must keep exactly what `select_scored` keeps.
    generator = torch.Generator().manual_seed(seed)
    decoded = torch.zeros(2, 3000, 8)
    decoded[..., :2] = torch.rand(2, 3000, 2, generator=generator) * 120 + 40
    decoded[..., 2:4] = torch.rand(2, 3000, 2, generator=generator) * 50 + 4
    decoded[..., 4] = torch.rand(2, 3000, generator=generator) ** 8
    decoded[..., 5:] = torch.rand(2, 3000, 3, generator=generator)
    if seed % 3 == 0:
        decoded[1, :, 4] = 0.0  # an image with no candidate at all
    for nms_threshold in (0.3, 0.45, 0.7):
        expected = select_scored(score_anchors(decoded), 0.2, nms_threshold)
        found = select_top_on_host(score_anchors(decoded, top_k=512), 0.2, nms_threshold)
        assert found is not None and len(expected.scores) > 10
        for field in expected._fields:
            np.testing.assert_array_equal(getattr(found, field), getattr(expected, field))


def corrupted_batch(count: int = 1000) -> torch.Tensor:
    """1 x count x 6 decoded anchors: one real box and three confident non-finite ones."""
    decoded = torch.zeros(1, count, 6)
    decoded[0, :, :4] = torch.tensor([500.0, 500.0, 4.0, 4.0])  # score 0
    decoded[0, 10] = torch.tensor([100.0, 100.0, 20.0, 20.0, 0.9, 1.0])
    decoded[0, 50] = torch.tensor([float("nan"), 100.0, 20.0, 20.0, 0.95, 1.0])
    decoded[0, 60] = torch.tensor([100.0, 100.0, float("inf"), 20.0, 0.95, 1.0])  # exp overflow
    decoded[0, 70] = torch.tensor([300.0, 100.0, 20.0, float("inf"), 0.95, 1.0])
    return decoded


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("top_k", [0, 16])
def test_non_finite_boxes_are_never_candidates(clip, top_k):
    # They used to reach NMS and the un-letterboxing (RuntimeWarnings), and with clip=False
    # they came out as NaN boxes.
    info = LetterboxInfo.compute((256, 384), (256, 384))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" from NaN arithmetic either
        scored = score_anchors(corrupted_batch(), top_k=top_k)
        (found,) = postprocess_scored(scored, [info], 0.5, 0.45, clip=clip)
    assert found.boxes.tolist() == [[90.0, 90.0, 110.0, 110.0]]
    selected = select_scored(scored, 0.5, 0.45)
    assert selected.anchor_index.tolist() == [10]


def test_many_candidates_and_one_infinite_box_still_get_suppressed():
    # 1200 near-duplicates of 60 objects in 5 classes (more than K, so every anchor goes
    # through NMS) plus one infinite box: NMS used to stop suppressing in classes 1-4.
    rng = np.random.default_rng(3)
    count = 1200
    decoded = torch.zeros(1, count, 10)
    centres = rng.uniform(40, 600, (count // 20, 2)).repeat(20, axis=0)
    decoded[0, :, :2] = torch.from_numpy(centres + rng.normal(0, 1, (count, 2)))
    decoded[0, :, 2:4] = 40.0
    decoded[0, :, 4] = torch.from_numpy(rng.uniform(0.5, 1.0, count))
    classes = np.arange(count) // 20 % 5
    decoded[0, np.arange(count), 5 + classes] = 1.0
    info = LetterboxInfo.compute((640, 640), (640, 640))
    without = decoded.clone()
    without[0, 7, 4] = 0.0  # what the rule makes of the infinite box: no candidate
    (expected,) = postprocess_scored(score_anchors(without, top_k=64), [info], 0.3, 0.45)
    decoded[0, 7, 2] = float("inf")
    (found,) = postprocess_scored(score_anchors(decoded, top_k=64), [info], 0.3, 0.45)
    assert len(expected) <= 120  # at most a couple per object survive
    np.testing.assert_array_equal(found.boxes, expected.boxes)
    np.testing.assert_array_equal(found.scores, expected.scores)
