"""Identical geometric and colour augmentation for a hazy image and its clean original.

The published recipe (bubbliiiing's ``get_random_data``): random resize 0.25–2 with aspect
jitter 0.3, random placement on a grey 128 canvas, horizontal flip, HSV gain (h 0.1, s 0.7,
v 0.4). Both images get exactly the same draws, so the restoration target stays aligned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 128


@dataclass(frozen=True)
class AugmentationConfig:
    """Strengths of the paired augmentation (defaults = the published recipe)."""

    scale_min: float = 0.25
    scale_max: float = 2.0
    aspect_jitter: float = 0.3
    flip_probability: float = 0.5
    hue: float = 0.1
    saturation: float = 0.7
    value: float = 0.4
    min_box_size: float = 1.0

    def __post_init__(self) -> None:
        # Checked when the config is read. Out of these ranges nothing crashed: an aspect
        # jitter >= 1 can draw a zero or negative aspect ratio (images squashed to one pixel),
        # a gain above 1 a negative saturation or value (black images), scale_min > scale_max
        # silently swapped the bounds; the run trained on broken images instead.
        if not (0 < self.scale_min <= self.scale_max and math.isfinite(self.scale_max)):
            raise ValueError(
                "augmentation.scale_min and augmentation.scale_max must satisfy "
                f"0 < scale_min <= scale_max, got {self.scale_min} and {self.scale_max}"
            )
        if not 0 <= self.aspect_jitter < 1:
            raise ValueError(
                f"augmentation.aspect_jitter must be in [0, 1), got {self.aspect_jitter}"
            )
        for name in ("flip_probability", "hue", "saturation", "value"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"augmentation.{name} must be in [0, 1], got {value}")
        if not (math.isfinite(self.min_box_size) and self.min_box_size >= 0):
            raise ValueError(
                f"augmentation.min_box_size must be a finite number >= 0, got {self.min_box_size}"
            )


def _place(
    image: np.ndarray,
    size_hw: tuple[int, int],
    resized_wh: tuple[int, int],
    offset_xy: tuple[int, int],
) -> np.ndarray:
    """Resize ``image`` and paste it at ``offset_xy`` (may be negative = crop) on a grey canvas."""
    height, width = size_hw
    new_w, new_h = resized_wh
    dx, dy = offset_xy
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + new_w, width), min(dy + new_h, height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = resized[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return canvas


def _hsv_gain(image: np.ndarray, gains: np.ndarray) -> np.ndarray:
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    levels = np.arange(256, dtype=np.float64)
    lut_hue = ((levels * gains[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(levels * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(levels * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2RGB)


def _transform_boxes(
    boxes: np.ndarray,
    scale_xy: tuple[float, float],
    offset_xy: tuple[int, int],
    flip_width: int | None,
    size_hw: tuple[int, int],
    min_size: float,
) -> tuple[np.ndarray, np.ndarray]:
    boxes = boxes.astype(np.float32).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * scale_xy[0] + offset_xy[0]
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * scale_xy[1] + offset_xy[1]
    if flip_width is not None:
        boxes[:, [0, 2]] = flip_width - boxes[:, [2, 0]]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, size_hw[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, size_hw[0])
    keep = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
    return boxes, keep


def paired_random_augment(
    hazy: np.ndarray,
    clean: np.ndarray,
    boxes: np.ndarray,
    size_hw: tuple[int, int],
    rng: np.random.Generator,
    config: AugmentationConfig = AugmentationConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Augment a hazy/clean pair identically.

    Returns (hazy, clean, boxes xyxy in output pixels, keep mask over the input boxes).
    """
    source_h, source_w = hazy.shape[:2]
    height, width = size_hw
    jitter = config.aspect_jitter
    aspect = (
        source_w
        / source_h
        * rng.uniform(1 - jitter, 1 + jitter)
        / rng.uniform(1 - jitter, 1 + jitter)
    )
    scale = rng.uniform(config.scale_min, config.scale_max)
    if aspect < 1:
        new_h = max(int(scale * height), 1)
        new_w = max(int(new_h * aspect), 1)
    else:
        new_w = max(int(scale * width), 1)
        new_h = max(int(new_w / aspect), 1)
    dx = int(rng.uniform(min(0, width - new_w), max(0, width - new_w)))
    dy = int(rng.uniform(min(0, height - new_h), max(0, height - new_h)))
    flip = rng.uniform() < config.flip_probability
    gains = rng.uniform(-1, 1, 3) * [config.hue, config.saturation, config.value] + 1
    outputs = []
    for image in (hazy, clean):
        placed = _place(image, size_hw, (new_w, new_h), (dx, dy))
        if flip:
            placed = np.ascontiguousarray(placed[:, ::-1])
        outputs.append(_hsv_gain(placed, gains))
    new_boxes, keep = _transform_boxes(
        boxes,
        (new_w / source_w, new_h / source_h),
        (dx, dy),
        width if flip else None,
        size_hw,
        config.min_box_size,
    )
    return outputs[0], outputs[1], new_boxes[keep], keep


def paired_letterbox(
    hazy: np.ndarray, clean: np.ndarray, boxes: np.ndarray, size_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """No augmentation: centred letterbox (bicubic, grey 128) of both images; same returns."""
    source_h, source_w = hazy.shape[:2]
    height, width = size_hw
    scale = min(width / source_w, height / source_h)
    new_w, new_h = max(int(source_w * scale), 1), max(int(source_h * scale), 1)
    offset = ((width - new_w) // 2, (height - new_h) // 2)
    placed = [_place(image, size_hw, (new_w, new_h), offset) for image in (hazy, clean)]
    new_boxes, keep = _transform_boxes(
        boxes, (new_w / source_w, new_h / source_h), offset, None, size_hw, 1.0
    )
    return placed[0], placed[1], new_boxes[keep], keep
