"""Temporal stability of video detections, after Zhang & Wang 2016 ("On the stability of video
detection and tracking", arXiv:1611.06467).

Per ground-truth trajectory k (T_k frames):
- fragment error  f_k / (T_k − 1), f_k = number of detected ⇄ missed changes between its frames;
- centre error    σ(e_x) + σ(e_y), e_x = (x_p − x_g)/w_g, e_y = (y_p − y_g)/h_g over matched frames;
- scale and ratio error  σ(e_s) + σ(e_r), e_s = √(w_p·h_p / (w_g·h_g)), e_r = (w_p/h_p)/(w_g/h_g);
each averaged over trajectories. These are standard deviations, i.e. jitter: a constant offset
costs nothing. Predictions are matched to ground truth per frame by maximum-IoU assignment at
IoU ≥ ``iou_threshold``; with predicted ids, a trajectory first keeps the track it was last
matched to while that still overlaps it (CLEAR MOT). Extras: ID switches (when predicted ids
are given) and the lag of the predicted centres behind the true motion, in frames.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from togethernet_ros.tracking.assignment import match_by_iou
from togethernet_ros.tracking.box_geometry import pairwise_iou, xyxy_to_cxcywh

# Below this true speed (pixels per frame) a frame says nothing about lag.
_MIN_SPEED_FOR_LAG = 0.25


@dataclass(frozen=True)
class StabilityReport:
    """Stability metrics (lower is better) plus coverage figures."""

    fragment_error: float
    centre_error: float
    centre_error_x: float
    centre_error_y: float
    scale_ratio_error: float
    scale_error: float
    ratio_error: float
    id_switches: int | None
    """Changes of the matched predicted id along a true trajectory; None without predicted ids."""
    lag_frames: float
    """Least-squares delay of predicted centres behind the true motion (NaN if nothing moves)."""
    recall: float
    """Fraction of ground-truth boxes matched."""
    num_trajectories: int

    @property
    def stability_error(self) -> float:
        """The paper's overall figure: fragment + centre + scale-and-ratio error."""
        return self.fragment_error + self.centre_error + self.scale_ratio_error


@dataclass
class _TrajectoryFrames:
    frames: list[int]
    gt_boxes: list[np.ndarray]
    pred_boxes: list[np.ndarray | None]
    pred_ids: list[int | None]


def evaluate_stability(
    gt_boxes: Sequence[np.ndarray],
    pred_boxes: Sequence[np.ndarray],
    gt_ids: Sequence[np.ndarray] | None = None,
    pred_ids: Sequence[np.ndarray] | None = None,
    iou_threshold: float = 0.5,
) -> StabilityReport:
    """Stability metrics of per-frame predicted xyxy boxes against per-frame ground truth.

    ``gt_boxes[t]`` / ``pred_boxes[t]``: (M_t, 4) / (P_t, 4) boxes of frame t. ``gt_ids[t]``:
    (M_t,) trajectory ids; without them true boxes are chained into trajectories frame to frame
    by IoU ≥ ``iou_threshold``. ``pred_ids[t]``: (P_t,) track ids, needed for ID switches.
    """
    if len(gt_boxes) != len(pred_boxes):
        raise ValueError(
            f"stability needs one prediction list per frame: {len(gt_boxes)} ground-truth "
            f"frames vs {len(pred_boxes)} predicted frames"
        )
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    gt_list = [_as_boxes(b, f"gt_boxes[{t}]") for t, b in enumerate(gt_boxes)]
    pred_list = [_as_boxes(b, f"pred_boxes[{t}]") for t, b in enumerate(pred_boxes)]
    gt_id_list = (
        _link_by_iou(gt_list, iou_threshold)
        if gt_ids is None
        else _as_ids(gt_ids, gt_list, "gt_ids")
    )
    pred_id_list = None if pred_ids is None else _as_ids(pred_ids, pred_list, "pred_ids")

    trajectories: dict[int, _TrajectoryFrames] = {}
    matched_total = 0
    last_pred_id: dict[int, int] = {}  # true trajectory → predicted id it was last matched to
    for t, (gt, pred) in enumerate(zip(gt_list, pred_list, strict=True)):
        matched_pred = _match_frame(
            pairwise_iou(gt, pred),
            gt_id_list[t],
            None if pred_id_list is None else pred_id_list[t],
            last_pred_id,
            iou_threshold,
        )
        matched_total += sum(p is not None for p in matched_pred)
        for g, track in enumerate(gt_id_list[t].tolist()):
            entry = trajectories.setdefault(track, _TrajectoryFrames([], [], [], []))
            p = matched_pred[g]
            entry.frames.append(t)
            entry.gt_boxes.append(gt[g])
            entry.pred_boxes.append(None if p is None else pred[p])
            entry.pred_ids.append(
                None if p is None or pred_id_list is None else int(pred_id_list[t][p])
            )

    fragments, centre_x, centre_y, scale, ratio = [], [], [], [], []
    id_switches = 0
    lag_num = 0.0
    lag_den = 0.0
    for entry in trajectories.values():
        order = np.argsort(entry.frames, kind="stable")
        detected = np.array([entry.pred_boxes[i] is not None for i in order])
        if len(detected) > 1:
            fragments.append(np.count_nonzero(detected[1:] != detected[:-1]) / (len(detected) - 1))
        ids = [entry.pred_ids[i] for i in order if entry.pred_ids[i] is not None]
        id_switches += sum(a != b for a, b in itertools.pairwise(ids))

        frames = np.asarray(entry.frames, dtype=np.float64)[order]
        gt = xyxy_to_cxcywh(np.stack([entry.gt_boxes[i] for i in order]))
        hit = np.flatnonzero(detected)
        if len(hit) < 2:
            continue
        pred = xyxy_to_cxcywh(np.stack([entry.pred_boxes[i] for i in order[hit]]))
        truth = gt[hit]
        err_x = (pred[:, 0] - truth[:, 0]) / truth[:, 2]
        err_y = (pred[:, 1] - truth[:, 1]) / truth[:, 3]
        centre_x.append(float(np.std(err_x)))
        centre_y.append(float(np.std(err_y)))
        scale.append(float(np.std(np.sqrt(pred[:, 2] * pred[:, 3] / (truth[:, 2] * truth[:, 3])))))
        ratio.append(float(np.std((pred[:, 2] / pred[:, 3]) / (truth[:, 2] / truth[:, 3]))))

        velocity = np.stack([np.gradient(gt[:, i], frames) for i in (0, 1)], axis=1)[hit]
        moving = np.linalg.norm(velocity, axis=1) >= _MIN_SPEED_FOR_LAG
        offset = pred[:, :2] - truth[:, :2]
        # pred ≈ truth − lag·velocity  ⇒  least-squares lag = −Σ offset·v / Σ |v|².
        lag_num -= float(np.sum(offset[moving] * velocity[moving]))
        lag_den += float(np.sum(velocity[moving] ** 2))

    total_gt = sum(len(g) for g in gt_list)
    return StabilityReport(
        fragment_error=_mean(fragments),
        centre_error=_mean(centre_x) + _mean(centre_y),
        centre_error_x=_mean(centre_x),
        centre_error_y=_mean(centre_y),
        scale_ratio_error=_mean(scale) + _mean(ratio),
        scale_error=_mean(scale),
        ratio_error=_mean(ratio),
        id_switches=None if pred_id_list is None else int(id_switches),
        lag_frames=lag_num / lag_den if lag_den > 0 else math.nan,
        recall=matched_total / total_gt if total_gt else math.nan,
        num_trajectories=len(trajectories),
    )


