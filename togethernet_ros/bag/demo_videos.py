"""Videos from a recorded replay bag: annotated detections and hazy | dehazed side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import Reader

from togethernet_ros.bag.detection_messages import message_to_detections
from togethernet_ros.bag.image_codec import IMAGE_TYPES, decode_any_image, header_stamp_ns
from togethernet_ros.bag.output_topics import output_topics
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.draw import draw_detections


@dataclass
class VideoSummary:
    """One written video."""

    path: Path
    frames: int
    size: tuple[int, int]


def _label(image: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(image, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(
        image, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA
    )
    return image


class _Video:
    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0
        self.size = (0, 0)

    def write(self, image: np.ndarray) -> None:
        """Append a frame; the first one fixes the video size and opens the file."""
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size
            )
            if not self.writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {self.path} (mp4v codec unavailable?)")
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self.writer.write(image)
        self.frames += 1

    def close(self) -> VideoSummary | None:
        """Finish the file; None when no frame was written."""
        if self.writer is None:
            return None
        self.writer.release()
        return VideoSummary(self.path, self.frames, self.size)


def render_demo_videos(
    recorded_bag: Path, out_dir: Path, class_names: tuple[str, ...], fps: float = 10.0
) -> list[VideoSummary]:
    """Per camera: ``annotated_<cam>.mp4`` (tracked boxes, classes, ids) and
    ``hazy_vs_dehazed_<cam>.mp4`` (when dehazed images were recorded), frames matched by stamp."""
    typestore = create_typestore()
    inputs: dict[str, dict[int, bytes]] = {}
    detections: dict[str, dict[int, object]] = {}
    dehazed: dict[str, dict[int, bytes]] = {}
    with Reader(recorded_bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        image_inputs = [
            t
            for t, m in types.items()
            if m in IMAGE_TYPES and not t.endswith(("/dehazed/image_raw", "/debug_image"))
        ]
        wanted = {}
        for topic in image_inputs:
            names = output_topics(topic)
            wanted[topic] = ("input", topic)
            wanted[names.detections] = ("detections", topic)
            wanted[names.dehazed] = ("dehazed", topic)
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, _, raw in reader.messages(connections=connections):
            kind, camera = wanted[connection.topic]
            if kind == "detections":
                message = typestore.deserialize_cdr(raw, DETECTION2D_ARRAY)
                decoded = message_to_detections(message, class_names)
                detections.setdefault(camera, {})[decoded.stamp_ns] = decoded
            else:
                message = typestore.deserialize_cdr(raw, connection.msgtype)
                store = inputs if kind == "input" else dehazed
                store.setdefault(camera, {})[header_stamp_ns(message.header)] = (
                    message,
                    connection.msgtype,
                )
    summaries = []
    for camera in sorted(inputs):
        name = camera.strip("/").split("/")[0] or "camera"
        annotated = _Video(out_dir / f"annotated_{name}.mp4", fps)
        side_by_side = _Video(out_dir / f"hazy_vs_dehazed_{name}.mp4", fps)
        for stamp in sorted(inputs[camera]):
            message, msgtype = inputs[camera][stamp]
            image = decode_any_image(message, msgtype, "bgr")
            found = detections.get(camera, {}).get(stamp)
            if found is not None:
                drawn = draw_detections(
                    image,
                    Detections(found.boxes, found.scores, np.maximum(found.class_ids, 0)),
                    class_names,
                    found.track_ids,
                )
                annotated.write(_label(drawn, f"{camera}  {len(found)} tracked"))
            restored = dehazed.get(camera, {}).get(stamp)
            if restored is not None:
                clean = decode_any_image(restored[0], restored[1], "bgr")
                if clean.shape != image.shape:
                    clean = cv2.resize(clean, (image.shape[1], image.shape[0]))
                side_by_side.write(
                    np.hstack(
                        [
                            _label(image.copy(), "hazy input"),
                            _label(clean.copy(), "dehazed (TogetherNet)"),
                        ]
                    )
                )
        summaries += [s for s in (annotated.close(), side_by_side.close()) if s is not None]
    return summaries
