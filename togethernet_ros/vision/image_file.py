"""Reading an image file with OpenCV, where every unreadable file means None.

`cv2.imread` returns None for most files it cannot use, but raises `cv2.error` for some: a
header claiming more pixels than OpenCV allows (CV_IO_MAX_IMAGE_PIXELS, 2^30), for one. A tool
that skips unreadable images would stop at such a file instead of skipping it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_image_file(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """`cv2.imread(path, flags)`, but None also where OpenCV raises on the file's contents."""
    try:
        return cv2.imread(str(path), flags)
    except cv2.error:
        return None
