"""Inference: one Detector interface over PyTorch and ONNX Runtime backends, plus ONNX export.

Backends are imported lazily by `create_detector`, so `from togethernet_ros.inference import
Detections` stays cheap.
"""

from togethernet_ros.inference.detector import Detector
from togethernet_ros.inference.factory import create_detector
from togethernet_ros.inference.result import ImageResult
from togethernet_ros.vision.detections import Detections

__all__ = ["Detections", "Detector", "ImageResult", "create_detector"]
