"""TogetherNet in PyTorch: checkpoint-compatible with the published model, bottom-up."""

from togethernet_ros.model.config import DEFAULT_CLASS_NAMES, TogetherNetConfig
from togethernet_ros.model.input_size import check_input_size
from togethernet_ros.model.togethernet import ModelOutput, TogetherNet, build_model

__all__ = [
    "DEFAULT_CLASS_NAMES",
    "ModelOutput",
    "TogetherNet",
    "TogetherNetConfig",
    "build_model",
    "check_input_size",
]
