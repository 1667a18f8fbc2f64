"""Own batched NMS equals a plain greedy reference, on both its dense and its sweep path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from togethernet_ros.vision import nms
from togethernet_ros.vision.nms import batched_nms, greedy_batched_nms


def reference_nms(boxes, scores, groups, threshold):
    """Textbook per-group greedy NMS, one box at a time."""
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[rank + 1 :]:
            if suppressed[j] or groups[j] != groups[i]:
                continue
            inter_w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            inter_h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(0.0, inter_w) * max(0.0, inter_h)
            area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            if inter / (area_i + area_j - inter) > threshold:
                suppressed[j] = True
    return np.array(keep, dtype=np.int64)


def random_boxes(count, seed, spread=200.0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, spread, (count, 2))
    sizes = rng.uniform(5, 60, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    scores = rng.random(count).astype(np.float32)
    groups = rng.integers(0, 3, count)
    return boxes, scores, groups


@pytest.mark.parametrize("count", [1, 7, 60, 400])
@pytest.mark.parametrize("threshold", [0.3, 0.65])
def test_dense_path_equals_reference(count, threshold):
    boxes, scores, groups = random_boxes(count, seed=count)
    kept = batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups), threshold
    )
    np.testing.assert_array_equal(kept.numpy(), reference_nms(boxes, scores, groups, threshold))


def test_sweep_path_with_chunking_equals_reference(monkeypatch):
    boxes, scores, groups = random_boxes(600, seed=11)
    expected = reference_nms(boxes, scores, groups, 0.45)
    monkeypatch.setattr(nms, "_DENSE_LIMIT", 0)
    for chunk in (50, 4_000_000):
        monkeypatch.setattr(nms, "_SWEEP_CHUNK_PAIRS", chunk)
        kept = greedy_batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups), 0.45
        )
        np.testing.assert_array_equal(kept.numpy(), expected)
    assert 0 < len(expected) < 600


def test_large_input_takes_sweep_path_and_matches_dense_path(monkeypatch):
    boxes, scores, groups = random_boxes(1500, seed=5, spread=640.0)
    args = [torch.from_numpy(a) for a in (boxes, scores, groups)]
    assert nms._DENSE_LIMIT < 1500
    swept = greedy_batched_nms(*args, 0.5)
    monkeypatch.setattr(nms, "_DENSE_LIMIT", 10_000)
    dense = greedy_batched_nms(*args, 0.5)
    np.testing.assert_array_equal(swept.numpy(), dense.numpy())
    assert 0 < len(swept) < 1500


def test_chain_suppression_follows_greedy_order():
    # A overlaps B, B overlaps C, A does not overlap C: greedy keeps A and C (B is gone).
    boxes = torch.tensor([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = batched_nms(boxes, scores, torch.zeros(3, dtype=torch.int64), 0.3)
    assert kept.tolist() == [0, 2]
    # Different classes never suppress each other.
    kept = batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.3)
    assert kept.tolist() == [0, 1, 2]


def test_empty_and_malformed_inputs():
    empty = batched_nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        batched_nms(torch.zeros((3, 5)), torch.zeros(3), torch.zeros(3, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="disagree"):
        batched_nms(torch.zeros((3, 4)), torch.zeros(2), torch.zeros(3, dtype=torch.int64), 0.5)


def with_bad_box(boxes: np.ndarray, index: int, column: int, value: float) -> np.ndarray:
    corrupted = boxes.copy()
    corrupted[index, column] = value
    return corrupted


@pytest.mark.parametrize(
    ("column", "value"),
    [(0, np.nan), (0, -np.inf), (2, np.inf), (2, 1e30)],
    ids=["nan", "-inf", "+inf", "absurd-finite"],
)
def test_sweep_path_survives_one_non_finite_or_absurd_box(monkeypatch, column, value):
    # One such box (fp16 overflow, a corrupt checkpoint) used to set a NaN/inf/1e30 group
    # shift: every other group's x collapsed to one value and nothing there was suppressed.
    boxes, scores, groups = random_boxes(1500, seed=5, spread=640.0)
    corrupted = with_bad_box(boxes, 7, column, value)
    args = [torch.from_numpy(a) for a in (corrupted, scores, groups)]
    swept = greedy_batched_nms(*args, 0.5)
    monkeypatch.setattr(nms, "_DENSE_LIMIT", 10_000)
    dense = greedy_batched_nms(*args, 0.5)
    np.testing.assert_array_equal(swept.numpy(), dense.numpy())
    # The odd box overlaps nothing (IoU NaN or ~0): every other box fares as without it.
    clean = set(greedy_batched_nms(*[torch.from_numpy(a) for a in (boxes, scores, groups)], 0.5))
    assert set(swept.tolist()) - {7} == {int(i) for i in clean} - {7}


def test_sweep_work_stays_linear_with_a_nan_box(monkeypatch):
    # A NaN x sorted after every box and made each box a candidate of all later ones: 8400
    # candidates took 4.3 s instead of 0.14 s. Count the pairs whose IoU is evaluated.
    evaluated = []
    real_pair_iou = nms._pair_iou

    def counting_pair_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        evaluated.append(first.shape[0])
        return real_pair_iou(first, second)

    monkeypatch.setattr(nms, "_pair_iou", counting_pair_iou)
    boxes, scores, groups = random_boxes(1500, seed=5, spread=640.0)
    greedy_batched_nms(*[torch.from_numpy(a) for a in (boxes, scores, groups)], 0.5)
    clean_pairs = sum(evaluated)
    assert clean_pairs > 0, "the sweep evaluated no pairs: the count measures nothing"
    evaluated.clear()
    corrupted = with_bad_box(boxes, 7, 0, np.nan)
    greedy_batched_nms(*[torch.from_numpy(a) for a in (corrupted, scores, groups)], 0.5)
    assert sum(evaluated) <= clean_pairs


def test_sweep_path_with_only_non_finite_boxes_keeps_them_all(monkeypatch):
    monkeypatch.setattr(nms, "_DENSE_LIMIT", 0)
    boxes = torch.full((5, 4), float("nan"))
    kept = greedy_batched_nms(boxes, torch.rand(5), torch.zeros(5, dtype=torch.int64), 0.5)
    assert sorted(kept.tolist()) == [0, 1, 2, 3, 4]
