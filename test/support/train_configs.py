"""Training configs small enough for CPU tests."""

from __future__ import annotations

from pathlib import Path

from togethernet_ros.training.train_config import TrainConfig, load_train_config

CLASSES = ["a", "b", "c"]

# A fast CPU model and run: 128 input, width 0.125 (the default config stays TogetherNet-s).
SMALL_SETTINGS = (
    f"data.class_names={CLASSES}",
    "data.workers=0",
    "model.input_size=128",
    "model.width=0.125",
    "train.batch_size=4",
    "train.warmup_epochs=1",
    "train.flat_epochs=0",
    "output.progress_bar=false",
    "output.tensorboard=false",
)


def small_config(tmp_path: Path, *overrides: str) -> TrainConfig:
    """``SMALL_SETTINGS`` writing into ``tmp_path``, then ``overrides``."""
    return load_train_config(None, [f"output.dir={tmp_path}", *SMALL_SETTINGS, *overrides])


def tiny_train_command(root: Path, out: Path, *extra: str) -> list[str]:
    """`togethernet train` arguments for one epoch of a tiny CPU model on the VOC set ``root``."""
    settings = [
        f"data.root={root}",
        "data.workers=0",
        "model.input_size=128",
        "model.width=0.125",
        "train.batch_size=2",
        "train.epochs=1",
        "eval.interval=1",
        f"output.dir={out}",
        "output.tensorboard=false",
        "output.progress_bar=false",
        *extra,
    ]
    return ["train", *[arg for setting in settings for arg in ("--set", setting)]]
