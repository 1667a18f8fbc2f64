"""Synthetic fog by the atmospheric scattering model (the VOC-FOG / IA-YOLO recipe).

I = J·t + A·(1 − t) with transmission t = exp(−β·d). The depth proxy grows towards the image
centre, d = −0.04·‖p − centre‖ + √max(H, W), so the centre (usually the far road) is foggiest.
"""

from __future__ import annotations

import numpy as np


def depth_proxy(height: int, width: int, slope: float = 0.04) -> np.ndarray:
    """Return the recipe's pseudo-depth map (float32, H×W): −slope·‖p − centre‖ + √max(H, W).

    ``slope=0`` gives uniform depth (homogeneous fog). The recipe was made for VOC-sized
    images; from about 1920×1080 on its depth would go negative towards the corners, where
    t = exp(−β·d) > 1 darkens or brightens instead of fogging, so depth stops at 0 (no fog).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"depth_proxy: size must be positive, got {height}x{width}")
    # The recipe uses the integer centre (h // 2, w // 2), as in IA-YOLO's data_make.py.
    rows = np.arange(height, dtype=np.float32)[:, None] - (height // 2)
    cols = np.arange(width, dtype=np.float32)[None, :] - (width // 2)
    distance = np.sqrt(rows * rows + cols * cols)
    depth = -slope * distance + np.sqrt(float(max(height, width)))
    return np.maximum(depth, 0.0).astype(np.float32)


# Depth maps a DepthCache keeps at most (the most recent one always): about 40 VOC-sized ones.
DEPTH_CACHE_BYTES = 32 * 2**20


class DepthCache:
    """Depth maps of the image sizes seen last, so a dataset of one size computes its map once.

    Bounded: a dataset of many sizes (VOC has hundreds; phone photos 48 MB a map at 12 MP)
    kept one map per size for the whole run, gigabytes over a large dataset.
    """

    def __init__(self, slope: float = 0.04, max_bytes: int | None = None) -> None:
        self.slope = slope
        self.max_bytes = DEPTH_CACHE_BYTES if max_bytes is None else max_bytes
        self._maps: dict[tuple[int, int], np.ndarray] = {}  # least recently used first

    def get(self, height: int, width: int) -> np.ndarray:
        """The (read-only) depth map of an image of this size."""
        key = (height, width)
        depth = self._maps.pop(key, None)
        if depth is None:
            depth = depth_proxy(height, width, self.slope)
            depth.flags.writeable = False
        self._maps[key] = depth
        while len(self._maps) > 1 and sum(m.nbytes for m in self._maps.values()) > self.max_bytes:
            del self._maps[next(iter(self._maps))]
        return depth


def add_fog(
    image: np.ndarray,
    beta: float,
    airlight: float = 0.5,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Fog a uint8 H×W×3 image (any channel order) with scattering coefficient ``beta``.

    ``airlight`` is A in [0, 1]; ``depth`` defaults to :func:`depth_proxy`. Returns uint8.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"add_fog: expected a uint8 HxWx3 image, got dtype {image.dtype} shape {image.shape}"
        )
    if beta < 0:
        raise ValueError(f"add_fog: beta must be >= 0, got {beta}")
    if not 0.0 <= airlight <= 1.0:
        raise ValueError(f"add_fog: airlight must be in [0, 1], got {airlight}")
    height, width = image.shape[:2]
    if depth is None:
        depth = depth_proxy(height, width)
    elif depth.shape != (height, width):
        raise ValueError(f"add_fog: depth shape {depth.shape} != image size {(height, width)}")
    transmission = np.exp(-beta * depth.astype(np.float32))[:, :, None]
    clean = image.astype(np.float32) * (1.0 / 255.0)
    foggy = clean * transmission + airlight * (1.0 - transmission)
    return np.clip(np.rint(foggy * 255.0), 0, 255).astype(np.uint8)
