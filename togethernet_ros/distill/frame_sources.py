"""Clear-weather frames from video files or image folders, in order, with a per-source hold-out.

The last ``holdout_fraction`` of each source (by frame order) is held out: consecutive video
frames are near-duplicates, so a random split would leak training frames into the evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from togethernet_ros.vision.image_file import IMAGE_SUFFIXES, read_image_file

LOGGER = logging.getLogger("togethernet_ros")


@dataclass(frozen=True)
class SourceFrame:
    """One clear frame: BGR uint8 pixels plus where it came from."""

    source: str
    index: int  # frame number in the video / position in the sorted folder
    image: np.ndarray
    heldout: bool


def source_name(path: Path) -> str:
    """A file-name-safe id for a source (its stem, or folder name)."""
    stem = path.stem if path.is_file() else path.name
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "source"


def count_frames(path: Path) -> int:
    """Number of frames of a video (decoded count, not the container's guess) or images."""
    if path.is_dir():
        count = len(_folder_images(path))
        if count == 0:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        return count
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path} (not a video OpenCV can read)")
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    if count == 0:
        raise ValueError(f"video {path} has no readable frames")
    return count


def _folder_images(path: Path) -> list[Path]:
    # Folders named like images are not frames; broken links are, so they are reported.
    return sorted(
        p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
    )


def _raw_frames(path: Path, skipped: list[Path] | None) -> Iterator[tuple[int, np.ndarray]]:
    if path.is_dir():
        for index, image_path in enumerate(_folder_images(path)):
            image = read_image_file(image_path)
            if image is None:
                # One bad file must not cost a labelling run of minutes: skip it and say so.
                LOGGER.warning("skipping %s: not a readable image", image_path)
                if skipped is not None:
                    skipped.append(image_path)
                continue
            yield index, image
        return
    capture = cv2.VideoCapture(str(path))
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            yield index, image
            index += 1
    finally:
        capture.release()


def iter_source_frames(
    path: str | Path,
    frame_step: int = 1,
    holdout_fraction: float = 0.2,
    max_frames: int | None = None,
    skipped: list[Path] | None = None,
) -> Iterator[SourceFrame]:
    """Every ``frame_step``-th frame of a video file or image folder, tagged held-out or not.

    ``max_frames`` (optional) keeps the first and the held-out part in proportion by reading
    only that many frames' worth of the source (evenly thinned), for quick runs. Unreadable
    images of a folder are skipped with a warning and appended to ``skipped`` when given.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"frame source {path} does not exist")
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    total = count_frames(path)
    holdout_start = round(total * (1.0 - holdout_fraction))
    if max_frames is not None and max_frames > 0:
        frame_step = max(frame_step, int(np.ceil(total / max_frames)))
    name = source_name(path)
    for index, image in _raw_frames(path, skipped):
        if index % frame_step == 0:
            yield SourceFrame(name, index, image, index >= holdout_start)
