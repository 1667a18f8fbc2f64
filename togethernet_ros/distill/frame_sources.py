"""Clear-weather frames from video files or image folders, in order, with a per-source hold-out.

The last ``holdout_fraction`` of each source (by frame order) is held out: consecutive video
frames are near-duplicates, so a random split would leak training frames into the evaluation.
Camera topics of rosbag2 recordings follow the same rules per topic (``bag_frames``).
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
class FrameOrigin:
    """Where in a recording a frame was taken: the bag as given, its topic and its times."""

    bag: str
    topic: str
    stamp_ns: int  # header stamp (0 when the driver did not stamp it)
    log_time_ns: int  # the bag's receive time

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "bag": self.bag,
            "topic": self.topic,
            "stamp_ns": self.stamp_ns,
            "log_time_ns": self.log_time_ns,
        }


@dataclass(frozen=True)
class SourceFrame:
    """One clear frame: BGR uint8 pixels plus where it came from."""

    source: str
    index: int  # frame number in the video / position in the sorted folder / message on a topic
    image: np.ndarray
    heldout: bool
    origin: FrameOrigin | None = None  # set for frames of a bag

    def file_stem(self) -> str:
        """The dataset's file name for the frame (without suffix); a bag frame's carries its time.

        The header stamp names it, or the receive time when the driver left the stamp zero.
        """
        stem = f"{self.source}_{self.index:06d}"
        if self.origin is None:
            return stem
        return f"{stem}_{self.origin.stamp_ns or self.origin.log_time_ns}"


def safe_name(text: str) -> str:
    """``text`` with every character but letters, digits, ``-`` and ``_`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "source"


def source_name(path: Path) -> str:
    """A file-name-safe id for a source (its stem, or folder name)."""
    return safe_name(path.stem if path.is_file() else path.name)


def unique_names(names: list[str]) -> list[str]:
    """``names`` with repeats made distinct (``clip``, ``clip_2``, ...), order kept.

    Two sources of one name (``day1/front.mp4``, ``day2/front.mp4``) would write their frames
    to the same image files, each label then describing the other source's pixels.
    """
    taken = set(names)
    seen: set[str] = set()
    result = []
    for name in names:
        unique, number = name, 1
        while unique in seen or (unique != name and unique in taken):
            number += 1
            unique = f"{name}_{number}"
        seen.add(unique)
        result.append(unique)
    return result


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


def check_sampling(frame_step: int, holdout_fraction: float) -> None:
    """Refuse a frame step below 1 or a hold-out fraction outside (0, 1)."""
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")


def sampling(
    total: int, frame_step: int, holdout_fraction: float, max_frames: int | None
) -> tuple[int, int]:
    """(first held-out index, frame step) for a source of ``total`` frames.

    The last ``holdout_fraction`` of the frames is held out; ``max_frames`` widens the step so
    about that many frames are used, spread over the whole source.
    """
    holdout_start = round(total * (1.0 - holdout_fraction))
    if max_frames is not None and max_frames > 0:
        frame_step = max(frame_step, int(np.ceil(total / max_frames)))
    return holdout_start, frame_step


def iter_source_frames(
    path: str | Path,
    frame_step: int = 1,
    holdout_fraction: float = 0.2,
    max_frames: int | None = None,
    skipped: list[Path] | None = None,
    name: str | None = None,
) -> Iterator[SourceFrame]:
    """Every ``frame_step``-th frame of a video file or image folder, tagged held-out or not.

    ``max_frames`` (optional) keeps the first and the held-out part in proportion by reading
    only that many frames' worth of the source (evenly thinned), for quick runs. Unreadable
    images of a folder are skipped with a warning and appended to ``skipped`` when given.
    ``name`` (default: :func:`source_name`) tags the frames.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"frame source {path} does not exist")
    check_sampling(frame_step, holdout_fraction)
    total = count_frames(path)
    holdout_start, frame_step = sampling(total, frame_step, holdout_fraction, max_frames)
    name = name or source_name(path)
    for index, image in _raw_frames(path, skipped):
        if index % frame_step == 0:
            yield SourceFrame(name, index, image, index >= holdout_start)
