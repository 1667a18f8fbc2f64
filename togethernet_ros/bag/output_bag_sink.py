"""Writes pipeline results into an output bag the way the node publishes them.

Per camera: ``<ns>/detections`` (smoothed, track id in Detection2D.id; with tracking off the
unsmoothed detections, no ids, as the node publishes them), ``<ns>/detections_raw``,
``<ns>/dehazed/image_raw`` (source size, same header), optional ``<ns>/debug_image`` and one
``<ns>/label_info``. Messages carry the input frame's header and are logged at its log time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message, label_info_message
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message
from togethernet_ros.bag.offline_pipeline import FrameResult
from togethernet_ros.bag.output_topics import output_topics
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, LABEL_INFO

Annotator = Callable[[np.ndarray, Any, tuple[str, ...], np.ndarray | None], np.ndarray]


@dataclass(frozen=True)
class SinkOptions:
    """Which outputs to write."""

    raw_detections: bool = True
    dehazed: bool = True
    annotated: bool = False
    conf_threshold: float = 0.0


class OutputBagSink:
    """Serializes FrameResults into a BagWriter."""

    def __init__(
        self,
        writer: BagWriter,
        class_names: tuple[str, ...],
        color_order: str = "bgr",
        options: SinkOptions | None = None,
        annotate: Annotator | None = None,
    ) -> None:
        self.writer = writer
        self.class_names = tuple(class_names)
        self.color_order = color_order
        self.options = options or SinkOptions()
        if self.options.annotated and annotate is None:
            raise ValueError("annotated output needs an annotate function")
        self._annotate = annotate
        self._labelled: set[str] = set()

    def write(self, result: FrameResult) -> None:
        """Write every enabled output of one frame."""
        typestore = self.writer.typestore
        frame = result.frame
        topics = output_topics(frame.topic)
        log_time = frame.log_time_ns
        header = frame.header
        if frame.topic not in self._labelled:
            self._labelled.add(frame.topic)
            label_info = label_info_message(
                typestore, header, self.class_names, self.options.conf_threshold
            )
            self.writer.write(topics.label_info, LABEL_INFO, log_time, label_info)
        # Tracking off (no tracker result): the node publishes the unsmoothed detections.
        output = result.detections if result.tracked is None else result.tracked
        track_ids = None if result.tracked is None else result.tracked.track_ids
        message = detections_to_message(
            typestore,
            header,
            output.boxes,
            output.scores,
            output.class_ids,
            self.class_names,
            track_ids=track_ids,
        )
        self.writer.write(topics.detections, DETECTION2D_ARRAY, log_time, message)
        if self.options.raw_detections:
            raw = result.detections
            message = detections_to_message(
                typestore, header, raw.boxes, raw.scores, raw.class_ids, self.class_names
            )
            self.writer.write(topics.detections_raw, DETECTION2D_ARRAY, log_time, message)
        if self.options.dehazed and result.dehazed is not None:
            encoding = "bgr8" if self.color_order == "bgr" else "rgb8"
            image = encode_image_message(typestore, result.dehazed, header, encoding)
            self.writer.write(topics.dehazed, IMAGE_TYPE, log_time, image)
        if self.options.annotated and self._annotate is not None:
            bgr = frame.image if self.color_order == "bgr" else frame.image[:, :, ::-1]
            drawn = self._annotate(bgr, output, self.class_names, track_ids)
            image = encode_image_message(typestore, np.ascontiguousarray(drawn), header, "bgr8")
            self.writer.write(topics.debug_image, IMAGE_TYPE, log_time, image)
