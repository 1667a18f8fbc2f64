"""Which scores the detector keeps when the tracker follows it, and which ones get published.

ByteTrack's second stage keeps a confirmed track alive on boxes scoring between the tracker's
``low_score_threshold`` and ``high_score_threshold``: in fog a real object's score dips there for
a few frames. A detector that cut at the publish threshold (``conf_threshold``) would throw those
boxes away before the tracker saw them, and the low stage would only ever see the band between
the publish threshold and ``high_score_threshold``. So the detector keeps down to the lower of
the two thresholds, the tracker gets everything, and the unsmoothed output is cut back to the
publish threshold. Tracks still start only from boxes that would be published: the tracker's
first stage needs at least the publish threshold too.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.vision.detections import Detections


def detector_threshold(publish_threshold: float, tracker_config: TrackerConfig | None) -> float:
    """Score the detector must keep: the publish threshold, or the tracker's lower one.

    ``tracker_config`` is None when no tracker follows the detector.
    """
    if tracker_config is None:
        return float(publish_threshold)
    return min(float(publish_threshold), float(tracker_config.low_score_threshold))


def tracker_config_behind(publish_threshold: float, config: TrackerConfig) -> TrackerConfig:
    """``config`` with tracks started (first stage) only from boxes scoring the publish threshold.

    A box the user chose not to publish may keep a track alive, never create one.
    """
    high = max(config.high_score_threshold, float(publish_threshold))
    if high == config.high_score_threshold:
        return config
    return dataclasses.replace(config, high_score_threshold=high)


def scoring_at_least(detections: Detections, threshold: float) -> Detections:
    """The detections scoring ``threshold`` or more, in their original order."""
    keep = detections.scores >= threshold
    if bool(np.all(keep)):
        return detections
    return detections.select(keep)
