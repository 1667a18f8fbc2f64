"""The one policy for obtaining model weights: a checkpoint, or an explicitly allowed untrained model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from togethernet_ros.model.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES, TogetherNetConfig
from togethernet_ros.model.togethernet import build_model
from togethernet_ros.model.weights_path import resolve_weights_path

LOGGER = logging.getLogger("togethernet_ros")
# Fixed so that two untrained runs (tests, demos, benchmarks) give identical outputs.
UNTRAINED_SEED = 0

_HOW_TO_GET_WEIGHTS = (
    "No trained TogetherNet weights are published. Train them with `togethernet train` (or the "
    "upstream TogetherNet train.py, whose checkpoints load directly) and pass the file with "
    "--weights PATH (ROS parameter `weights`). To run anyway with random weights (pipeline "
    "tests, benchmarks; detections and dehazed images are meaningless), pass --allow-untrained "
    "(ROS parameter `allow_untrained_weights:=true`)."
)


class UntrainedWeightsError(RuntimeError):
    """Weights are required but none were given and untrained weights were not allowed."""


def load_model_weights(
    weights: str | Path | None,
    allow_untrained: bool = False,
    num_classes: int | None = 5,
    class_names: Sequence[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load ``weights`` (strictly), or build a seeded untrained model when explicitly allowed.

    num_classes: the class count the caller expects; a checkpoint with another count is a
        :class:`CheckpointError`. ``None`` accepts the checkpoint's count.
    class_names: override the names (their count must match the model's classes).
    Raises UntrainedWeightsError when ``weights`` is empty and ``allow_untrained`` is False.
    """
    if class_names is not None:
        class_names = tuple(str(name) for name in class_names)
    if weights is None or not str(weights).strip():
        if not allow_untrained:
            raise UntrainedWeightsError(f"no model weights given. {_HOW_TO_GET_WEIGHTS}")
        return _untrained(num_classes, class_names, map_location)

    weights = resolve_weights_path(weights)
    loaded = load_checkpoint(weights, map_location=map_location)
    found = loaded.config.num_classes
    if num_classes is not None and found != num_classes:
        raise CheckpointError(
            f"class-count mismatch: {weights} has {found} classes but {num_classes} were requested"
        )
    if class_names is not None:
        if len(class_names) != found:
            raise CheckpointError(
                f"class-count mismatch: {len(class_names)} class names given but {weights} has "
                f"{found} classes"
            )
        if not loaded.metadata.get("class_names_inferred") and class_names != loaded.class_names:
            LOGGER.warning(
                "class names %s override the names stored in %s: %s",
                list(class_names),
                weights,
                list(loaded.class_names),
            )
        loaded.class_names = class_names
    return loaded


def _untrained(
    num_classes: int | None,
    class_names: tuple[str, ...] | None,
    map_location: str | torch.device,
) -> LoadedCheckpoint:
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else len(DEFAULT_CLASS_NAMES)
    if class_names is None:
        if num_classes != len(DEFAULT_CLASS_NAMES):
            class_names = tuple(f"class_{i}" for i in range(num_classes))
        else:
            class_names = DEFAULT_CLASS_NAMES
    elif len(class_names) != num_classes:
        raise ValueError(
            f"class-count mismatch: {len(class_names)} class names for num_classes={num_classes}"
        )
    config = TogetherNetConfig(num_classes=num_classes)
    # Seed a private RNG stream so the caller's global RNG state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        model = build_model(config=config)
    model.to(map_location).eval()
    LOGGER.warning(
        "RUNNING WITH UNTRAINED (RANDOM) TOGETHERNET WEIGHTS (seed %d): detections and dehazed "
        "images are MEANINGLESS. Use only for pipeline tests and benchmarks. %s",
        UNTRAINED_SEED,
        _HOW_TO_GET_WEIGHTS,
    )
    metadata = {"untrained": True, "seed": UNTRAINED_SEED}
    return LoadedCheckpoint(model, class_names, config, metadata, raw=None)
