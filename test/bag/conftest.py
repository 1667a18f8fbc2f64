"""Fixtures for the bag tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .bag_samples import write_camera_bag


@pytest.fixture
def camera_bag(tmp_path: Path) -> Callable[..., Path]:
    """Factory: camera_bag(name, **write_camera_bag kwargs) -> bag path inside tmp_path."""

    def make(name: str = "bag", **kwargs) -> Path:
        return write_camera_bag(tmp_path / name, **kwargs)

    return make
