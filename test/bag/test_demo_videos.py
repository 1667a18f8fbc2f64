"""The demo's videos from a recorded replay bag: frames paired by stamp, read as written."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.demo_videos import render_demo_videos
from togethernet_ros.bag.detection_messages import detections_to_message
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY

from .bag_samples import START_NS

CLASSES = ("person", "bicycle", "car", "motorbike", "bus")
PERIOD_NS = 100_000_000


def _recording(path, frames: int, dehazed_first: int, no_dehazed: int):
    """A replay recording of one camera: input, detections and dehazed image of each frame.

    The dehazed image of frame ``dehazed_first`` is logged before its input, frame
    ``no_dehazed`` has none.
    """
    with BagWriter(path) as writer:
        store = writer.typestore
        for index in range(frames):
            stamp = START_NS + index * PERIOD_NS
            header = make_header(store, stamp, "cam_front")
            image = np.full((240, 320, 3), 20 + 5 * index, np.uint8)
            restored = encode_image_message(store, 255 - image, header, "bgr8")
            if index == dehazed_first:
                writer.write("/cam_front/dehazed/image_raw", IMAGE_TYPE, stamp - 1, restored)
            writer.write(
                "/cam_front/image_raw",
                IMAGE_TYPE,
                stamp,
                encode_image_message(store, image, header, "bgr8"),
            )
            box = np.float32([[10 + index, 20, 60 + index, 90]])
            found = detections_to_message(
                store, header, box, np.float32([0.9]), np.int64([0]), CLASSES, np.int64([1])
            )
            writer.write("/cam_front/detections", DETECTION2D_ARRAY, stamp + 5_000_000, found)
            if index not in (dehazed_first, no_dehazed):
                writer.write(
                    "/cam_front/dehazed/image_raw", IMAGE_TYPE, stamp + 6_000_000, restored
                )
    return path


def _frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_the_videos_pair_frames_by_stamp_reading_images_as_they_go(tmp_path):
    # Holding every recorded image until the end took 440 MB for the 120 demo frames.
    bag = _recording(tmp_path / "replay_bag", 40, dehazed_first=3, no_dehazed=7)
    tracemalloc.start()
    try:
        videos = render_demo_videos(bag, tmp_path / "out", CLASSES, fps=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frames = {video.path.name: video.frames for video in videos}
    assert frames == {"annotated_cam_front.mp4": 40, "hazy_vs_dehazed_cam_front.mp4": 39}
    side_by_side = _frames(tmp_path / "out" / "hazy_vs_dehazed_cam_front.mp4")
    # Frame k is grey 20 + 5k on the left, its dehazed image 235 - 5k on the right (the video
    # codec shifts levels a little): each frame beside its own, frame 7 left out.
    left = np.array([int(frame[120, 160, 0]) for frame in side_by_side])
    right = np.array([int(frame[120, 480, 0]) for frame in side_by_side])
    assert np.abs(left + right - (left + right).mean()).max() <= 4
    steps = np.diff(left)
    assert steps.argmax() == 6 and steps[6] >= 8 and np.delete(steps, 6).max() <= 7
    # The 40 inputs and 39 dehazed images are 18 MiB; reading as it goes peaks near 6.3 MiB.
    assert peak < 13 * 2**20, f"rendering held {peak / 2**20:.1f} MiB"
