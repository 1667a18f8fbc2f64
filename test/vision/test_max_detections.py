"""The per-image detection cap of the shared post-processing (`max_detections`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.postprocess import (
    check_max_detections,
    postprocess,
    postprocess_scored,
    score_anchors,
    select_top_on_host,
)

NUM_CLASSES = 5
INPUT = (640, 640)


def crowded_batch(counts: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, list[np.ndarray]]:
    """N x 4000 x (5+C) decoded anchors: image i has counts[i] scoring, non-overlapping boxes.

    Boxes are 6x6 px on an 8 px grid (no two overlap, so NMS keeps every one), classes mixed,
    scores distinct. Returns the batch and each image's candidate scores.
    """
    rng = np.random.default_rng(seed)
    anchors = 80 * 50
    columns, rows = np.meshgrid(np.arange(80), np.arange(50))
    centres = np.stack((columns.ravel() * 8 + 4, rows.ravel() * 8 + 4), axis=1).astype(np.float32)
    decoded = torch.zeros(len(counts), anchors, 5 + NUM_CLASSES)
    candidates = []
    for image, count in enumerate(counts):
        decoded[image, :, :2] = torch.from_numpy(centres)
        decoded[image, :, 2:4] = 6.0
        scoring = rng.permutation(anchors)[:count]
        scores = rng.permutation(np.linspace(0.15, 0.99, count, dtype=np.float32))
        decoded[image, scoring, 4] = torch.from_numpy(scores)
        classes = rng.integers(0, NUM_CLASSES, count)
        decoded[image, scoring, 5 + classes] = 1.0  # score = obj x 1
        candidates.append(scores)
    return decoded, candidates


def assert_same(found, wanted) -> None:
    np.testing.assert_array_equal(found.boxes, wanted.boxes)
    np.testing.assert_array_equal(found.scores, wanted.scores)
    np.testing.assert_array_equal(found.class_ids, wanted.class_ids)


@pytest.mark.parametrize("cap", [1, 50, 300, 3999])
def test_thousands_of_boxes_are_cut_to_the_best_n_in_their_usual_order(cap):
    decoded, candidates = crowded_batch((4000,))
    info = LetterboxInfo.compute(INPUT, INPUT)
    (everything,) = postprocess(decoded, [info], 0.1, 0.45)
    assert len(everything) == 4000  # NMS keeps them all: they do not overlap
    (capped,) = postprocess(decoded, [info], 0.1, 0.45, max_detections=cap)
    assert len(capped) == cap
    # The N highest scores of all candidates, across classes ...
    np.testing.assert_array_equal(np.sort(capped.scores), np.sort(candidates[0])[-cap:])
    if cap >= 50:
        assert set(capped.class_ids.tolist()) == set(range(NUM_CLASSES))
    # ... in the order the uncapped result lists them (descending score), boxes and classes
    # kept with their scores.
    assert_same(capped, everything.select(slice(0, cap)))
    assert np.all(np.diff(capped.scores) <= 0)


def test_the_cap_applies_to_each_image_of_a_batch_on_its_own():
    decoded, _ = crowded_batch((4000, 120, 0, 301))
    info = LetterboxInfo.compute(INPUT, INPUT)
    uncapped = postprocess(decoded, [info] * 4, 0.1, 0.45)
    capped = postprocess(decoded, [info] * 4, 0.1, 0.45, max_detections=300)
    # A crowded image does not use up the others' share; fewer boxes than the cap: all kept.
    assert [len(d) for d in uncapped] == [4000, 120, 0, 301]
    assert [len(d) for d in capped] == [300, 120, 0, 300]
    for found, wanted in zip(capped, uncapped, strict=True):
        assert_same(found, wanted.select(slice(0, 300)))


def test_a_cap_above_the_count_keeps_every_box_and_none_means_no_cap():
    decoded, _ = crowded_batch((700,))
    info = LetterboxInfo.compute(INPUT, INPUT)
    (everything,) = postprocess(decoded, [info], 0.1, 0.45)
    for cap in (700, 701, 100_000, None):
        (found,) = postprocess(decoded, [info], 0.1, 0.45, max_detections=cap)
        assert_same(found, everything)


def test_the_host_path_over_the_best_anchors_caps_the_same_boxes():
    # 400 candidates fit in the 512 copied to the host: the host path selects, then the cap.
    decoded, _ = crowded_batch((400, 30))
    info = LetterboxInfo.compute(INPUT, INPUT)
    packed, plain = score_anchors(decoded, top_k=512), score_anchors(decoded)
    assert select_top_on_host(packed, 0.1, 0.45) is not None
    for cap in (25, 300):
        host = postprocess_scored(packed, [info, info], 0.1, 0.45, max_detections=cap)
        every_anchor = postprocess_scored(plain, [info, info], 0.1, 0.45, max_detections=cap)
        assert [len(d) for d in host] == [cap, min(cap, 30)]
        for found, wanted in zip(host, every_anchor, strict=True):
            assert_same(found, wanted)


def test_a_box_dropped_as_padding_does_not_use_up_the_cap():
    # A 320x640 frame letterboxed into 640x640: rows 0-159 are padding. The best box lies there
    # and clips to zero height, so it is dropped; the cap still returns N real boxes.
    decoded, _ = crowded_batch((500,))
    decoded[0, :, 1] = decoded[0, :, 1] * 0.5 + 200.0  # every grid box into the image part
    decoded[0, 0] = torch.tensor([100.0, 40.0, 20.0, 20.0, 1.0, 1.0, 0, 0, 0, 0])
    info = LetterboxInfo.compute((320, 640), INPUT)
    (everything,) = postprocess(decoded, [info], 0.1, 0.45)
    (capped,) = postprocess(decoded, [info], 0.1, 0.45, max_detections=10)
    assert float(everything.scores.max()) < 1.0  # the padding box is gone
    assert len(capped) == 10
    assert_same(capped, everything.select(slice(0, 10)))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"max_detections must be >= 1 \(or None for no cap\), got 0; 0 would drop"),
        (-5, r"max_detections must be >= 1 \(or None for no cap\), got -5"),
        (2.5, r"max_detections must be an integer >= 1 \(or None for no cap\), got 2\.5"),
        (True, r"max_detections must be an integer .*got True"),
        ("300", r"max_detections must be an integer .*got '300'"),
    ],
)
def test_invalid_caps_are_refused_naming_the_value(value, message):
    with pytest.raises(ValueError, match=message):
        check_max_detections(value)
    decoded, _ = crowded_batch((10,))
    info = LetterboxInfo.compute(INPUT, INPUT)
    with pytest.raises(ValueError, match=message):
        postprocess(decoded, [info], 0.1, 0.45, max_detections=value)


def test_valid_caps_are_normalised_to_int():
    assert check_max_detections(None) is None
    assert check_max_detections(1) == 1
    assert type(check_max_detections(np.int64(300))) is int
