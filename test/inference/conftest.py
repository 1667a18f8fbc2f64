"""Shared fixtures: a checkpoint with informative random weights and its ONNX export (256x256)."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from togethernet_ros.model import DEFAULT_CLASS_NAMES, build_model, save_checkpoint
from togethernet_ros.model.informative_init import fill_informative

INPUT_SIZE = (256, 256)


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 test image: smooth gradients plus a few solid shapes."""
    import cv2

    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    image = np.stack(
        [60 + 120 * rows + 0 * cols, 40 + 150 * cols + 0 * rows, 200 - 120 * rows * cols], axis=-1
    ).astype(np.uint8)
    for _ in range(8):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(4, min(height, width) // 10), max(8, min(height, width) // 3)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(image, (x, y), (x + size, y + size // 2), color, cv2.FILLED)
    return image


def bag_run_settings(*options: str) -> dict:
    """`bag run`'s detector settings for these command-line options (node YAML underneath)."""
    from togethernet_ros.bag.detector_options import (
        add_detector_arguments,
        resolve_detector_settings,
    )

    parser = argparse.ArgumentParser()
    add_detector_arguments(parser)
    return resolve_detector_settings(parser.parse_args(list(options)))


@pytest.fixture(scope="session")
def informative_model() -> nn.Module:
    return fill_informative(build_model())


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory, informative_model: nn.Module) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    return save_checkpoint(path, informative_model, DEFAULT_CLASS_NAMES, metadata={"epoch": 0})


def run_export_command(weights: Path, output: Path, *options: str) -> str:
    """Run `togethernet export` at 256x256 with extra ``options``; assert success, return stdout."""
    from togethernet_ros.cli import main

    # Captured by hand, not with capsys: session-scoped fixtures export too.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(
            [
                "export",
                "--weights",
                str(weights),
                "--output",
                str(output),
                "--input-size",
                "256",
                *options,
            ]
        )
    assert status == 0, printed.getvalue()
    return printed.getvalue()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, checkpoint_path: Path) -> tuple[Path, str]:
    """Both variants at 256x256 written by `togethernet export`, and what it printed."""
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return path, run_export_command(checkpoint_path, path)


@pytest.fixture(scope="session")
def onnx_pair(exported: tuple[Path, str]) -> Path:
    return exported[0]


@pytest.fixture
def images() -> list[np.ndarray]:
    return [scene(300, 500, seed=1), scene(256, 256, seed=2), scene(120, 90, seed=3)]
