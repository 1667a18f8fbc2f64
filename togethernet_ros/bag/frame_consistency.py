"""Ground-truth-free temporal consistency of per-frame boxes (how much detections flicker).

Without labels one can still measure what a viewer sees: boxes that appear and vanish, and
boxes that shake. Boxes are chained frame to frame (by track id when given, else by maximum
IoU ≥ ``link_iou``); per chain the jitter is the std of the *second* difference of the centre
(normalised by box size) and of log-area, so steady motion costs nothing and only shake counts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from togethernet_ros.tracking.assignment import match_by_iou
from togethernet_ros.tracking.box_geometry import pairwise_iou, xyxy_to_cxcywh


@dataclass(frozen=True)
class ConsistencyReport:
    """Lower is steadier. ``flicker_rate``: share of boxes with no continuation next frame."""

    frames: int
    boxes: int
    chains: int
    mean_chain_length: float
    flicker_rate: float
    centre_jitter: float
    scale_jitter: float

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _chain_ids(boxes: Sequence[np.ndarray], link_iou: float) -> list[np.ndarray]:
    ids: list[np.ndarray] = []
    next_id = 0
    for t, current in enumerate(boxes):
        assigned = np.full(len(current), -1, np.int64)
        if t > 0 and len(current) and len(boxes[t - 1]):
            pairs = match_by_iou(pairwise_iou(boxes[t - 1], current), link_iou).pairs
            for previous, now in pairs.tolist():
                assigned[now] = ids[t - 1][previous]
        for index in np.flatnonzero(assigned < 0):
            assigned[index] = next_id
            next_id += 1
        ids.append(assigned)
    return ids


def frame_consistency(
    boxes: Sequence[np.ndarray],
    track_ids: Sequence[np.ndarray] | None = None,
    link_iou: float = 0.3,
) -> ConsistencyReport:
    """Consistency of ``boxes[t]`` ((N_t, 4) xyxy) over consecutive frames t."""
    boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
    ids = (
        [np.asarray(i, np.int64).reshape(-1) for i in track_ids]
        if track_ids is not None
        else _chain_ids(boxes, link_iou)
    )
    chains: dict[int, list[tuple[int, np.ndarray]]] = {}
    for t, (frame_boxes, frame_ids) in enumerate(zip(boxes, ids, strict=True)):
        for box, chain in zip(frame_boxes, frame_ids.tolist(), strict=True):
            chains.setdefault(chain, []).append((t, box))
    total = sum(len(b) for b in boxes)
    ended = 0
    centre, scale = [], []
    for entries in chains.values():
        frames = [t for t, _ in entries]
        ended += sum(1 for a, b in itertools.pairwise(frames) if b != a + 1)
        ended += 1 if frames[-1] < len(boxes) - 1 else 0
        # Jitter only over runs of consecutive frames.
        run = [entries[0]]
        for entry in [*entries[1:], (-10, None)]:
            if entry[0] == run[-1][0] + 1:
                run.append(entry)
                continue
            if len(run) >= 3:
                cxcywh = xyxy_to_cxcywh(np.stack([b for _, b in run]))
                sizes = np.sqrt(np.clip(cxcywh[:, 2], 0, None) * np.clip(cxcywh[:, 3], 0, None))
                # One scale per run (its median size): per-frame sizes would let a momentarily
                # tiny box blow the figure up. Runs of degenerate boxes say nothing.
                scale_px = float(np.median(sizes))
                if scale_px >= 1.0:
                    centre.append(float(np.std(np.diff(cxcywh[:, :2] / scale_px, 2, axis=0))))
                    scale.append(float(np.std(np.diff(np.log(np.maximum(sizes, 1.0)), 2))))
            run = [entry]
    return ConsistencyReport(
        frames=len(boxes),
        boxes=total,
        chains=len(chains),
        mean_chain_length=total / len(chains) if chains else math.nan,
        flicker_rate=ended / total if total else math.nan,
        centre_jitter=float(np.mean(centre)) if centre else math.nan,
        scale_jitter=float(np.mean(scale)) if scale else math.nan,
    )
