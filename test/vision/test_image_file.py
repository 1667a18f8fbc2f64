"""read_image_file: None for every file OpenCV cannot use, including those it raises on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.oversized_jpeg import jpeg_claiming_size

from togethernet_ros.vision.encoded_image_size import encoded_image_size
from togethernet_ros.vision.image_file import read_image_file


def test_a_header_claiming_too_many_pixels_is_none_not_an_exception(tmp_path):
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(jpeg_claiming_size(60000, 60000))
    assert encoded_image_size(huge.read_bytes()) == (60000, 60000)
    with pytest.raises(cv2.error):  # what plain imread does with it
        cv2.imread(str(huge), cv2.IMREAD_COLOR)
    assert read_image_file(huge) is None


def test_readable_missing_and_garbage_files(tmp_path):
    picture = np.random.default_rng(3).integers(0, 255, (12, 17, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), picture)
    np.testing.assert_array_equal(read_image_file(tmp_path / "a.png"), picture)
    assert read_image_file(tmp_path / "a.png", cv2.IMREAD_GRAYSCALE).shape == (12, 17)
    assert read_image_file(tmp_path / "missing.png") is None
    (tmp_path / "noise.jpg").write_bytes(b"\x00" * 50)
    assert read_image_file(tmp_path / "noise.jpg") is None
