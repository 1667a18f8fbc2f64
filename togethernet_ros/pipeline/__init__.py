"""Frame batching across cameras, the inference worker thread and latency statistics."""

from togethernet_ros.pipeline.frame_batcher import CameraCounters, FrameBatcher
from togethernet_ros.pipeline.inference_worker import BatchInfo, InferenceWorker
from togethernet_ros.pipeline.latency_stats import LatencySummary, LatencyWindow

__all__ = [
    "BatchInfo",
    "CameraCounters",
    "FrameBatcher",
    "InferenceWorker",
    "LatencySummary",
    "LatencyWindow",
]
