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


def _tagged_photo(tmp_path, orientation):
    """A 40x80 JPEG (stored grid) with a white block at x < 20, tagged with ``orientation``."""
    from support.exif_jpeg import white_block_photo

    data, stored = white_block_photo(orientation)
    path = tmp_path / f"photo_{orientation}.JPG"
    path.write_bytes(data)
    return path, stored


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_never_applied_whatever_the_flags(tmp_path, orientation):
    # Plain imread turns an EXIF-tagged photo for IMREAD_COLOR but not for IMREAD_UNCHANGED:
    # a label reader taking the size one way and the pixels the other put boxes off the object.
    path, _ = _tagged_photo(tmp_path, orientation)
    assert cv2.imread(str(path)).shape[:2] != (40, 80) or orientation == 3
    for flags in (cv2.IMREAD_COLOR, cv2.IMREAD_UNCHANGED, cv2.IMREAD_GRAYSCALE):
        image = read_image_file(path, flags)
        assert image.shape[:2] == (40, 80), flags
        assert image[:, :20].mean() > 240 and image[:, 24:].mean() < 15, flags


def test_compressed_frames_are_decoded_in_the_stored_grid_like_files(tmp_path):
    # image_transport's compressed subscriber decodes with IMREAD_UNCHANGED (tag not applied);
    # the node's boxes must land on the pixels other subscribers of the topic see.
    from types import SimpleNamespace

    from togethernet_ros.bag.image_codec import decode_compressed_message

    path, stored = _tagged_photo(tmp_path, 6)
    message = SimpleNamespace(format="jpeg", data=np.frombuffer(path.read_bytes(), np.uint8))
    for order in ("bgr", "rgb"):
        decoded = decode_compressed_message(message, order)
        assert decoded.shape == (40, 80, 3)
        assert np.abs(decoded.astype(int) - stored.astype(int)).mean() < 3
    assert np.array_equal(decode_compressed_message(message), read_image_file(path))


def test_image_file_size_is_the_stored_grid_and_none_where_unreadable(tmp_path):
    from togethernet_ros.vision.image_file import image_file_size

    path, _ = _tagged_photo(tmp_path, 6)
    assert image_file_size(path) == (80, 40)  # from the header, behind the EXIF segment
    picture = np.zeros((7, 300, 3), np.uint8)
    for name in ("a.png", "a.bmp", "a.tif", "a.webp"):
        cv2.imwrite(str(tmp_path / name), picture)
        assert image_file_size(tmp_path / name) == (300, 7), name
    (tmp_path / "huge.jpg").write_bytes(jpeg_claiming_size(60000, 60000))
    (tmp_path / "noise.png").write_bytes(b"\x00" * 50)
    for name in ("huge.jpg", "noise.png", "missing.jpg"):
        assert image_file_size(tmp_path / name) is None, name


def test_image_file_size_reads_past_large_metadata(tmp_path):
    # An EXIF thumbnail and ICC profile can put the JPEG frame header 100+ KB into the file.
    from support.exif_jpeg import jpeg_with_orientation

    from togethernet_ros.vision.image_file import image_file_size

    data = jpeg_with_orientation(np.zeros((40, 80, 3), np.uint8), 1)
    filler = b"\xff\xe2" + (65533).to_bytes(2, "big") + bytes(65531)  # APP2 segments
    (tmp_path / "meta.jpg").write_bytes(data[:2] + filler * 3 + data[2:])
    assert read_image_file(tmp_path / "meta.jpg").shape == (40, 80, 3)
    assert image_file_size(tmp_path / "meta.jpg") == (80, 40)
