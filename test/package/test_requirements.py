"""tools/requirements.txt: one exact pin per package for every Python the project supports."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from .tool_modules import load_tool


def pins_for(python: str, gpu: bool) -> dict[str, str]:
    """Package name -> pinned version that pip would install under `python` ("3.10", ...)."""
    environment = {"python_version": python, "python_full_version": f"{python}.0"}
    pins: dict[str, str] = {}
    for line in load_tool("setup_env").python_requirements(gpu):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        (specifier,) = requirement.specifier  # exactly one exact pin
        assert specifier.operator == "==", line
        assert requirement.name not in pins, f"{requirement.name} pinned twice for {python}"
        pins[requirement.name] = specifier.version
    return pins


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_every_supported_python_gets_one_pin_of_each_package(python, gpu):
    pins = pins_for(python, gpu)
    runtime = "onnxruntime-gpu" if gpu else "onnxruntime"
    assert {"torch", "numpy", runtime, "opencv-python-headless", "rosbags"} <= set(pins)
    assert ("onnxruntime" in pins) != gpu


def test_python_3_10_keeps_numpy_1_for_ros_humble():
    # Humble's (Ubuntu 22.04, Python 3.10) message modules are built against NumPy 1.x.
    assert pins_for("3.10", gpu=False)["numpy"].startswith("1.")
    assert pins_for("3.11", gpu=False)["numpy"].startswith("2.")
