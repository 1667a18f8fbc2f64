"""Draw detections (and optional track ids) onto a copy of an image for debugging and videos."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import cv2
import numpy as np

from togethernet_ros.vision.detections import Detections

# Letters that Unicode does not decompose into an ASCII letter plus accents.
_ASCII_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
    }
)


def label_text(name: str, class_id: int) -> str:
    """``name`` as OpenCV's Hershey fonts can draw it: ASCII only.

    OpenCV draws every byte of a non-ASCII character as "?", so "Fußgänger" came out as
    "Fu??g??nger". Accents are dropped ("Fussganger"); a name with characters that have no
    ASCII spelling (CJK, Cyrillic) is drawn as "class <id>" (the JSON and ROS outputs keep
    the real name).
    """
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII_LETTERS))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    if plain.isascii() and plain.isprintable() and plain.strip():
        return plain
    return f"class {class_id}"


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class id (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    swatch = np.array([[[hue, 210, 255]]], dtype=np.uint8)
    blue, green, red = cv2.cvtColor(swatch, cv2.COLOR_HSV2BGR)[0, 0]
    return int(blue), int(green), int(red)


def draw_detections(
    image_bgr: np.ndarray,
    detections: Detections,
    class_names: Sequence[str],
    track_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Return a copy of `image_bgr` with one labelled box per detection.

    Labels read "name score" or "name #track score". Works for RGB images too (only the box
    colours are swapped). A box with a NaN or infinite coordinate is not drawn.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"image must be HxWx3 uint8, got shape {image_bgr.shape} dtype {image_bgr.dtype}"
        )
    if track_ids is not None and len(track_ids) != len(detections):
        raise ValueError(f"got {len(track_ids)} track ids for {len(detections)} detections")
    canvas = np.ascontiguousarray(image_bgr).copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 400))
    font_scale = max(0.4, min(height, width) / 1000)
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    drawable = np.isfinite(boxes).all(axis=1)
    # OpenCV takes int32 points and int() fails on NaN/inf. Corners more than one image size
    # outside the canvas move to that distance: what is visible (edges, label) does not change.
    reach = max(height, width)
    upper = np.array([width, height, width, height]) + reach
    corners = np.rint(np.clip(np.nan_to_num(boxes), -reach, upper)).astype(np.int64)
    for index in range(len(detections)):
        if not drawable[index]:
            continue
        x1, y1, x2, y2 = corners[index].tolist()
        class_id = int(detections.class_ids[index])
        named = 0 <= class_id < len(class_names)
        label = label_text(class_names[class_id], class_id) if named else str(class_id)
        if track_ids is not None:
            label += f" #{int(track_ids[index])}"
        label += f" {float(detections.scores[index]):.2f}"
        color = class_color(class_id)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        if x2 < 0 or y2 < 0 or x1 >= width or y1 >= height:
            continue  # nothing of the box is visible: neither is a label
        (text_w, text_h), baseline = cv2.getTextSize(
            label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        text_left, text_top = label_origin((x1, y1), (text_w, text_h + baseline), (height, width))
        cv2.rectangle(
            canvas,
            (text_left, text_top),
            (text_left + text_w, text_top + text_h + baseline),
            color,
            cv2.FILLED,
        )
        cv2.putText(
            canvas,
            label,
            (text_left, text_top + text_h),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def label_origin(
    box_top_left: tuple[int, int], label_size: tuple[int, int], image_size: tuple[int, int]
) -> tuple[int, int]:
    """Top-left (x, y) of a box's label of (w, h) pixels in an image of (h, w) pixels.

    Above the box where it fits, else inside it from its visible top. Tracked (predicted) boxes
    may start above or left of the image, and a label placed at such a corner was drawn wholly
    or partly off the image; it is kept inside the image instead, shifted left at the right edge.
    """
    x1, y1 = box_top_left
    label_w, label_h = label_size
    height, width = image_size
    visible_top = max(y1, 0)
    top = visible_top - label_h if visible_top - label_h >= 0 else visible_top
    left = max(0, min(x1, width - label_w))
    return left, min(top, max(0, height - label_h))
