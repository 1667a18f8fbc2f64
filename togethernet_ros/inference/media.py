"""Reading images / image folders / videos and writing annotated or dehazed videos."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg"})


@dataclass
class Frame:
    """One BGR image with a stable name (file stem, or video stem + frame number)."""

    name: str
    index: int
    image: np.ndarray


class MediaSource:
    """An image file, a folder of images (sorted, non-recursive) or a video file."""

    def __init__(self, path: str | Path, max_frames: int | None = None) -> None:
        self.path = Path(path)
        self.max_frames = max_frames
        self.fps = 0.0
        if self.path.is_dir():
            self.kind = "images"
            self.files = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not self.files:
                raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.path}")
        elif self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind = "images"
            self.files = [self.path]
        elif self.path.is_file() and self.path.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
            self.files = [self.path]
            capture = cv2.VideoCapture(str(self.path))
            if not capture.isOpened():
                raise ValueError(f"cannot open video {self.path}")
            self.fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            self._frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
        elif not self.path.exists():
            raise FileNotFoundError(f"source not found: {self.path}")
        else:
            raise ValueError(
                f"unsupported source {self.path}: expected an image, a folder of images or a "
                f"video ({', '.join(sorted(VIDEO_SUFFIXES))})"
            )

    @property
    def total(self) -> int | None:
        """Number of frames/images if known (for the progress bar)."""
        count = len(self.files) if self.kind == "images" else self._frame_count or None
        if count is not None and self.max_frames is not None:
            count = min(count, self.max_frames)
        return count

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "images":
            yield from self._images()
        else:
            yield from self._video()

    def _images(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            if self.max_frames is not None and index >= self.max_frames:
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read image {path}")
            yield Frame(path.stem, index, image)

    def _video(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            while self.max_frames is None or index < self.max_frames:
                ok, image = capture.read()
                if not ok:
                    return
                yield Frame(f"{self.path.stem}_{index:06d}", index, image)
                index += 1
        finally:
            capture.release()


class VideoSink:
    """mp4 writer opened on the first frame (its size fixes the video size)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps > 0 else 25.0
        self._writer: cv2.VideoWriter | None = None

    def write(self, image_bgr: np.ndarray) -> None:
        """Append one BGR frame."""
        if self._writer is None:
            height, width = image_bgr.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write video {self.path}")
        self._writer.write(image_bgr)

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
