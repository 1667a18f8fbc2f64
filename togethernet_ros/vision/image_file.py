"""Reading an image file with OpenCV, where every unreadable file means None.

`cv2.imread` returns None for most files it cannot use, but raises `cv2.error` for some: a
header claiming more pixels than OpenCV allows (CV_IO_MAX_IMAGE_PIXELS, 2^30), for one. A tool
that skips unreadable images would stop at such a file instead of skipping it.

Every image is read in its stored pixel grid: an EXIF Orientation tag (phone and camera
photos) is not applied. `cv2.imread` would apply it for IMREAD_COLOR but not for
IMREAD_UNCHANGED, so one file could come back rotated from one reader and upright from
another. The stored grid is what VOC/YOLO boxes refer to where they were drawn by the
published TogetherNet code's readers (PIL `Image.open`, no `exif_transpose`) and by LabelImg;
what `cv2.imwrite` writes back (without the tag), so `data fog` output and its clean original
keep one grid; and what image_transport decodes (its default mode is IMREAD_UNCHANGED).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from togethernet_ros.vision.encoded_image_size import encoded_image_size
from togethernet_ros.vision.jpeg_integrity import JPEG_START, is_truncated_jpeg

# The file suffixes (compared in lower case) that every image-folder reader takes: predict's
# folders, the VOC/YOLO datasets, data fog and distill's frame folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")

# OR-ed into every flag set (IMREAD_UNCHANGED, -1, already has the bit and ignores the tag).
STORED_GRID = cv2.IMREAD_IGNORE_ORIENTATION


def read_image_file(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """`cv2.imread(path, flags)` in the stored pixel grid (EXIF orientation not applied), but
    None also where OpenCV raises on the file's contents."""
    try:
        return cv2.imread(str(path), flags | STORED_GRID)
    except cv2.error:
        return None


def read_whole_image_file(path: str | Path) -> tuple[np.ndarray | None, str]:
    """(BGR uint8 image, "") or (None, why it cannot be used) for one image file.

    Unlike :func:`read_image_file` this refuses a JPEG cut short, which `cv2.imread` decodes
    with its missing rows grey (see vision/jpeg_integrity.py): detecting on it, training on it,
    scoring or fogging it would go on with half an image.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(2)
            if data == JPEG_START:
                data += handle.read()
    except OSError as error:
        return None, f"cannot be read ({error.strerror or error})"
    if is_truncated_jpeg(data):
        return None, "truncated JPEG (no end-of-image marker)"
    if data[:2] == JPEG_START:
        # Decoded from the bytes already read for the check: the data loader reads every
        # training image this way, and reading a JPEG from disk twice would double its I/O.
        try:
            raw = np.frombuffer(data, dtype=np.uint8)
            image = cv2.imdecode(raw, cv2.IMREAD_COLOR | STORED_GRID)
        except cv2.error:
            image = None
    else:
        image = read_image_file(path)
    if image is None:
        return None, _undecodable_problem(path, data)
    return image, ""


def _undecodable_problem(path: str | Path, data: bytes) -> str:
    """Why a file did not decode: too many pixels for OpenCV (a drone orthophoto, a stitched
    panorama), else corrupt or another format."""
    if data[:2] != JPEG_START:
        try:
            with open(path, "rb") as handle:
                data = handle.read(HEADER_BYTES[0])
        except OSError:
            data = b""
    size = encoded_image_size(data)
    if size is not None and size[0] * size[1] > OPENCV_MAX_PIXELS:
        return (
            f"{size[0]}x{size[1]} pixels, more than OpenCV decodes (2^30 unless the "
            "environment variable OPENCV_IO_MAX_IMAGE_PIXELS raises it); scale it down first"
        )
    return "not a decodable image (corrupt or another format)"


# JPEG metadata (EXIF with a thumbnail, ICC profiles, XMP) sits before the frame header:
# usually within a few KB, at most a few 64 KB segments.
HEADER_BYTES = (1 << 14, 1 << 20)
# OpenCV's default CV_IO_MAX_IMAGE_PIXELS: a header claiming more is decoded to see whether
# OpenCV reads it at all (the limit can be raised through OPENCV_IO_MAX_IMAGE_PIXELS).
OPENCV_MAX_PIXELS = 1 << 30


def image_file_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an image file's stored pixel grid, or None where it cannot be read.

    JPEG and PNG sizes come from the header; other formats, headers it cannot read and sizes
    beyond what OpenCV decodes by default are decoded.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEADER_BYTES[0])
            size = encoded_image_size(head)
            if size is None and len(head) == HEADER_BYTES[0]:
                size = encoded_image_size(head + handle.read(HEADER_BYTES[1]))
    except OSError:
        return None
    if size is not None and min(size) > 0 and size[0] * size[1] <= OPENCV_MAX_PIXELS:
        return size
    image = read_image_file(path, cv2.IMREAD_UNCHANGED)
    return None if image is None else (image.shape[1], image.shape[0])
