"""Build a foggy two-camera rosbag2 from a real video (the sample data behind `make demo`).

Fog follows the atmospheric scattering model (vision.fog.add_fog) with β rising linearly from
0 (clear) to ``max_beta`` (dense) over the clip, so one bag shows the whole range. Two cameras
exercise cross-camera batching: the full view as raw bgr8 Image and a mirrored crop as JPEG
CompressedImage, stamped a few milliseconds apart like unsynchronised real cameras.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.vision.fog import add_fog

FRONT_TOPIC = "/cam_front/image_raw"
SIDE_TOPIC = "/cam_side/image_raw/compressed"
# 2023-11-14T22:13:20Z: a fixed start keeps generated bags reproducible byte for byte.
START_NS = 1_700_000_000_000_000_000
SIDE_OFFSET_NS = 7_000_000


@dataclass(frozen=True)
class DemoDataResult:
    """What was written."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    betas: list[float]


def fog_beta(index: int, count: int, max_beta: float) -> float:
    """β for frame ``index`` of ``count``: 0 at the first frame, ``max_beta`` at the last."""
    return 0.0 if count <= 1 else max_beta * index / (count - 1)


def side_view(frame: np.ndarray) -> np.ndarray:
    """The second camera: the right three quarters of the frame, mirrored."""
    width = frame.shape[1]
    return np.ascontiguousarray(frame[:, width // 4 :][:, ::-1])


def build_demo_bag(
    video: Path,
    output: Path,
    storage: str = "mcap",
    max_frames: int = 120,
    fps: float | None = None,
    max_beta: float = 0.15,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoDataResult:
    """Read up to ``max_frames`` frames of ``video`` and write the foggy two-camera bag."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not math.isfinite(max_beta) or max_beta < 0:
        raise ValueError(f"max_beta (the fog density) must be >= 0, got {max_beta}")
    if Path(video).is_dir():
        raise ValueError(f"video {video} is a folder, not a video file")
    if not Path(video).is_file():
        raise FileNotFoundError(f"video {video} does not exist")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"OpenCV cannot open video {video}")
    try:
        video_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        available = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rate = float(fps or (video_fps if video_fps > 0 else 10.0))
        if rate <= 0:
            raise ValueError(f"fps must be > 0, got {rate}")
        count = min(max_frames, available) if available > 0 else max_frames
        period_ns = round(1e9 / rate)
        betas: list[float] = []
        size = (0, 0)
        # The first frame before the bag: a file that is no video leaves no empty bag behind.
        ok, frame = capture.read()
        if not ok:
            raise ValueError(f"video {video} has no readable frames")
        with BagWriter(output, storage=storage, overwrite=overwrite) as writer:
            typestore = writer.typestore
            for index in range(count):
                if index > 0:
                    ok, frame = capture.read()
                if not ok:
                    break
                size = frame.shape[:2]
                beta = fog_beta(index, count, max_beta)
                betas.append(round(beta, 5))
                stamp = START_NS + index * period_ns
                front = add_fog(frame, beta)
                header = make_header(typestore, stamp, "cam_front")
                writer.write(
                    FRONT_TOPIC, IMAGE_TYPE, stamp, encode_image_message(typestore, front, header)
                )
                side = add_fog(side_view(frame), beta)
                side_stamp = stamp + SIDE_OFFSET_NS
                header = make_header(typestore, side_stamp, "cam_side")
                message = encode_compressed_message(typestore, side, header, "jpeg", quality=90)
                writer.write(SIDE_TOPIC, COMPRESSED_IMAGE_TYPE, side_stamp, message)
                if progress is not None:
                    progress(index + 1, count)
            writer.set_custom_data(
                "togethernet_ros.demo_data",
                json.dumps({"video": Path(video).name, "fps": rate, "fog_beta": betas}),
            )
    finally:
        capture.release()
    if not betas:
        raise ValueError(f"video {video} has no readable frames")
    return DemoDataResult(path=Path(output), frames=len(betas), fps=rate, size=size, betas=betas)
