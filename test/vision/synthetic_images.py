"""Natural-looking test images (smooth gradients and solid shapes), made in the tests."""

from __future__ import annotations

import cv2
import numpy as np


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An HxWx3 uint8 BGR image with gradients, rectangles and circles, lightly blurred."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    image = np.stack(
        [60 + 120 * rows + 0 * cols, 40 + 150 * cols + 0 * rows, 200 - 120 * rows * cols], axis=-1
    ).astype(np.uint8)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(4, min(height, width) // 20), max(8, min(height, width) // 4)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + size, y + size // 2), color, cv2.FILLED)
        else:
            cv2.circle(image, (x, y), size // 2, color, cv2.FILLED)
    return cv2.GaussianBlur(image, (0, 0), 1.0)
