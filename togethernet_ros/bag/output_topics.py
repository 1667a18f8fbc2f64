"""Output topic names derived from an input camera topic, as the detector node names them.

For input ``<ns>/<name>`` (a trailing ``/compressed`` stripped first) the node publishes
``<ns>/detections``, ``<ns>/detections_raw``, ``<ns>/dehazed/image_raw`` and ``<ns>/debug_image``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OutputTopics:
    """The per-camera output topics."""

    detections: str
    detections_raw: str
    dehazed: str
    debug_image: str
    label_info: str


def camera_namespace(image_topic: str) -> str:
    """``/cam/image_raw/compressed`` -> ``/cam``; ``/image`` -> ``''``."""
    topic = image_topic.rstrip("/")
    if topic.endswith("/compressed"):
        topic = topic[: -len("/compressed")]
    return topic.rsplit("/", 1)[0] if "/" in topic else ""


def output_topics(image_topic: str) -> OutputTopics:
    """Output topics for one input camera topic."""
    namespace = camera_namespace(image_topic)
    # A relative input without a namespace ("image") gets relative outputs ("detections"), so
    # that they follow the node's namespace as the input does; "/image" gets "/detections".
    prefix = f"{namespace}/" if namespace or image_topic.startswith("/") else ""
    return OutputTopics(
        detections=f"{prefix}detections",
        detections_raw=f"{prefix}detections_raw",
        dehazed=f"{prefix}dehazed/image_raw",
        debug_image=f"{prefix}debug_image",
        label_info=f"{prefix}label_info",
    )


def check_distinct_outputs(image_topics: Sequence[str]) -> None:
    """ValueError when two camera topics would publish on the same output topics, or a camera
    topic is one of the outputs.

    Outputs are named after the input's namespace, so ``/front_camera`` and ``/rear_camera``
    (both in ``/``) would interleave two cameras on ``/detections`` with clashing track ids.
    """
    outputs = {
        output: topic
        for topic in image_topics
        for output in dataclasses.astuple(output_topics(topic))
    }
    for topic in image_topics:
        # Its image_transport base too: /cam/debug_image/compressed is the debug image again.
        base = topic.rstrip("/").removesuffix("/compressed")
        looped = outputs.get(topic) or outputs.get(base)
        if looped is not None:
            raise ValueError(
                f"camera topic {topic!r} is an output of the node (for camera {looped!r}): "
                "its own detections or images would come back to it as input"
            )
    seen: dict[str, str] = {}
    for topic in image_topics:
        detections = output_topics(topic).detections
        if detections in seen:
            raise ValueError(
                f"camera topics {seen[detections]!r} and {topic!r} would both publish on "
                f"{detections!r} (outputs go to the camera topic's namespace): give each camera "
                "its own namespace, e.g. /front/image_raw and /rear/image_raw, or remap them"
            )
        seen[detections] = topic
