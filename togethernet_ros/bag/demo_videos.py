"""Videos from a recorded replay bag: annotated detections and hazy | dehazed side by side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
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
    ``hazy_vs_dehazed_<cam>.mp4`` (when dehazed images were recorded), frames matched by stamp.

    Images are read as the videos are written, never all held: the recording of 120 demo
    frames of vtest.avi alone is 440 MB of images.
    """
    typestore = create_typestore()
    with Reader(recorded_bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
    cameras = sorted(
        t
        for t, m in types.items()
        if m in IMAGE_TYPES and not t.endswith(("/dehazed/image_raw", "/debug_image"))
    )
    # First the small things: every camera's detections, and how many dehazed images a stamp has.
    detections: dict[str, dict[int, object]] = {camera: {} for camera in cameras}
    dehazed_stamps: dict[str, Counter[int]] = {camera: Counter() for camera in cameras}
    wanted = {}
    for camera in cameras:
        names = output_topics(camera)
        wanted[names.detections] = ("detections", camera)
        if names.dehazed in types:
            wanted[names.dehazed] = ("dehazed", camera)
    for topic, raw in _messages(recorded_bag, set(wanted)):
        kind, camera = wanted[topic]
        if kind == "detections":
            message = typestore.deserialize_cdr(raw, DETECTION2D_ARRAY)
            decoded = message_to_detections(message, class_names)
            detections[camera][decoded.stamp_ns] = decoded
        else:
            message = typestore.deserialize_cdr(raw, types[topic])
            dehazed_stamps[camera][header_stamp_ns(message.header)] += 1
    summaries = []
    for camera in cameras:
        name = camera.strip("/").split("/")[0] or "camera"
        annotated = _Video(out_dir / f"annotated_{name}.mp4", fps)
        side_by_side = _Video(out_dir / f"hazy_vs_dehazed_{name}.mp4", fps)
        restored = _DehazedStream(recorded_bag, output_topics(camera).dehazed, types, typestore)
        for _, raw in _messages(recorded_bag, {camera}):
            message = typestore.deserialize_cdr(raw, types[camera])
            stamp = header_stamp_ns(message.header)
            image = decode_any_image(message, types[camera], "bgr")
            found = detections[camera].get(stamp)
            if found is not None:
                drawn = draw_detections(
                    image,
                    Detections(found.boxes, found.scores, np.maximum(found.class_ids, 0)),
                    class_names,
                    found.track_ids,
                )
                annotated.write(_label(drawn, f"{camera}  {len(found)} tracked"))
            if dehazed_stamps[camera][stamp] > 0:
                dehazed_stamps[camera][stamp] -= 1
                clean = restored.take(stamp)
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
        restored.close()
        summaries += [s for s in (annotated.close(), side_by_side.close()) if s is not None]
    return summaries


def _messages(bag: Path, topics: set[str]) -> Iterator[tuple[str, bytes]]:
    """(topic, raw CDR) of ``topics`` in log-time order."""
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        if not connections:
            return
        for connection, _, raw in reader.messages(connections=connections):
            yield connection.topic, raw


class _DehazedStream:
    """A camera's dehazed images, read alongside its inputs (a second reader of the bag)."""

    def __init__(self, bag: Path, topic: str, types: dict[str, str], typestore: object) -> None:
        self._messages = _messages(bag, {topic}) if topic in types else iter(())
        self._msgtype = types.get(topic, "")
        self._typestore = typestore
        # Images read past while looking for another stamp (outputs out of input order): few.
        self._ahead: dict[int, list[np.ndarray]] = {}

    def take(self, stamp: int) -> np.ndarray:
        """The next dehazed image of ``stamp``, which the recording must still hold."""
        waiting = self._ahead.get(stamp)
        if waiting:
            image = waiting.pop(0)
            if not waiting:
                del self._ahead[stamp]
            return image
        for _, raw in self._messages:
            message = self._typestore.deserialize_cdr(raw, self._msgtype)
            image = decode_any_image(message, self._msgtype, "bgr")
            found = header_stamp_ns(message.header)
            if found == stamp:
                return image
            self._ahead.setdefault(found, []).append(image)
        raise LookupError(f"no more dehazed images of stamp {stamp}")

    def close(self) -> None:
        """Stop reading."""
        close = getattr(self._messages, "close", None)
        if close is not None:
            close()
