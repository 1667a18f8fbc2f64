"""Reading images / image folders / videos and writing annotated or dehazed videos."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from togethernet_ros.vision.image_file import IMAGE_SUFFIXES as IMAGE_FILE_SUFFIXES
from togethernet_ros.vision.image_file import read_whole_image_file

IMAGE_SUFFIXES = frozenset(IMAGE_FILE_SUFFIXES)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg"})
LOGGER = logging.getLogger("togethernet_ros")
# A frame that does not decode (a torn packet in a dashcam file, a recording cut by a power
# loss) fails one read and the next read goes on with the following frame; only this many
# failures in a row mean the end of the video.
BAD_FRAMES_IN_A_ROW = 50


@dataclass
class Frame:
    """One BGR image with a stable name (file stem, or video stem + frame number)."""

    name: str
    index: int
    image: np.ndarray


@dataclass(frozen=True)
class SkippedFile:
    """A file of a folder source that could not be read, and why."""

    path: Path
    problem: str


class MediaSource:
    """An image file, a folder of images (sorted, non-recursive) or a video file.

    In a folder, an image that cannot be decoded is skipped with a warning and listed in
    `skipped`, so one bad file does not cost the rest; a lone image file that cannot be read
    is an error. `names` holds the output name of each image (see `output_names`).
    """

    def __init__(self, path: str | Path, max_frames: int | None = None) -> None:
        self.path = Path(path)
        self.max_frames = max_frames
        self.fps = 0.0
        self.skipped: list[SkippedFile] = []
        self._folder = self.path.is_dir()
        self._lone_image: np.ndarray | None = None
        if self.path.is_dir():
            self.kind = "images"
            # A broken link named like an image is listed too, so that it is reported as
            # skipped instead of vanishing without a word.
            self.files = sorted(
                p
                for p in self.path.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES
                and (p.is_file() or (p.is_symlink() and not p.exists()))
            )
            if not self.files:
                raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.path}")
        elif self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind = "images"
            self.files = [self.path]
            # Read now: an unreadable lone image is refused before a model loads for it.
            self._lone_image, problem = read_whole_image_file(self.path)
            if self._lone_image is None:
                raise ValueError(f"cannot read image {self.path}: {problem}")
        elif self.path.is_file() and self.path.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
            self.files = [self.path]
            capture = cv2.VideoCapture(str(self.path))
            try:
                if not capture.isOpened():
                    raise ValueError(f"cannot open video {self.path}")
                # A container without a decodable frame would otherwise "succeed" with nothing;
                # one whose first frames are damaged goes on after them.
                if not any(capture.grab() for _ in range(BAD_FRAMES_IN_A_ROW)):
                    raise ValueError(f"video {self.path} has no readable frames")
                self.fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
                self._frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            finally:
                capture.release()
        elif not self.path.exists():
            raise FileNotFoundError(f"source not found: {self.path}")
        else:
            raise ValueError(
                f"unsupported source {self.path}: expected an image, a folder of images or a "
                f"video ({', '.join(sorted(VIDEO_SUFFIXES))})"
            )
        self.names = output_names(self.files) if self.kind == "images" else []

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
        self.skipped = []
        read = 0
        for index, path in enumerate(self.files):
            # Images read, not files looked at: an unreadable file is no frame.
            if self.max_frames is not None and read >= self.max_frames:
                return
            image, problem = (
                (self._lone_image, "") if not self._folder else read_whole_image_file(path)
            )
            if image is None:
                if not self._folder:
                    raise ValueError(f"cannot read image {path}: {problem}")
                LOGGER.warning("skipping %s: %s", path, problem)
                self.skipped.append(SkippedFile(path, problem))
                continue
            read += 1
            yield Frame(self.names[index], index, image)
        if read == 0 and self.skipped:
            raise ValueError(f"none of the {len(self.skipped)} images in {self.path} could be read")

    def _video(self) -> Iterator[Frame]:
        """Every decodable frame; ``index`` counts damaged frames too, so it stays the position.

        A damaged frame is skipped (listed in `skipped`), not taken for the end of the video:
        stopping there would drop the rest of the file without a word.
        """
        self.skipped = []
        capture = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            failed: list[int] = []
            while self.max_frames is None or index < self.max_frames:
                ok, image = capture.read()
                if not ok:
                    failed.append(index)
                    index += 1
                    if len(failed) >= BAD_FRAMES_IN_A_ROW:
                        break
                    continue
                self._skip_frames(failed)
                failed = []
                yield Frame(f"{self.path.stem}_{index:06d}", index, image)
                index += 1
            else:
                self._skip_frames(failed)  # damaged frames up to --max-frames
                return
            # Failures until the end: the end of the video, unless its header counts well past
            # them (its frame count can be an estimate, a frame or two off, in some containers).
            first = failed[0]
            if self._frame_count >= first + BAD_FRAMES_IN_A_ROW:
                problem = (
                    f"frames {first} to {self._frame_count - 1} could not be decoded "
                    f"({BAD_FRAMES_IN_A_ROW} in a row failed; the rest is not read)"
                )
                LOGGER.warning("%s: %s", self.path, problem)
                self.skipped.append(SkippedFile(self.path, problem))
        finally:
            capture.release()

    def _skip_frames(self, indices: list[int]) -> None:
        """Report damaged frames of the video (one warning per run of them)."""
        if not indices:
            return
        span = f"frame {indices[0]}" if len(indices) == 1 else f"frames {indices[0]}-{indices[-1]}"
        LOGGER.warning("%s: skipping %s: could not be decoded", self.path, span)
        self.skipped.extend(
            SkippedFile(self.path, f"frame {index} could not be decoded") for index in indices
        )


def output_names(files: list[Path]) -> list[str]:
    """Names for the outputs of ``files``: the stem, or the whole file name where stems clash.

    ``a.png`` and ``a.jpg`` of one folder would otherwise both write ``annotated/a.jpg``, and
    the second image's outputs would replace the first's. Stems are compared ignoring case:
    ``Cam.png`` and ``cam.jpg`` would be one file on a case-insensitive output disk (exFAT or
    NTFS USB drives, macOS).
    """
    stems = Counter(path.stem.casefold() for path in files)
    names = [path.name if stems[path.stem.casefold()] > 1 else path.stem for path in files]
    if len({name.casefold() for name in names}) < len(names):  # "a.png.jpg" next to "a.png"
        names = [path.name for path in files]
    return names


class VideoSink:
    """mp4 writer opened on the first frame (its size fixes the video size)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps > 0 else 25.0
        self._writer: cv2.VideoWriter | None = None

    def write(self, image_bgr: np.ndarray) -> None:
        """Append one BGR frame.

        An odd width or height is padded by one black column or row: the mp4v encoder would
        crop it instead, and with it box edges drawn on the last column or row.
        """
        height, width = image_bgr.shape[:2]
        if height % 2 or width % 2:
            image_bgr = cv2.copyMakeBorder(
                image_bgr, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT, value=(0, 0, 0)
            )
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
