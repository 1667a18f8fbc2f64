"""Decoded anchors -> per-image detections in source pixels (upstream `non_max_suppression`).

score = obj x max(cls), kept when score >= conf_threshold (upstream uses >=), then NMS per image
and class. An anchor whose score is NaN or whose box has a NaN or infinite coordinate (fp16
overflow, a corrupt checkpoint) is never a candidate: it is dropped before NMS on both paths,
so it can neither suppress a real box nor reach the published detections. The whole batch goes
through one NMS call with (image, class) as the group, so the work is vectorised over the batch.
When the best anchors were packed on the device (`score_anchors(top_k=...)`), only those are
copied to the host and selected there. `max_detections` then keeps only the highest-scoring
boxes of each image (across classes), after NMS: a poorly trained model or a low threshold can
leave thousands of boxes per frame, which stall the tracker (2-4 s per frame at ~4,000 boxes).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.device_nms import DeviceSuppression
from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.nms import batched_nms


class SelectedAnchors(NamedTuple):
    """Anchors surviving the score threshold and NMS, sorted by image, then descending score."""

    image_index: torch.Tensor  # (M,) int64
    anchor_index: torch.Tensor  # (M,) int64 into the decoded anchors
    boxes: torch.Tensor  # (M, 4) float32 xyxy in network-input pixels
    scores: torch.Tensor  # (M,) float32 obj x cls
    class_ids: torch.Tensor  # (M,) int64


def check_thresholds(conf_threshold: float, nms_threshold: float) -> None:
    """Raise ValueError unless both thresholds lie in [0, 1]."""
    for name, value in (("conf_threshold", conf_threshold), ("nms_threshold", nms_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


def check_max_detections(value: int | None) -> int | None:
    """Validate a per-image detection cap: None = no cap, else an integer >= 1.

    0 is refused rather than read as "no cap" or "nothing": either reading would surprise.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"max_detections must be an integer >= 1 (or None for no cap), got {value!r}"
        )
    if value < 1:
        raise ValueError(
            f"max_detections must be >= 1 (or None for no cap), got {int(value)}; "
            "0 would drop every detection"
        )
    return int(value)


class ScoredAnchors(NamedTuple):
    """Every anchor of a batch with its box and best class, before thresholding."""

    boxes: torch.Tensor  # (N, A, 4) float32 xyxy in network-input pixels
    scores: torch.Tensor  # (N, A) float32 obj x cls
    class_ids: torch.Tensor  # (N, A) int64
    num_classes: int
    # The K best anchors of each image as (N, K, 7) float32 rows [x1, y1, x2, y2, score, class,
    # anchor index], best first, when `score_anchors` was asked for them (`top_k`).
    top: torch.Tensor | None = None
    # Thresholding and NMS of `top` already decided on the device (see vision/device_nms.py).
    suppression: DeviceSuppression | None = None


def score_anchors(decoded: torch.Tensor, top_k: int = 0) -> ScoredAnchors:
    """Decoded N x A x (5+C) batch (see `decode_outputs`) -> xyxy boxes, scores and classes.

    With `top_k` > 0 the best `top_k` anchors per image are also packed into one tensor, so a
    GPU can hand thresholding and NMS to the host with a single small copy (see
    `postprocess_scored`). Fixed-shape work only (no data-dependent sizes), so it can live
    inside a CUDA graph.
    """
    if decoded.ndim != 3 or decoded.shape[-1] < 6:
        raise ValueError(f"decoded must have shape N x A x (5+C), got {tuple(decoded.shape)}")
    class_conf, class_ids = decoded[..., 5:].max(dim=-1)
    half_extent = decoded[..., 2:4] / 2
    boxes = torch.cat((decoded[..., :2] - half_extent, decoded[..., :2] + half_extent), dim=-1)
    num_classes = decoded.shape[-1] - 5
    scores = decoded[..., 4] * class_conf
    top = _pack_top_anchors(boxes, scores, class_ids, top_k) if top_k > 0 else None
    return ScoredAnchors(boxes, scores, class_ids, num_classes, top)


def _pack_top_anchors(
    boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor, top_k: int
) -> torch.Tensor:
    # NaN would rank first in topk and push real candidates out; it never passes a threshold
    # anyway, so it ranks last here.
    ranked = torch.nan_to_num(scores, nan=-1.0)
    top_scores, anchor_index = ranked.topk(min(top_k, scores.shape[1]), dim=1)
    top_boxes = boxes.gather(1, anchor_index[..., None].expand(-1, -1, 4))
    # Class ids and anchor indices are exact in float32 (far below 2**24).
    return torch.cat(
        (
            top_boxes,
            top_scores[..., None],
            class_ids.gather(1, anchor_index)[..., None].float(),
            anchor_index[..., None].float(),
        ),
        dim=-1,
    )


