"""Truncated JPEGs are told from whole ones by their end-of-image marker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from togethernet_ros.vision.jpeg_integrity import is_truncated_jpeg, is_truncated_jpeg_buffer

from .synthetic_images import scene


@pytest.mark.parametrize("progressive", [0, 1])
@pytest.mark.parametrize("quality", [20, 95])
def test_whole_jpegs_pass_and_every_cut_is_caught(progressive, quality):
    ok, encoded = cv2.imencode(
        ".jpg",
        scene(240, 320, seed=quality),
        [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive],
    )
    assert ok
    data = encoded.tobytes()
    assert not is_truncated_jpeg_buffer(data)
    assert not is_truncated_jpeg_buffer(data + b"\x00" * 100)  # padding after the end marker
    # A phone's motion photo: a video appended after the end marker; still a whole JPEG.
    assert not is_truncated_jpeg_buffer(data + bytes(range(256)) * 400)
    cuts = range(64, len(data) - 1, max(1, len(data) // 200))
    assert all(is_truncated_jpeg_buffer(data[:cut]) for cut in cuts)


def test_reading_half_a_jpeg_file_gives_an_image_without_an_error(tmp_path):
    """Why the check exists: `cv2.imread` returns an image (grey below the cut) for a file
    whose end is missing; only `cv2.imdecode` refuses it."""
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    half = encoded.reshape(-1)[: encoded.size // 2]
    path = tmp_path / "half.jpg"
    path.write_bytes(half.tobytes())
    assert cv2.imread(str(path), cv2.IMREAD_COLOR) is not None
    assert is_truncated_jpeg_buffer(half)


def test_other_formats_are_left_to_the_decoder():
    ok, png = cv2.imencode(".png", scene(64, 64))
    assert ok and not is_truncated_jpeg_buffer(png.tobytes()[:100])
    assert not is_truncated_jpeg(b"")
    assert is_truncated_jpeg(b"\xff\xd8\x00")  # the data ends within the headers
