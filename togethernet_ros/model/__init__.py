"""TogetherNet in PyTorch: checkpoint-compatible with the published model, bottom-up."""

from togethernet_ros.model.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES, TogetherNetConfig
from togethernet_ros.model.input_size import check_input_size, recorded_input_size
from togethernet_ros.model.togethernet import ModelOutput, TogetherNet, build_model
from togethernet_ros.model.weights import UntrainedWeightsError, load_model_weights

__all__ = [
    "DEFAULT_CLASS_NAMES",
    "CheckpointError",
    "LoadedCheckpoint",
    "ModelOutput",
    "TogetherNet",
    "TogetherNetConfig",
    "UntrainedWeightsError",
    "build_model",
    "check_input_size",
    "load_checkpoint",
    "load_model_weights",
    "recorded_input_size",
    "save_checkpoint",
]