def select_scored(
    scored: ScoredAnchors, conf_threshold: float, nms_threshold: float
) -> SelectedAnchors:
    """Threshold and NMS scored anchors (see `score_anchors`), per image and class."""
    check_thresholds(conf_threshold, nms_threshold)
    image_index, anchor_index = (scored.scores >= conf_threshold).nonzero(as_tuple=True)
    boxes = scored.boxes[image_index, anchor_index]
    # Tested on the candidates only: over all anchors the test cost more than this whole path
    # saves (+140 us of ~460 us for 8400 anchors on the CPU). Filtering only when needed spares
    # the usual frame three more gathers.
    finite = torch.isfinite(boxes).all(dim=1)
    if not bool(finite.all()):
        image_index, anchor_index, boxes = image_index[finite], anchor_index[finite], boxes[finite]
    scores = scored.scores[image_index, anchor_index]
    class_ids = scored.class_ids[image_index, anchor_index]
    # Boxes of different images never suppress each other: the image is part of the group.
    groups = image_index * scored.num_classes + class_ids
    keep = batched_nms(boxes, scores, groups, nms_threshold)
    # NMS output is in global score order; a stable sort by image keeps that order per image.
    keep = keep[torch.argsort(image_index[keep], stable=True)]
    return SelectedAnchors(
        image_index[keep], anchor_index[keep], boxes[keep], scores[keep], class_ids[keep]
    )


class HostSelection(NamedTuple):
    """`SelectedAnchors` as numpy arrays, made on the host from the packed best anchors."""

    image_index: np.ndarray  # (M,) int64
    anchor_index: np.ndarray  # (M,) int64
    boxes: np.ndarray  # (M, 4) float32
    scores: np.ndarray  # (M,) float32
    class_ids: np.ndarray  # (M,) int64


def select_top_on_host(
    scored: ScoredAnchors, conf_threshold: float, nms_threshold: float
) -> HostSelection | None:
    """Threshold and NMS on a host copy of the K best anchors per image (see `score_anchors`).

    On a GPU this replaces a data-dependent device pipeline (nonzero, gathers, NMS: a dozen
    launches and two synchronisations) with one small copy. The few candidates are handled in
    numpy: a hundred tiny torch CPU ops cost more than the arithmetic (~0.5 ms per batch).
    Exact: when an image's K-th best anchor still passes the threshold, more than K might,
    and None sends the caller back to `select_scored` on every anchor. Candidates enter NMS in
    anchor order, as they do there, so equal scores resolve the same way.

    Where NMS was already decided on the device for these thresholds (`scored.suppression`),
    an image whose decision settled only has its kept rows read and ordered.
    """
    check_thresholds(conf_threshold, nms_threshold)
    if scored.top is None:
        return None
    top = scored.top.cpu().numpy()
    batch, candidates = top.shape[:2]
    if candidates < scored.scores.shape[1] and bool((top[:, -1, 4] >= conf_threshold).any()):
        return None
    decided = _device_decision(scored.suppression, conf_threshold, nms_threshold)
    kept: list[np.ndarray] = []
    for image in range(batch):
        rows = top[image]
        if decided is not None and decided.settled[image]:
            rows = rows[decided.kept[image]]
            # Descending score, equal scores in anchor order: the order _greedy_nms returns.
            kept.append(rows[np.lexsort((rows[:, 6], -rows[:, 4]))])
            continue
        rows = rows[rows[:, 4] >= conf_threshold]  # NaN fails this test, as on every anchor
        finite = np.isfinite(rows[:, :4]).all(axis=1)  # after the threshold: few rows to test
        if not finite.all():
            rows = rows[finite]
        rows = rows[np.argsort(rows[:, 6], kind="stable")]  # anchor order
        kept.append(rows[_greedy_nms(rows[:, :4], rows[:, 4], rows[:, 5], nms_threshold)])
    packed = kept[0] if len(kept) == 1 else np.concatenate(kept or [top[:0, 0]])
    # Class ids and anchor indices are exact in float32 (far below 2**24).
    return HostSelection(
        image_index=np.repeat(np.arange(batch, dtype=np.int64), [len(rows) for rows in kept]),
        anchor_index=packed[:, 6].astype(np.int64),
        boxes=np.ascontiguousarray(packed[:, :4]),
        scores=np.ascontiguousarray(packed[:, 4]),
        class_ids=packed[:, 5].astype(np.int64),
    )


