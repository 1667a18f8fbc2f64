"""Frames of OpenCV's vtest.avi (people on a campus path), fetched by package name and cached."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from togethernet_ros.bag.sample_video import SampleVideoError, fetch_sample_video


def sample_video() -> Path:
    """OpenCV's vtest.avi (Debian opencv-doc), or skip the test with the reason."""
    try:
        return fetch_sample_video()
    except SampleVideoError as error:
        pytest.skip(f"sample video unavailable: {error}")


def video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as BGR."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok, f"cannot read frame {index} of {path}"
    return frame
