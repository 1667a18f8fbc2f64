"""Device NMS of the packed best anchors: exactly the host's greedy NMS, or an honest "not settled"."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from togethernet_ros.vision.device_nms import DeviceSuppression, suppress_packed_anchors
from togethernet_ros.vision.postprocess import ScoredAnchors, select_top_on_host


def packed_rows(rng: np.random.Generator, images: int, count: int, classes: int) -> torch.Tensor:
    """(images, count, 7) rows of clustered boxes, best first, as `score_anchors` packs them."""
    rows = np.zeros((images, count, 7), np.float32)
    for image in range(images):
        centres = rng.uniform(40, 600, (6, 2))
        pick = rng.integers(0, 6, count)
        size = rng.uniform(20, 120, (count, 2))
        centre = centres[pick] + rng.normal(0, 8, (count, 2))
        rows[image, :, :2] = centre - size / 2
        rows[image, :, 2:4] = centre + size / 2
        # Coarse scores: many exact ties, which greedy resolves by anchor index.
        rows[image, :, 4] = np.round(rng.uniform(0, 1, count), 2)
        rows[image, :, 5] = rng.integers(0, classes, count)
        rows[image, :, 6] = rng.permutation(8400)[:count]
        rows[image] = rows[image][np.argsort(-rows[image, :, 4], kind="stable")]
    return torch.from_numpy(rows)


def scored_from(top: torch.Tensor, suppression: DeviceSuppression | None = None) -> ScoredAnchors:
    """ScoredAnchors whose full-anchor tensors only matter for their shape: as many anchors as
    were packed, so every anchor is in `top` and none can be missing from it."""
    images, anchors = top.shape[:2]
    return ScoredAnchors(
        boxes=torch.zeros(images, anchors, 4),
        scores=torch.zeros(images, anchors),
        class_ids=torch.zeros(images, anchors, dtype=torch.int64),
        num_classes=int(top[..., 5].max()) + 1,
        top=top,
        suppression=suppression,
    )


def decided(top: torch.Tensor, conf: float, nms: float, passes: int = 8) -> DeviceSuppression:
    suppression = suppress_packed_anchors(top, torch.tensor([conf, nms]), passes)
    return suppression._replace(conf_threshold=conf, nms_threshold=nms)


def assert_same_selection(found, expected) -> None:
    assert found is not None and expected is not None
    for field in expected._fields:
        np.testing.assert_array_equal(getattr(found, field), getattr(expected, field))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("conf", "nms"), [(0.1, 0.45), (0.3, 0.65), (0.05, 0.3)])
def test_device_decision_equals_the_hosts_greedy_nms(seed, conf, nms):
    top = packed_rows(np.random.default_rng(seed), images=3, count=160, classes=3)
    suppression = decided(top, conf, nms)
    assert bool(suppression.settled.all())
    host = select_top_on_host(scored_from(top), conf, nms)
    device = select_top_on_host(scored_from(top, suppression), conf, nms)
    assert_same_selection(device, host)
    assert 0 < len(host.scores) < 3 * 160  # suppression happened, something was kept


def test_equal_scores_keep_the_lower_anchor_index_as_the_host_does():
    # Two overlapping boxes of one class with the same score: greedy keeps the first in anchor
    # order, whichever the top-k packing put first.
    rows = torch.tensor(
        [[[100.0, 100, 140, 140, 0.8, 1, 900], [102, 101, 142, 141, 0.8, 1, 10]]]
    ).float()
    suppression = decided(rows, 0.3, 0.45)
    assert suppression.kept.tolist() == [[False, True]]
    found = select_top_on_host(scored_from(rows, suppression), 0.3, 0.45)
    assert found.anchor_index.tolist() == [10]


def test_non_finite_boxes_and_low_scores_are_never_kept_nor_suppress():
    rows = torch.tensor(
        [
            [
                [100.0, 100, float("inf"), 140, 0.9, 0, 1],  # best, but not a box
                [100, 100, 140, 140, 0.8, 0, 2],
                [101, 100, 141, 140, 0.2, 0, 3],  # below the threshold: no suppressor
                [300, 300, 340, 340, float("nan"), 0, 4],
            ]
        ]
    )
    suppression = decided(rows, 0.3, 0.45)
    assert suppression.kept.tolist() == [[False, True, False, False]]
    assert_same_selection(
        select_top_on_host(scored_from(rows, suppression), 0.3, 0.45),
        select_top_on_host(scored_from(rows), 0.3, 0.45),
    )


def chain(length: int) -> torch.Tensor:
    """Boxes each overlapping the next (IoU ~0.67), scores falling: greedy keeps every other one
    and needs every link to decide the last."""
    rows = [[10.0 * k, 0, 10.0 * k + 50, 50, 0.9 - 0.01 * k, 0, k] for k in range(length)]
    return torch.tensor([rows])


def test_a_chain_longer_than_the_passes_is_reported_unsettled_and_decided_on_the_host():
    top = chain(12)
    short = decided(top, 0.3, 0.45, passes=4)
    assert short.settled.tolist() == [False]
    long = decided(top, 0.3, 0.45, passes=16)
    assert long.settled.tolist() == [True]
    expected = select_top_on_host(scored_from(top), 0.3, 0.45)
    assert expected.anchor_index.tolist() == list(range(0, 12, 2))
    assert_same_selection(select_top_on_host(scored_from(top, long), 0.3, 0.45), expected)
    # Unsettled: the host decides that image itself and gets the same answer.
    assert_same_selection(select_top_on_host(scored_from(top, short), 0.3, 0.45), expected)


def test_a_decision_for_other_thresholds_is_not_used():
    top = packed_rows(np.random.default_rng(7), images=2, count=120, classes=2)
    stale = decided(top, 0.1, 0.45)
    for conf, nms in ((0.5, 0.45), (0.1, 0.6)):
        assert_same_selection(
            select_top_on_host(scored_from(top, stale), conf, nms),
            select_top_on_host(scored_from(top), conf, nms),
        )
    # Sanity of the check itself: a wrong mask would be visible at those thresholds.
    wrong = stale._replace(conf_threshold=0.5)
    assert len(select_top_on_host(scored_from(top, wrong), 0.5, 0.45).scores) != len(
        select_top_on_host(scored_from(top), 0.5, 0.45).scores
    )


def test_shapes_are_fixed_whatever_the_data():
    top = packed_rows(np.random.default_rng(3), images=2, count=64, classes=1)
    for conf in (0.0, 0.5, 1.0):
        suppression = suppress_packed_anchors(top, torch.tensor([conf, 0.45]))
        assert suppression.kept.shape == (2, 64) and suppression.kept.dtype == torch.bool
        assert suppression.settled.shape == (2,)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="N x K x 7"):
        suppress_packed_anchors(torch.zeros(4, 7), torch.tensor([0.3, 0.45]))
    with pytest.raises(ValueError, match="passes"):
        suppress_packed_anchors(torch.zeros(1, 4, 7), torch.tensor([0.3, 0.45]), passes=1)