class _HostDecision(NamedTuple):
    kept: np.ndarray  # (N, K) bool
    settled: np.ndarray  # (N,) bool


def _device_decision(
    suppression: DeviceSuppression | None, conf_threshold: float, nms_threshold: float
) -> _HostDecision | None:
    """Host copies of a device NMS decision, if it was made for these thresholds."""
    if suppression is None or (suppression.conf_threshold, suppression.nms_threshold) != (
        conf_threshold,
        nms_threshold,
    ):
        return None  # thresholds changed since (or never recorded): decide here
    return _HostDecision(suppression.kept.cpu().numpy(), suppression.settled.cpu().numpy())


def _greedy_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Row indices kept by per-class greedy NMS, in descending (stable) score order.

    Same rule as `batched_nms`: a box goes when its IoU with a kept box of its class is
    > threshold. Dense pairs are fine here: at most K candidates per image. The IoU is computed
    in float32 like `batched_nms`, not with tracking's float64 `pairwise_iou`, so both paths
    keep exactly the same boxes.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, class_ids = boxes[order], class_ids[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(column) for column in boxes.T)
    areas = (x2 - x1) * (y2 - y1)
    # The same float32 arithmetic as batched_nms, in place: with the tracker's low stage a
    # frame brings a few hundred candidates, and the temporaries cost more than the arithmetic.
    # np.maximum(x, 0) is np.clip(x, 0, None) without clip's dispatch overhead.
    inter = np.minimum.outer(x2, x2)
    inter -= np.maximum.outer(x1, x1)
    np.maximum(inter, 0.0, out=inter)
    height = np.minimum.outer(y2, y2)
    height -= np.maximum.outer(y1, y1)
    np.maximum(height, 0.0, out=height)
    inter *= height
    union = np.add.outer(areas, areas)
    union -= inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.divide(inter, union, out=inter)
    suppresses = iou > iou_threshold
    suppresses &= np.equal.outer(class_ids, class_ids)
    removed = np.zeros(len(order), dtype=bool)
    keep = []
    for index in range(len(order)):
        if not removed[index]:
            keep.append(index)
            removed |= suppresses[index]
    return order[np.array(keep, dtype=np.int64)]


def select_anchors(
    decoded: torch.Tensor, conf_threshold: float, nms_threshold: float
) -> SelectedAnchors:
    """Threshold and NMS a decoded N x A x (5+C) batch (see `decode_outputs`)."""
    return select_scored(score_anchors(decoded), conf_threshold, nms_threshold)


def unletterbox_boxes(
    boxes: np.ndarray, info: LetterboxInfo, clip: bool = True, upstream_rounding: bool = False
) -> np.ndarray:
    """(M, 4) xyxy network-input pixels -> float32 xyxy source pixels.

    By default the exact inverse of the letterbox applied (`info`'s resized size and offset).
    `upstream_rounding` follows upstream `yolo_correct_boxes` instead, as `eval` must to score
    like get_map.py: it re-derives the resized shape with `np.round` (the resize itself used
    `int()`) and centres it without flooring, which puts boxes of unusual frame sizes up to a few
    source pixels off (2448x2048 into 384x640: 2.7 px); each corner goes through the box centre
    and half extent, as there, so the float64 arithmetic is upstream's. For 16:9 and 4:3 frames
    into the usual inputs both are the same.
    """
    gain, offset, bounds = (_box_correction if upstream_rounding else _exact_box_correction)(info)
    corners = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2)  # [(x1, y1), (x2, y2)]
    half_extent = (corners[:, 1] - corners[:, 0]) * gain / 2.0
    centre = ((corners[:, 0] + corners[:, 1]) / 2.0 - offset) * gain
    result = np.concatenate((centre - half_extent, centre + half_extent), axis=1)
    if clip:
        # np.minimum(np.maximum(...)) is np.clip without its Python-level dispatch.
        np.minimum(np.maximum(result, 0.0, out=result), bounds, out=result)
    return result.astype(np.float32)