def _match_frame(
    iou: np.ndarray,
    gt_ids: np.ndarray,
    pred_ids: np.ndarray | None,
    last_pred_id: dict[int, int],
    iou_threshold: float,
) -> list[int | None]:
    """The prediction matched to each true box of one frame (None: missed).

    As CLEAR MOT (Bernardin & Stiefelhagen 2008): a trajectory keeps the predicted id it was
    last matched to while that track still overlaps it by ``iou_threshold``; only the rest is
    assigned by maximum IoU. Re-assigning everything each frame counted a switch whenever a
    duplicate box overlapped a little better for a frame, with the track never lost.
    ``last_pred_id`` is updated.
    """
    matched: list[int | None] = [None] * iou.shape[0]
    free_pred = np.ones(iou.shape[1], bool)
    if pred_ids is not None:
        column_of = {int(track): p for p, track in enumerate(pred_ids.tolist())}
        for g, track in enumerate(gt_ids.tolist()):
            if track not in last_pred_id:
                continue
            p = column_of.get(last_pred_id[track])
            if p is not None and free_pred[p] and iou[g, p] >= iou_threshold:
                matched[g] = p
                free_pred[p] = False
    rows = np.array([g for g, p in enumerate(matched) if p is None], np.int64)
    cols = np.flatnonzero(free_pred)
    for r, c in match_by_iou(iou[np.ix_(rows, cols)], iou_threshold).pairs.tolist():
        matched[int(rows[r])] = int(cols[c])
    if pred_ids is not None:
        for g, p in enumerate(matched):
            if p is not None:
                last_pred_id[int(gt_ids[g])] = int(pred_ids[p])
    return matched


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if np.any(array[:, 2:] <= array[:, :2]):
        raise ValueError(f"{name} contains boxes with x2 <= x1 or y2 <= y1")
    return array


def _as_ids(ids: Sequence[np.ndarray], boxes: list[np.ndarray], name: str) -> list[np.ndarray]:
    if len(ids) != len(boxes):
        raise ValueError(f"{name} has {len(ids)} frames, the boxes have {len(boxes)}")
    out = []
    for t, (frame_ids, frame_boxes) in enumerate(zip(ids, boxes, strict=True)):
        array = np.asarray(frame_ids).reshape(-1).astype(np.int64)
        if len(array) != len(frame_boxes):
            raise ValueError(f"{name}[{t}] has {len(array)} ids for {len(frame_boxes)} boxes")
        if len(np.unique(array)) != len(array):
            raise ValueError(f"{name}[{t}] repeats an id within one frame")
        out.append(array)
    return out


def _link_by_iou(gt_list: list[np.ndarray], iou_threshold: float) -> list[np.ndarray]:
    """Give unlabelled true boxes trajectory ids by chaining IoU matches between frames."""
    next_id = 0
    previous_boxes = np.zeros((0, 4))
    previous_ids = np.zeros(0, dtype=np.int64)
    linked = []
    for boxes in gt_list:
        ids = np.full(len(boxes), -1, dtype=np.int64)
        pairs = match_by_iou(pairwise_iou(previous_boxes, boxes), iou_threshold).pairs
        ids[pairs[:, 1]] = previous_ids[pairs[:, 0]]
        fresh = ids < 0
        ids[fresh] = np.arange(next_id, next_id + np.count_nonzero(fresh))
        next_id += int(np.count_nonzero(fresh))
        linked.append(ids)
        previous_boxes, previous_ids = boxes, ids
    return linked
