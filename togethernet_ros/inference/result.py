"""What a detector returns for one image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from togethernet_ros.vision.detections import Detections


@dataclass
class ImageResult:
    """Detections in source pixels and, when restoration ran, the dehazed image.

    `dehazed` is uint8 HxWx3 at the source size in the same colour order as the input image.
    """

    detections: Detections
    dehazed: np.ndarray | None = None