@functools.lru_cache(maxsize=64)
def _box_correction(info: LetterboxInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-axis (x, y) gain and centring offset of `unletterbox_boxes`, and its clip bounds."""
    input_shape = np.array(info.input_size[::-1], dtype=np.float64)
    image_shape = np.array(info.source_size[::-1], dtype=np.float64)
    new_shape = np.round(image_shape * np.min(input_shape / image_shape))
    offset = (input_shape - new_shape) / 2.0
    # Upstream's rounding collapses a side scaled below half an input pixel (a 1x2000 strip into
    # 640) to 0, and its gain to inf: every box came out NaN and was dropped. The letterbox still
    # gave that side one row (see LetterboxInfo), so that axis is mapped back through it.
    collapsed = new_shape < 1
    if collapsed.any():
        new_shape = np.where(collapsed, info.resized_size[::-1], new_shape)
        offset = np.where(collapsed, info.offset[::-1], offset)
    gain = image_shape / new_shape  # source pixels per input pixel
    bounds = np.concatenate((image_shape, image_shape))  # (w, h, w, h)
    for array in (gain, offset, bounds):
        array.flags.writeable = False  # shared by every call for this geometry
    return gain, offset, bounds


@functools.lru_cache(maxsize=64)
def _exact_box_correction(info: LetterboxInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-axis (x, y) gain and offset inverting the letterbox as applied, and clip bounds."""
    image_shape = np.array(info.source_size[::-1], dtype=np.float64)
    gain = image_shape / np.array(info.resized_size[::-1], dtype=np.float64)
    offset = np.array(info.offset[::-1], dtype=np.float64)
    bounds = np.concatenate((image_shape, image_shape))
    for array in (gain, offset, bounds):
        array.flags.writeable = False
    return gain, offset, bounds


def postprocess(
    decoded: torch.Tensor,
    infos: Sequence[LetterboxInfo],
    conf_threshold: float,
    nms_threshold: float,
    clip: bool = True,
    *,
    max_detections: int | None = None,
    upstream_rounding: bool = False,
) -> list[Detections]:
    """Decoded batch -> one Detections per image, boxes in source pixels (clipped to the image).

    `max_detections` keeps at most that many boxes per image, the highest-scoring (None: all);
    `upstream_rounding`: see `unletterbox_boxes`.
    """
    return postprocess_scored(
        score_anchors(decoded),
        infos,
        conf_threshold,
        nms_threshold,
        clip=clip,
        max_detections=max_detections,
        upstream_rounding=upstream_rounding,
    )


def postprocess_scored(
    scored: ScoredAnchors,
    infos: Sequence[LetterboxInfo],
    conf_threshold: float,
    nms_threshold: float,
    clip: bool = True,
    *,
    max_detections: int | None = None,
    upstream_rounding: bool = False,
) -> list[Detections]:
    """Scored anchors (see `score_anchors`) -> one Detections per image in source pixels.

    `max_detections` keeps at most that many boxes per image, the highest-scoring across
    classes, in their usual descending-score order (None: all). It applies after NMS, so a
    capped image keeps exactly the first boxes the uncapped one would list.
    `upstream_rounding`: map boxes back as get_map.py does (see `unletterbox_boxes`).
    """
    max_detections = check_max_detections(max_detections)
    if len(infos) != scored.scores.shape[0]:
        raise ValueError(
            f"got {len(infos)} letterbox infos for a batch of {scored.scores.shape[0]}"
        )
    chosen = select_top_on_host(scored, conf_threshold, nms_threshold)
    if chosen is None:
        selected = select_scored(scored, conf_threshold, nms_threshold)
        # One device-to-host copy instead of four (each is a synchronisation on a GPU).
        # Indices and class ids are exact in float32 (far below 2**24).
        packed = (
            torch.cat(
                (
                    selected.boxes.float(),
                    selected.scores.float()[:, None],
                    selected.image_index.float()[:, None],
                    selected.class_ids.float()[:, None],
                ),
                dim=1,
            )
            .cpu()
            .numpy()
        )
        boxes, scores = packed[:, :4], packed[:, 4]
        image_index = packed[:, 5].astype(np.int64)
        class_ids = packed[:, 6].astype(np.int64)
    else:
        boxes, scores = chosen.boxes, chosen.scores
        image_index, class_ids = chosen.image_index, chosen.class_ids
    bounds = np.searchsorted(image_index, np.arange(len(infos) + 1))
    results = []
    for index, info in enumerate(infos):
        rows = slice(bounds[index], bounds[index + 1])
        if rows.start == rows.stop:
            results.append(Detections.empty())
            continue
        detections = Detections(
            unletterbox_boxes(boxes[rows], info, clip=clip, upstream_rounding=upstream_rounding),
            scores[rows],
            class_ids[rows],
        )
        if clip:
            # A box that lies wholly in the letterbox padding clips to zero width or height: it
            # covers no source pixel, and zero-area boxes would poison IoU matching downstream.
            sides = detections.boxes[:, 2:] - detections.boxes[:, :2]
            covers_pixels = (sides >= 1.0).all(axis=1)
            if not covers_pixels.all():
                detections = detections.select(covers_pixels)
        # After the zero-area filter: a dropped box does not use up the cap.
        results.append(detections.strongest(max_detections))
    return results
