"""Per-image detection results in source-image pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Boxes (N, 4) float32 xyxy in source pixels, scores (N,) float32, class_ids (N,) int64.

    Rows are sorted by descending score.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.class_ids):
            raise ValueError(
                "Detections arrays disagree in length: "
                f"boxes {len(self.boxes)}, scores {len(self.scores)}, class_ids {len(self.class_ids)}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls()

    def select(self, index: np.ndarray | slice) -> Detections:
        """A subset (boolean mask, index array or slice) as new Detections."""
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])

    def strongest(self, limit: int | None) -> Detections:
        """The ``limit`` highest-scoring rows (all of them when None or fewer)."""
        if limit is None or len(self) <= limit:
            return self
        return self.select(slice(0, limit))  # rows are sorted by descending score

    def to_records(self, class_names: tuple[str, ...] | None = None) -> list[dict]:
        """JSON-ready list of {box_xyxy, score, class_id[, class_name]} dicts."""
        records = []
        for box, score, class_id in zip(self.boxes, self.scores, self.class_ids, strict=True):
            record = {
                "box_xyxy": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                "class_id": int(class_id),
            }
            if class_names is not None:
                record["class_name"] = (
                    class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
                )
            records.append(record)
        return records
