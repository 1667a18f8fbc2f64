"""Training configs small enough for CPU tests."""

from __future__ import annotations

from pathlib import Path

from togethernet_ros.training.train_config import TrainConfig, load_train_config

CLASSES = ["a", "b", "c"]


def small_config(tmp_path: Path, *overrides: str) -> TrainConfig:
    """A fast CPU config: 128 input, width 0.125 (the default config stays TogetherNet-s)."""
    return load_train_config(
        None,
        [
            f"output.dir={tmp_path}",
            f"data.class_names={CLASSES}",
            "data.workers=0",
            "model.input_size=128",
            "model.width=0.125",
            "train.batch_size=4",
            "train.warmup_epochs=1",
            "train.flat_epochs=0",
            "output.progress_bar=false",
            "output.tensorboard=false",
            *overrides,
        ],
    )
