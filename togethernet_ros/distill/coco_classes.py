"""COCO-80 class names and the mapping of a COCO teacher's classes onto the model's classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
from togethernet_ros.vision.detections import Detections

COCO_CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# PASCAL VOC spellings of COCO classes (VOC-FOG / RTTS use the VOC names).
_VOC_TO_COCO = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "tvmonitor": "tv",
    "sofa": "couch",
    "diningtable": "dining table",
    "pottedplant": "potted plant",
}


@dataclass(frozen=True)
class CocoClassMapping:
    """Which COCO class id becomes which model class id; unmapped COCO classes are dropped."""

    target_names: tuple[str, ...]
    coco_to_target: Mapping[int, int]

    def apply(self, detections: Detections) -> Detections:
        """Keep detections of mapped classes and renumber them to model class ids."""
        lookup = np.full(len(COCO_CLASS_NAMES), -1, dtype=np.int64)
        for coco_id, target_id in self.coco_to_target.items():
            lookup[coco_id] = target_id
        mapped = lookup[detections.class_ids] if len(detections) else np.zeros(0, np.int64)
        keep = mapped >= 0
        return Detections(detections.boxes[keep], detections.scores[keep], mapped[keep])

    def describe(self) -> dict[str, str]:
        """``{coco name: model name}`` for reports and model cards."""
        return {
            COCO_CLASS_NAMES[coco]: self.target_names[target]
            for coco, target in sorted(self.coco_to_target.items())
        }


def coco_index(name: str) -> int:
    """COCO class id of a COCO or VOC class name (ValueError naming the unknown name)."""
    coco_name = _VOC_TO_COCO.get(name, name)
    if coco_name not in COCO_CLASS_NAMES:
        raise ValueError(f"class {name!r} is not a COCO class (nor a VOC spelling of one)")
    return COCO_CLASS_NAMES.index(coco_name)


def map_coco_classes(
    target_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    truck_as: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> CocoClassMapping:
    """Map each model class to its COCO class; optionally fold more COCO classes into one.

    A model class that is not a COCO class must receive classes through ``extra``.

    ``truck_as`` (e.g. ``"car"``) labels COCO trucks as that model class; ``extra`` maps further
    COCO names to model class names. Unknown names are a ValueError naming them.
    """
    target_names = tuple(target_names)
    merges = dict(extra or {})
    if truck_as:
        merges["truck"] = truck_as
    coco_to_target = {}
    for index, name in enumerate(target_names):
        if name in merges.values() and _VOC_TO_COCO.get(name, name) not in COCO_CLASS_NAMES:
            continue  # a model-only class (e.g. "vehicle") fed by the merges below
        coco_to_target[coco_index(name)] = index
    for coco_name, target in merges.items():
        if target not in target_names:
            raise ValueError(
                f"cannot map COCO {coco_name!r} to {target!r}: not one of the model classes "
                f"{', '.join(target_names)}"
            )
        coco_to_target[coco_index(coco_name)] = target_names.index(target)
    return CocoClassMapping(target_names, coco_to_target)
