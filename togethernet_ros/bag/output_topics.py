"""Output topic names derived from an input camera topic, as the detector node names them.

For input ``<ns>/<name>`` (a trailing ``/compressed`` stripped first) the node publishes
``<ns>/detections``, ``<ns>/detections_raw``, ``<ns>/dehazed/image_raw`` and ``<ns>/debug_image``.
"""

from __future__ import annotations

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
    return OutputTopics(
        detections=f"{namespace}/detections",
        detections_raw=f"{namespace}/detections_raw",
        dehazed=f"{namespace}/dehazed/image_raw",
        debug_image=f"{namespace}/debug_image",
        label_info=f"{namespace}/label_info",
    )
